"""image_meta: the per-image vector that maps model-input pixels back to the original image.

Layout (float32, IMAGE_META_SIZE = 12):
  [0]      image_id (the dataset's own id)
  [1:4]    original image shape (H, W, C)
  [4:7]    model input shape after resize and padding (H, W, C)
  [7:11]   window (y1, x1, y2, x2): where the resized image sits inside the padded input
  [11]     scale: input pixels per original pixel

A box in input pixels maps to the original image as ``(box - [wy1, wx1, wy1, wx1]) / scale``.
"""

import numpy as np
import tensorflow as tf

IMAGE_META_SIZE = 12


def compose_image_meta(image_id, original_shape, image_shape, window, scale):
    """-> [12] float32 numpy vector (see the module docstring)."""
    meta = [image_id, *original_shape[:3], *image_shape[:3], *window, scale]
    if len(original_shape) == 2 or len(image_shape) == 2:
        raise ValueError("shapes must be (H, W, C)")
    return np.asarray(meta, np.float32)


def parse_image_meta(meta):
    """meta: [..., 12] (numpy or tensor) -> dict of image_id [...], original_shape [..., 3],
    image_shape [..., 3], window [..., 4], scale [...]."""
    return {
        "image_id": meta[..., 0],
        "original_shape": meta[..., 1:4],
        "image_shape": meta[..., 4:7],
        "window": meta[..., 7:11],
        "scale": meta[..., 11],
    }


def boxes_to_original(boxes, meta):
    """boxes: [B, N, 4] input pixels, meta: [B, 12] -> [B, N, 4] original-image pixels, clipped
    to the original image."""
    meta = tf.convert_to_tensor(meta, tf.float32)
    window = meta[:, 7:11]
    scale = meta[:, 11]
    shift = tf.stack([window[:, 0], window[:, 1], window[:, 0], window[:, 1]], axis=-1)[:, None, :]
    out = (tf.convert_to_tensor(boxes, tf.float32) - shift) / scale[:, None, None]
    h, w = meta[:, 1], meta[:, 2]
    limit = tf.stack([h, w, h, w], axis=-1)[:, None, :]
    return tf.clip_by_value(out, 0.0, limit)
