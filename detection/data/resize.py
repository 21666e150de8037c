"""Where an image lands in the model input: the scale and the padding of IMAGE_RESIZE_MODE.

A point maps as ``input = original * scale + offset`` (and back as
``original = (input - offset) / scale``) on both axes; the window, where the resized image
sits in the padded input, is ``(oy, ox, oy + resized_h, ox + resized_w)``. Modes:
  square: scale so the short side reaches IMAGE_MIN_DIM but the long side stays within
          IMAGE_MAX_DIM; pad to IMAGE_MAX_DIM x IMAGE_MAX_DIM.
  pad64:  the same scale; pad each side up to a multiple of 64.
  none:   scale 1; pad each side up to a multiple of 64 (the stride of P6).

IMAGE_RESIZE_METHOD picks the rules' details and the interpolation; each method is one
ResizeMethod in RESIZE_METHODS, which owns all of it (callers ask the object, never the name):
  opencv      the resized image at the top-left (offset 0); the long-side limit is
              ``max(h, w) * scale > IMAGE_MAX_DIM`` in every mode but none.
  matterport  matterport's resize_image: the image centred in the padding (offset
              ``((H - h) // 2, (W - w) // 2)``); the long-side limit only in square mode,
              tested as ``round(max(h, w) * scale) > IMAGE_MAX_DIM``.
  torchvision its GeneralizedRCNNTransform: scale ``min(IMAGE_MIN_DIM / short side,
              IMAGE_MAX_DIM / long side)`` (up or down), each side floored
              (``floor(side * scale)``), torch's bilinear interpolation kept in float (no
              uint8 rounding), the image at the top-left, and the padding zero AFTER
              normalisation (the Detector zeroes the normalised input outside the window).

Example: a 480 x 640 image, square mode, IMAGE_MIN_DIM 800, IMAGE_MAX_DIM 1024: scale 1.6,
resized 768 x 1024, padded 1024 x 1024; window (0, 0, 768, 1024) with opencv,
(128, 0, 896, 1024) with matterport.

The arithmetic is written once and run twice: on Python numbers here (the training pipeline,
the Predictor) and on TensorFlow tensors inside the exported SavedModel
(detection/export.py tf_resize_geometry), through the ``ops`` argument (PYTHON_OPS or
detection.data.tf_resize.TF_OPS), so both give the same numbers (tests/test_infer_export.py).
"""

import dataclasses
import math
import types
from typing import Callable

from detection import choices


def _where(condition, if_true, if_false):
    return if_true if condition else if_false


# The four operations the rules use, on Python numbers (float64, round halves to even).
PYTHON_OPS = types.SimpleNamespace(maximum=max, minimum=min, round=round, where=_where, number=float, int=int,
                                   round_up=lambda x, multiple: int(math.ceil(x / multiple) * multiple),
                                   round_int=lambda x: int(round(x)), floor_int=lambda x: int(math.floor(x)))


def _opencv_resize(image, hw):
    import cv2

    return cv2.resize(image, (hw[1], hw[0]), interpolation=cv2.INTER_LINEAR)


def _opencv_tf_resize(image, height, width):
    from detection.data.tf_resize import tf_resize_image

    return tf_resize_image(image, height, width)


def _torch_bilinear_resize(image, hw):
    from detection.data.images import resize_bilinear_torch

    return resize_bilinear_torch(image, hw)


def _torch_bilinear_tf_resize(image, height, width):
    import tensorflow as tf

    return tf.image.resize(tf.cast(image, tf.float32), tf.stack([height, width]), method="bilinear", antialias=False)


def _zero_border_resize(image, hw):
    from detection.data.images import resize_bilinear_zero_border

    return resize_bilinear_zero_border(image, hw).astype(image.dtype)


def _zero_border_tf_resize(image, height, width):
    import tensorflow as tf

    from detection.data.tf_resize import tf_resize_bilinear_zero_border

    return tf.cast(tf_resize_bilinear_zero_border(image, height, width), tf.uint8)


