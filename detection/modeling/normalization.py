"""Input normalisation and BatchNorm helpers."""

import keras
import tensorflow as tf
from keras import ops

from detection.core.image_meta import parse_image_meta

# keras.applications' ResNets use this epsilon (Keras' own default is 1e-3).
RESNET_BN_EPSILON = 1.001e-5


def BatchNorm(name, trainable=True, epsilon=RESNET_BN_EPSILON):
    """BatchNormalization (default: the epsilon of keras.applications' ResNet); ``trainable=False``
    freezes it (inference mode, marked so that layer selection never unfreezes it)."""
    layer = keras.layers.BatchNormalization(epsilon=epsilon, name=name)
    if not trainable:
        freeze_batch_norm([layer])
    return layer


def freeze_batch_norm(layers):
    """Freezes every BatchNormalization layer: no training of gamma/beta, moving statistics used.

    Keras 3 runs a BatchNormalization with ``trainable = False`` in inference mode, which is
    what a frozen BN must do with the small per-GPU batches of detection.
    """
    for layer in layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False
            layer.frozen_by_config = True  # layer selection never unfreezes these


@keras.saving.register_keras_serializable(package="detection")
class NormalizeImage(keras.layers.Layer):
    """(image - mean) / std per channel, optionally RGB -> BGR for caffe-style backbones.

    Inputs: image [B, H, W, 3] float RGB 0..255. Output: same shape, in the layer's dtype.
    """

    def __init__(self, mean, std, to_bgr=False, **kwargs):
        super().__init__(**kwargs)
        self.mean = [float(m) for m in mean]
        self.std = [float(s) for s in std]
        self.to_bgr = bool(to_bgr)

    def call(self, image):
        image = ops.cast(image, "float32")
        out = (image - ops.convert_to_tensor(self.mean)) / ops.convert_to_tensor(self.std)
        if self.to_bgr:
            out = ops.flip(out, axis=-1)
        return ops.cast(out, self.compute_dtype)

    def get_config(self):
        return {**super().get_config(), "mean": self.mean, "std": self.std, "to_bgr": self.to_bgr}


@keras.saving.register_keras_serializable(package="detection")
class ZeroOutsideWindow(keras.layers.Layer):
    """image [B, H, W, C] (normalised), image_meta [B, 12] -> the image with zeros outside each
    image's window: padding that is zero after normalisation, as torchvision pads its
    normalised batch (choices.NORMALIZED_PADDING_RESIZE_METHODS)."""

    def call(self, image, image_meta):
        window = tf.cast(parse_image_meta(tf.cast(image_meta, tf.float32))["window"], tf.float32)
        shape = tf.shape(image)
        ys = tf.cast(tf.range(shape[1]), tf.float32)[None, :, None]
        xs = tf.cast(tf.range(shape[2]), tf.float32)[None, None, :]
        inside = ((ys >= window[:, 0, None, None]) & (ys < window[:, 2, None, None])
                  & (xs >= window[:, 1, None, None]) & (xs < window[:, 3, None, None]))
        return tf.where(inside[..., None], image, tf.zeros_like(image))

    def compute_output_spec(self, image, image_meta):
        return keras.KerasTensor(image.shape, image.dtype)
