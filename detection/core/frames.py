"""The coordinate frame boxes live in inside the model (config BOX_FRAME).

Data, anchors and outputs are always in pixels; inside the model the box math (encode,
decode, IoU, NMS, clipping) runs in one of two frames:

  pixels      ``[y1, x1, y2, x2]`` in pixel edges of the model input, area
              ``(y2 - y1) * (x2 - x1)``: a box over the whole H x W input is [0, 0, H, W].
  normalized  matterport's normalized coordinates: ``(y1, x1, y2 - 1, x2 - 1) /
              (H - 1, W - 1, H - 1, W - 1)``, so the whole input is [0, 0, 1, 1]. Box
              extents are one pixel smaller than in the pixel frame before the scaling,
              which changes the decoded sizes, the IoUs and therefore the NMS; matterport's
              weights were trained with this arithmetic and reproduce its outputs only in it.

Example: in a 101 x 201 input the pixel box [10, 20, 51, 101] is [0.1, 0.1, 0.5, 0.5]
normalized, and back.
"""

import tensorflow as tf

FRAMES = ("pixels", "normalized")
_SHIFT = (0.0, 0.0, 1.0, 1.0)


def check_frame(frame):
    if frame not in FRAMES:
        raise ValueError(f"box frame must be one of {FRAMES}, got {frame!r}")
    return frame


def _scale(image_hw):
    h = tf.cast(image_hw[0], tf.float32) - 1.0
    w = tf.cast(image_hw[1], tf.float32) - 1.0
    return tf.stack([h, w, h, w])


def to_frame(boxes, image_hw, frame):
    """boxes [..., 4] model-input pixels -> the same boxes in ``frame``.

    image_hw: (H, W) of the model input, ints or scalar tensors.
    """
    boxes = tf.convert_to_tensor(boxes, tf.float32)
    if check_frame(frame) == "pixels":
        return boxes
    return (boxes - tf.constant(_SHIFT)) / _scale(image_hw)


def from_frame(boxes, image_hw, frame):
    """boxes [..., 4] in ``frame`` -> model-input pixels (the inverse of ``to_frame``)."""
    boxes = tf.convert_to_tensor(boxes, tf.float32)
    if check_frame(frame) == "pixels":
        return boxes
    return boxes * _scale(image_hw) + tf.constant(_SHIFT)


def hw_from_image_shape(image_shape):
    """[..., 3] image_shape rows of image_meta (H, W, C) -> (H, W) float32 scalars of the first row.

    All images of a batch share the model input size, as matterport also assumes.
    """
    image_shape = tf.reshape(tf.cast(image_shape, tf.float32), [-1, 3])
    return image_shape[0, 0], image_shape[0, 1]
