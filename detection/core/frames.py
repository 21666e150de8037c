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

  torchvision pixels inside the model, but back to the original image per axis, as
              torchvision's transform.postprocess: ``(box - window origin) * original side /
              resized side`` (its resize floors each side, so the two axes' ratios differ
              slightly from the one scale, by up to 1 / resized side).

Each frame is a BoxFrame in BOX_FRAMES, which owns every rule that differs between them: the
conversion from and to input pixels, the window proposals are clipped to, and how a box goes
back to original-image pixels. Callers ask the object (``box_frame(name)``), never the name.

Example: in a 101 x 201 input the pixel box [10, 20, 51, 101] is [0.1, 0.1, 0.5, 0.5]
normalized, and back.
"""

import dataclasses
from typing import Callable

import tensorflow as tf

from detection import choices

_SHIFT = (0.0, 0.0, 1.0, 1.0)


def _scale(image_hw):
    h = tf.cast(image_hw[0], tf.float32) - 1.0
    w = tf.cast(image_hw[1], tf.float32) - 1.0
    return tf.stack([h, w, h, w])


def _window_shift(window):
    return tf.stack([window[:, 0], window[:, 1], window[:, 0], window[:, 1]], axis=-1)[:, None, :]


def _identity(boxes, image_hw):
    return boxes


def _pixels_to_original(boxes, fields):
    """``(box - window origin) / scale``."""
    return (boxes - _window_shift(fields["window"])) / fields["scale"][:, None, None]


def _pixels_to_original_per_axis(boxes, fields):
    """``(box - window origin) * (original side / window side)`` per axis, in float32 as torch."""
    window = fields["window"]
    ratio_h = fields["original_shape"][:, 0] / (window[:, 2] - window[:, 0])
    ratio_w = fields["original_shape"][:, 1] / (window[:, 3] - window[:, 1])
    return (boxes - _window_shift(window)) * tf.stack([ratio_h, ratio_w, ratio_h, ratio_w], axis=-1)[:, None, :]


def _pixel_windows(fields, batch):
    return fields["window"]


def _to_normalized(boxes, image_hw):
    return (boxes - tf.constant(_SHIFT)) / _scale(image_hw)


def _from_normalized(boxes, image_hw):
    return boxes * _scale(image_hw) + tf.constant(_SHIFT)


def _normalized_to_original(boxes, fields):
    """matterport's ``unmold_detections``: the box relative to the window (both normalized)
    times (original side - 1), plus [0, 0, 1, 1], rounded to whole pixels."""
    h, w = fields["original_shape"][:, 0], fields["original_shape"][:, 1]
    window = _to_normalized(fields["window"], hw_from_image_shape(fields["image_shape"]))
    wh, ww = window[:, 2] - window[:, 0], window[:, 3] - window[:, 1]
    relative = (boxes - _window_shift(window)) / tf.stack([wh, ww, wh, ww], axis=-1)[:, None, :]
    return tf.round(relative * tf.stack([h - 1, w - 1, h - 1, w - 1], axis=-1)[:, None, :] + tf.constant(_SHIFT))


def _whole_input_windows(fields, batch):
    return tf.tile(tf.constant([[0.0, 0.0, 1.0, 1.0]]), [batch, 1])


@dataclasses.dataclass(frozen=True)
class BoxFrame:
    """One BOX_FRAME. All boxes [..., 4] float32, image_hw (H, W) of the model input.

    to_frame(boxes in input pixels, image_hw) -> boxes in this frame; from_frame the inverse;
    to_original(boxes [B, N, 4] in this frame, fields of parse_image_meta) -> original-image
        pixels, not yet clipped (detection.core.image_meta.boxes_to_original clips);
    proposal_windows(fields, batch) -> [B, 4] in this frame, what proposals are clipped to:
        the image's window (pixels), or the whole input (normalized, as matterport).
    """

    name: str
    to_frame: Callable
    from_frame: Callable
    to_original: Callable
    proposal_windows: Callable


# The BOX_FRAME registry (names: detection/choices.py BOX_FRAMES).
BOX_FRAMES = {
    "pixels": BoxFrame("pixels", _identity, _identity, _pixels_to_original, _pixel_windows),
    "normalized": BoxFrame("normalized", _to_normalized, _from_normalized, _normalized_to_original,
                           _whole_input_windows),
    "torchvision": BoxFrame("torchvision", _identity, _identity, _pixels_to_original_per_axis, _pixel_windows),
}
FRAMES = tuple(BOX_FRAMES)


def box_frame(frame):
    """The BoxFrame called ``frame``; ValueError naming BOX_FRAME for another name."""
    return choices.lookup(BOX_FRAMES, frame, "BOX_FRAME")


def check_frame(frame):
    box_frame(frame)
    return frame


def to_frame(boxes, image_hw, frame):
    """boxes [..., 4] model-input pixels -> the same boxes in ``frame``.

    image_hw: (H, W) of the model input, ints or scalar tensors.
    """
    return box_frame(frame).to_frame(tf.convert_to_tensor(boxes, tf.float32), image_hw)


def from_frame(boxes, image_hw, frame):
    """boxes [..., 4] in ``frame`` -> model-input pixels (the inverse of ``to_frame``)."""
    return box_frame(frame).from_frame(tf.convert_to_tensor(boxes, tf.float32), image_hw)


def convert(boxes, image_hw, source, target):
    """boxes [..., 4] in frame ``source`` -> frame ``target`` (unchanged when they are the same)."""
    if source == target:
        return tf.convert_to_tensor(boxes, tf.float32)
    return to_frame(from_frame(boxes, image_hw, source), image_hw, target)


def hw_from_image_shape(image_shape):
    """[..., 3] image_shape rows of image_meta (H, W, C) -> (H, W) float32 scalars of the first row.

    All images of a batch share the model input size, as matterport also assumes.
    """
    image_shape = tf.reshape(tf.cast(image_shape, tf.float32), [-1, 3])
    return image_shape[0, 0], image_shape[0, 1]