@dataclasses.dataclass(frozen=True)
class ResizeMethod:
    """One IMAGE_RESIZE_METHOD: everything that differs between resizing conventions.

    limit_modes: the IMAGE_RESIZE_MODEs in which the long side is held to IMAGE_MAX_DIM;
    round_limit: the limit is tested on ``round(longest * scale)`` (else on the product);
    centred: the image sits in the middle of the padding (else at the top-left);
    reduced_decode: a large JPEG may be decoded at 1/2..1/8 when it is scaled down anyway
        (only right when the interpolation gives the same pixels from either, as OpenCV's
        bilinear nearly does; a method that reproduces another library's pixels cannot);
    resize(image [h, w(, C)], (rh, rw)) -> [rh, rw(, C)] of the same dtype, NumPy;
    tf_resize(image [h, w, 3] uint8, rh, rw) -> [rh, rw, 3] uint8, the same pixels in TensorFlow;
    pixel_dtype: what the resized image is ("uint8", or "float32" for a method that keeps the
        interpolated values). Whether the padding is zero after normalisation (the Detector then
        zeroes the normalised input outside the window) is choices.NORMALIZED_PADDING_RESIZE_METHODS
        (the model does not import data/).

    A convention with another scale rule (one that also scales down to reach IMAGE_MIN_DIM,
    say) subclasses this and overrides ``scale``, written with ``ops`` only so that the
    exported model runs the same rule; its entry below is then the only change.
    """

    name: str
    limit_modes: tuple
    round_limit: bool
    centred: bool
    reduced_decode: bool
    resize: Callable
    tf_resize: Callable
    pixel_dtype: str = "uint8"

    def resized_shape(self, height, width, scale, ops=PYTHON_OPS):
        """(h, w) of the scaled image: each side times ``scale``, rounded, at least 1."""
        return ops.maximum(1, ops.round_int(height * scale)), ops.maximum(1, ops.round_int(width * scale))

    def scale(self, height, width, mode, min_dim, max_dim, min_scale, ops=PYTHON_OPS):
        """Input pixels per original pixel for an original ``height`` x ``width`` image."""
        one = ops.number(1.0)
        if not resize_mode(mode).scales:
            return one
        scale = ops.maximum(one, min_dim / ops.minimum(height, width)) if min_dim else one
        scale = ops.maximum(scale, ops.number(float(min_scale or 0.0)))
        if max_dim and mode in self.limit_modes:
            longest = ops.maximum(height, width)
            scaled = ops.round(longest * scale) if self.round_limit else longest * scale
            scale = ops.where(scaled > max_dim, max_dim / longest, scale)
        return scale

    def offset(self, padded, resized):
        """(y, x) of the resized image's top-left corner in the padded input: ints or int tensors."""
        if self.centred:
            return (padded[0] - resized[0]) // 2, (padded[1] - resized[1]) // 2
        return 0, 0


@dataclasses.dataclass(frozen=True)
class TorchvisionResize(ResizeMethod):
    """torchvision's resize (module docstring): its own scale and size rules."""

    def scale(self, height, width, mode, min_dim, max_dim, min_scale, ops=PYTHON_OPS):
        if not resize_mode(mode).scales:
            return ops.number(1.0)
        # In Python floats, as torchvision's _resize_image_and_masks (outside tracing).
        return ops.minimum(min_dim / ops.minimum(height, width), max_dim / ops.maximum(height, width))

    def resized_shape(self, height, width, scale, ops=PYTHON_OPS):
        """floor(side * scale), as torch's interpolate with recompute_scale_factor."""
        return ops.maximum(1, ops.floor_int(height * scale)), ops.maximum(1, ops.floor_int(width * scale))


