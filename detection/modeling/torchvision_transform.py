"""torchvision's GeneralizedRCNNTransform at inference: normalise, resize, pad (for its weights).

    image [H, W, 3] uint8 RGB
      -> float in [0, 1], minus ImageNet mean, over ImageNet std (per RGB channel)
      -> resized bilinearly (torch's interpolate, align_corners=False, no antialias) by
         scale = min(min_size / shorter side, max_size / longer side), to floor(side x scale)
      -> zero-padded at the bottom and right to a multiple of 32 (zero AFTER normalisation,
         i.e. the mean colour).

tf.image.resize (bilinear, half-pixel centres, no antialias) samples where torch's
interpolate does, for scaling up and down, so the two agree to float rounding.
"""

import math

import numpy as np
import tensorflow as tf

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SIZE_DIVISIBLE = 32


def resized_hw(height, width, min_size, max_size):
    """(h, w) after torchvision's resize (recompute_scale_factor: floor(side x scale))."""
    scale = min(float(min_size) / min(height, width), float(max_size) / max(height, width))
    return int(math.floor(height * scale)), int(math.floor(width * scale))


def transform_image(image, min_size=800, max_size=1333, mean=IMAGENET_MEAN, std=IMAGENET_STD):
    """image [H, W, 3] uint8 (or float 0..255) RGB -> (batch [1, Hp, Wp, 3] float32, (h, w) resized size).

    Hp, Wp: h, w rounded up to a multiple of 32."""
    image = tf.convert_to_tensor(np.asarray(image), tf.float32) / 255.0
    image = (image - tf.constant(mean, tf.float32)) / tf.constant(std, tf.float32)
    h, w = resized_hw(int(image.shape[0]), int(image.shape[1]), min_size, max_size)
    resized = tf.image.resize(image[None], (h, w), method="bilinear", antialias=False)
    padded_h = int(math.ceil(h / SIZE_DIVISIBLE) * SIZE_DIVISIBLE)
    padded_w = int(math.ceil(w / SIZE_DIVISIBLE) * SIZE_DIVISIBLE)
    return tf.pad(resized, [[0, 0], [0, padded_h - h], [0, padded_w - w], [0, 0]]), (h, w)
