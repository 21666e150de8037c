"""Where an image lands in the model input: the scale and the padding of IMAGE_RESIZE_MODE.

A point maps as ``input = original * scale + offset`` (and back as
``original = (input - offset) / scale``) on both axes; the window, where the resized image
sits in the padded input, is ``(oy, ox, oy + resized_h, ox + resized_w)``. Modes:
  square: scale so the short side reaches IMAGE_MIN_DIM but the long side stays within
          IMAGE_MAX_DIM; pad to IMAGE_MAX_DIM x IMAGE_MAX_DIM.
  pad64:  the same scale; pad each side up to a multiple of 64.
  none:   scale 1; pad each side up to a multiple of 64 (the stride of P6).

IMAGE_RESIZE_METHOD picks the rules' details (and the interpolation, detection/data/images.py):
  opencv      the resized image at the top-left (offset 0); the long-side limit is
              ``max(h, w) * scale > IMAGE_MAX_DIM`` in every mode but none.
  matterport  matterport's resize_image: the image centred in the padding (offset
              ``((H - h) // 2, (W - w) // 2)``); the long-side limit only in square mode,
              tested as ``round(max(h, w) * scale) > IMAGE_MAX_DIM``.

Example: a 480 x 640 image, square mode, IMAGE_MIN_DIM 800, IMAGE_MAX_DIM 1024: scale 1.6,
resized 768 x 1024, padded 1024 x 1024; window (0, 0, 768, 1024) with opencv,
(128, 0, 896, 1024) with matterport.
"""

import dataclasses
import math

METHODS = ("opencv", "matterport")


@dataclasses.dataclass(frozen=True)
class ResizeGeometry:
    """scale: input pixels per original pixel; resized_shape: (h, w) of the scaled image;
    padded_shape: (H, W) of the model input; offset: (y, x) of the image's top-left corner in
    it; method: the IMAGE_RESIZE_METHOD that resizes the pixels."""

    scale: float
    resized_shape: tuple
    padded_shape: tuple
    offset: tuple = (0, 0)
    method: str = "opencv"

    @property
    def window(self):
        """(y1, x1, y2, x2) of the resized image inside the padded input."""
        oy, ox = self.offset
        return (oy, ox, oy + self.resized_shape[0], ox + self.resized_shape[1])

    def unpadded(self):
        """The same resize with no padding (the padding is applied last)."""
        return dataclasses.replace(self, padded_shape=self.resized_shape, offset=(0, 0))


def _round_up(x, multiple):
    return int(math.ceil(x / multiple) * multiple)


def resize_geometry(height, width, mode, min_dim, max_dim, min_scale=0.0, method="opencv"):
    """The geometry for an original image of ``height`` x ``width`` pixels (see module docstring)."""
    if method not in METHODS:
        raise ValueError(f"unknown IMAGE_RESIZE_METHOD {method!r}; expected one of {METHODS}")
    if mode == "none":
        scale = 1.0
    else:
        scale = max(1.0, min_dim / min(height, width)) if min_dim else 1.0
        scale = max(scale, min_scale or 0.0)
        longest = max(height, width)
        if method == "opencv" and max_dim and longest * scale > max_dim:
            scale = max_dim / longest
        elif method == "matterport" and max_dim and mode == "square" and round(longest * scale) > max_dim:
            scale = max_dim / longest
    resized = (max(1, int(round(height * scale))), max(1, int(round(width * scale))))
    if mode == "square":
        padded = (max_dim, max_dim)
    elif mode in ("pad64", "none"):
        padded = (_round_up(resized[0], 64), _round_up(resized[1], 64))
    else:
        raise ValueError(f"unknown IMAGE_RESIZE_MODE {mode!r}")
    offset = (0, 0)
    if method == "matterport":
        offset = ((padded[0] - resized[0]) // 2, (padded[1] - resized[1]) // 2)
    return ResizeGeometry(scale, resized, padded, offset, method)


def geometry_from_config(height, width, config):
    """``resize_geometry`` with the config's IMAGE_* keys."""
    return resize_geometry(height, width, config.IMAGE_RESIZE_MODE, config.IMAGE_MIN_DIM,
                           config.IMAGE_MAX_DIM, config.IMAGE_MIN_SCALE, config.IMAGE_RESIZE_METHOD)
