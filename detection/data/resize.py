"""Where an image lands in the model input: the scale and the padding of IMAGE_RESIZE_MODE.

The resized image is placed at the top-left of the padded input, so the window is
(0, 0, resized_h, resized_w) and a point maps as ``input = original * scale`` (and back as
``original = input / scale``) on both axes. Modes:
  square: scale so the short side reaches IMAGE_MIN_DIM but the long side stays within
          IMAGE_MAX_DIM; pad to IMAGE_MAX_DIM x IMAGE_MAX_DIM.
  pad64:  the same scale; pad each side up to a multiple of 64.
  none:   scale 1; pad each side up to a multiple of 64 (the stride of P6).
"""

import dataclasses
import math


@dataclasses.dataclass(frozen=True)
class ResizeGeometry:
    """scale: input pixels per original pixel; resized_shape: (h, w) of the scaled image;
    padded_shape: (H, W) of the model input; window: (y1, x1, y2, x2) of the image inside it."""

    scale: float
    resized_shape: tuple
    padded_shape: tuple

    @property
    def window(self):
        return (0, 0, self.resized_shape[0], self.resized_shape[1])


def _round_up(x, multiple):
    return int(math.ceil(x / multiple) * multiple)


def resize_geometry(height, width, mode, min_dim, max_dim, min_scale=0.0):
    """The geometry for an original image of ``height`` x ``width`` pixels (see module docstring)."""
    if mode == "none":
        scale = 1.0
    else:
        scale = max(1.0, min_dim / min(height, width)) if min_dim else 1.0
        scale = max(scale, min_scale or 0.0)
        if max_dim and max(height, width) * scale > max_dim:
            scale = max_dim / max(height, width)
    resized = (max(1, int(round(height * scale))), max(1, int(round(width * scale))))
    if mode == "square":
        padded = (max_dim, max_dim)
    elif mode in ("pad64", "none"):
        padded = (_round_up(resized[0], 64), _round_up(resized[1], 64))
    else:
        raise ValueError(f"unknown IMAGE_RESIZE_MODE {mode!r}")
    return ResizeGeometry(scale, resized, padded)


def geometry_from_config(height, width, config):
    """``resize_geometry`` with the config's IMAGE_* keys."""
    return resize_geometry(height, width, config.IMAGE_RESIZE_MODE, config.IMAGE_MIN_DIM,
                           config.IMAGE_MAX_DIM, config.IMAGE_MIN_SCALE)
