"""Instance masks: COCO segmentations to pixel masks, and matterport's mini masks.

A mini mask is an instance's mask cropped to its box and resized to MINI_MASK_SHAPE, so a
mask costs MINI_MASK_SHAPE pixels whatever the image size. ``expand_mini_mask`` undoes it
(up to resampling) for drawing and tests.

Example: a 4x4 box [2, 2, 6, 6] in an image whose mask is 1 on rows 2..3 (the top half of
the box) gives, at mini shape 2x2, [[1, 1], [0, 0]].
"""

import math
import warnings

import cv2
import numpy as np
from pycocotools import mask as mask_utils

# pycocotools 2.0.10's decode passes copy=False to a Cython __array__ (harmless on NumPy 2).
warnings.filterwarnings("ignore", message="__array__ implementation doesn't accept a copy keyword",
                        category=DeprecationWarning)


def decode_segmentation(segmentation, height, width, scale=1.0, out_shape=None):
    """A COCO segmentation as a pixel mask, optionally scaled.

    segmentation: a list of polygons [[x0, y0, x1, y1, ...], ...] or an RLE dict
        {"size": [height, width], "counts": list (uncompressed) or str}, in original-image
        pixels of an image ``height`` x ``width``.
    scale: input pixels per original pixel; out_shape: (h, w) of the output, default the
        original size scaled and rounded.
    Returns [h, w] uint8 in {0, 1}. Polygons are rasterised directly at the output size
    (sharper and cheaper than resizing); RLEs are decoded at the original size then resized
    with nearest-neighbour sampling.
    """
    if out_shape is None:
        out_shape = (max(1, int(round(height * scale))), max(1, int(round(width * scale))))
    oh, ow = out_shape
    if isinstance(segmentation, list):
        polygons = [list(np.asarray(p, np.float64) * scale) for p in segmentation]
        if not polygons:
            return np.zeros(out_shape, np.uint8)
        rle = mask_utils.merge(mask_utils.frPyObjects(polygons, oh, ow))
        return np.ascontiguousarray(mask_utils.decode(rle))
    if isinstance(segmentation.get("counts"), list):
        rle = mask_utils.frPyObjects(segmentation, height, width)
    else:
        rle = dict(segmentation)
        if isinstance(rle["counts"], str):
            rle["counts"] = rle["counts"].encode("ascii")
    mask = np.ascontiguousarray(mask_utils.decode(rle))
    if mask.shape != (oh, ow):
        mask = cv2.resize(mask, (ow, oh), interpolation=cv2.INTER_NEAREST)
    return mask


def mask_bbox(mask):
    """mask: [H, W] -> [y1, x1, y2, x2] float32 pixel edges of its nonzero pixels (zeros if none):
    ``[first row, first col, last row + 1, last col + 1]``."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return np.zeros(4, np.float32)
    return np.array([rows[0], cols[0], rows[-1] + 1, cols[-1] + 1], np.float32)


def encode_rle(masks):
    """masks: [H, W, N] (nonzero = inside), matterport's layout -> N compressed COCO RLE dicts
    {"size": [H, W], "counts": str} (str, not bytes: the dicts go into JSON as they are)."""
    masks = np.asarray(masks)
    if masks.shape[-1] == 0:
        return []
    rles = mask_utils.encode(np.asfortranarray(masks != 0, dtype=np.uint8))
    for rle in rles:
        rle["counts"] = rle["counts"].decode("ascii")
    return rles


def resize_masks(masks, out_shape):
    """masks: [N, h, w] uint8 -> [N, out_h, out_w] uint8, nearest-neighbour."""
    if masks.shape[1:] == tuple(out_shape):
        return masks
    out = np.zeros((len(masks),) + tuple(out_shape), np.uint8)
    for i, m in enumerate(masks):
        out[i] = cv2.resize(m, (out_shape[1], out_shape[0]), interpolation=cv2.INTER_NEAREST)
    return out


def mini_masks(masks, boxes, mini_shape):
    """Crops each mask to its box and resizes it to ``mini_shape``.

    masks: [N, H, W] uint8 in {0, 1}, the frame of ``boxes``;
    boxes: [N, 4] float [y1, x1, y2, x2] pixels of that frame;
    mini_shape: (mh, mw).
    Returns [N, mh, mw] uint8 in {0, 1}: bilinear resize of the crop, thresholded at 0.5
    (matterport's rounding). The crop spans rows floor(y1) .. ceil(y2) - 1, so a box on pixel
    edges (as the loaders make) crops exactly. A box with no pixels gives zeros.
    """
    mh, mw = mini_shape
    out = np.zeros((len(masks), mh, mw), np.uint8)
    height, width = masks.shape[1:3] if len(masks) else (0, 0)
    for i, (mask, box) in enumerate(zip(masks, boxes)):
        y1, x1 = max(0, math.floor(box[0])), max(0, math.floor(box[1]))
        y2, x2 = min(height, math.ceil(box[2])), min(width, math.ceil(box[3]))
        if y2 <= y1 or x2 <= x1:
            continue
        crop = mask[y1:y2, x1:x2].astype(np.float32)
        out[i] = cv2.resize(crop, (mw, mh), interpolation=cv2.INTER_LINEAR) >= 0.5
    return out


def expand_mini_mask(mini_mask, box, image_shape):
    """The inverse of ``mini_masks`` for one instance: mini_mask [mh, mw] placed in its box
    [y1, x1, y2, x2] -> [H, W] uint8 for ``image_shape`` (H, W)."""
    out = np.zeros(tuple(image_shape[:2]), np.uint8)
    y1, x1 = max(0, math.floor(box[0])), max(0, math.floor(box[1]))
    y2, x2 = min(out.shape[0], math.ceil(box[2])), min(out.shape[1], math.ceil(box[3]))
    if y2 > y1 and x2 > x1:
        resized = cv2.resize(mini_mask.astype(np.float32), (x2 - x1, y2 - y1), interpolation=cv2.INTER_LINEAR)
        out[y1:y2, x1:x2] = resized >= 0.5
    return out