# The IMAGE_RESIZE_METHOD registry (names: detection/choices.py RESIZE_METHODS).
RESIZE_METHODS = {
    # OpenCV's bilinear; the image at the top-left; the long-side limit in every scaling mode.
    "opencv": ResizeMethod("opencv", limit_modes=("square", "pad64"), round_limit=False, centred=False,
                           reduced_decode=True, resize=_opencv_resize, tf_resize=_opencv_tf_resize),
    # matterport's resize_image: scikit-image's zero-border bilinear truncated to uint8, centred,
    # the limit on the rounded side in square mode only.
    "matterport": ResizeMethod("matterport", limit_modes=("square",), round_limit=True, centred=True,
                               reduced_decode=False, resize=_zero_border_resize, tf_resize=_zero_border_tf_resize),
    # torchvision's GeneralizedRCNNTransform (module docstring).
    "torchvision": TorchvisionResize("torchvision", limit_modes=("pad32",), round_limit=False, centred=False,
                                     reduced_decode=False, resize=_torch_bilinear_resize,
                                     tf_resize=_torch_bilinear_tf_resize, pixel_dtype="float32"),
}


def resize_method(name):
    """The ResizeMethod called ``name``; ValueError naming IMAGE_RESIZE_METHOD for another name."""
    return choices.lookup(RESIZE_METHODS, name, "IMAGE_RESIZE_METHOD")


@dataclasses.dataclass(frozen=True)
class ResizeMode:
    """One IMAGE_RESIZE_MODE: whether it scales, and the padded size of a resized image.

    padded_shape(resized (h, w), max_dim, ops) -> (H, W), ints or int tensors."""

    scales: bool
    padded_shape: Callable


# The IMAGE_RESIZE_MODE registry (names: detection/choices.py RESIZE_MODES).
RESIZE_MODES = {
    "square": ResizeMode(True, lambda resized, max_dim, ops: (ops.int(max_dim), ops.int(max_dim))),
    "pad64": ResizeMode(True, lambda resized, max_dim, ops: (ops.round_up(resized[0], 64),
                                                            ops.round_up(resized[1], 64))),
    "pad32": ResizeMode(True, lambda resized, max_dim, ops: (ops.round_up(resized[0], 32),
                                                            ops.round_up(resized[1], 32))),
    "none": ResizeMode(False, lambda resized, max_dim, ops: (ops.round_up(resized[0], 64),
                                                            ops.round_up(resized[1], 64))),
}


def resize_mode(name):
    """The ResizeMode called ``name``; ValueError naming IMAGE_RESIZE_MODE for another name."""
    return choices.lookup(RESIZE_MODES, name, "IMAGE_RESIZE_MODE")


@dataclasses.dataclass(frozen=True)
class ResizeGeometry:
    """scale: input pixels per original pixel; resized_shape: (h, w) of the scaled image;
    padded_shape: (H, W) of the model input; offset: (y, x) of the image's top-left corner in
    it; method: the name of the IMAGE_RESIZE_METHOD that resizes the pixels."""

    scale: float
    resized_shape: tuple
    padded_shape: tuple
    offset: tuple = (0, 0)
    method: str = "opencv"

    @property
    def resize_method(self):
        """The ResizeMethod that resizes the pixels."""
        return resize_method(self.method)

    @property
    def window(self):
        """(y1, x1, y2, x2) of the resized image inside the padded input."""
        oy, ox = self.offset
        return (oy, ox, oy + self.resized_shape[0], ox + self.resized_shape[1])

    def unpadded(self):
        """The same resize with no padding (the padding is applied last)."""
        return dataclasses.replace(self, padded_shape=self.resized_shape, offset=(0, 0))


def resize_geometry(height, width, mode, min_dim, max_dim, min_scale=0.0, method="opencv"):
    """The geometry for an original image of ``height`` x ``width`` pixels (see module docstring)."""
    rule = resize_method(method)
    scale = rule.scale(height, width, mode, min_dim, max_dim, min_scale)
    resized = rule.resized_shape(height, width, scale)
    padded = resize_mode(mode).padded_shape(resized, max_dim, PYTHON_OPS)
    return ResizeGeometry(scale, resized, padded, rule.offset(padded, resized), method)


def geometry_from_config(height, width, config):
    """``resize_geometry`` with the config's IMAGE_* keys."""
    return resize_geometry(height, width, config.IMAGE_RESIZE_MODE, config.IMAGE_MIN_DIM,
                           config.IMAGE_MAX_DIM, config.IMAGE_MIN_SCALE, config.IMAGE_RESIZE_METHOD)
