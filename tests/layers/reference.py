"""Brute-force NumPy references for the target and proposal layer tests.

Written from the definitions (GUIDE.md section 3 and the layers' docstrings), in float64,
without detection.core: boxes [y1, x1, y2, x2], area without +1, anchors centred at
((i + 0.5) * stride, (j + 0.5) * stride) with ratio = width / height.
"""
import math

import numpy as np

from tests.model_fixtures import numpy_iou  # noqa: F401 (re-exported: the brute-force IoU)

# Not the layers' default (0.1, 0.1, 0.2, 0.2): a layer that dropped its bbox_std would show.
STD = (0.1, 0.15, 0.2, 0.25)
CLAMP = math.log(1000.0 / 16.0)


def pyramid_anchors(size, scales, ratios, strides):
    """[N, 4] anchors of a size x size input: one scale per level; order level, y, x, ratio."""
    rows = []
    for scale, stride in zip(scales, strides):
        cells = -(-size // stride)
        for i in range(cells):
            for j in range(cells):
                for ratio in ratios:
                    h, w = scale / math.sqrt(ratio), scale * math.sqrt(ratio)
                    cy, cx = (i + 0.5) * stride, (j + 0.5) * stride
                    rows.append([cy - h / 2, cx - w / 2, cy + h / 2, cx + w / 2])
    return np.array(rows)


def centre_size(boxes):
    boxes = np.asarray(boxes, np.float64)
    h, w = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    return boxes[:, 0] + h / 2, boxes[:, 1] + w / 2, h, w


def encode(boxes, anchors, std=STD):
    """(dy / h, dx / w, log(h' / h), log(w' / w)) / std, row by row."""
    by, bx, bh, bw = centre_size(boxes)
    ay, ax, ah, aw = centre_size(anchors)
    return np.stack([(by - ay) / ah, (bx - ax) / aw, np.log(bh / ah), np.log(bw / aw)], axis=1) / np.array(std)


def decode(deltas, anchors, std=STD):
    """The inverse of encode, dh and dw clamped at log(1000 / 16) before exp."""
    d = np.asarray(deltas, np.float64) * np.array(std)
    ay, ax, ah, aw = centre_size(anchors)
    cy, cx = ay + d[:, 0] * ah, ax + d[:, 1] * aw
    h, w = ah * np.exp(np.minimum(d[:, 2], CLAMP)), aw * np.exp(np.minimum(d[:, 3], CLAMP))
    return np.stack([cy - h / 2, cx - w / 2, cy + h / 2, cx + w / 2], axis=1)


def greedy_nms(boxes, threshold, max_out):
    """Indices kept by greedy NMS of ``boxes`` already in descending score order: a box is
    dropped when its IoU with a kept box exceeds ``threshold``."""
    iou = numpy_iou(boxes, boxes)
    kept = []
    for i in range(len(boxes)):
        if len(kept) < max_out and all(iou[i, k] <= threshold for k in kept):
            kept.append(i)
    return kept


def bilinear(image, ys, xs, edge=1e-4):
    """Samples ``image`` [h, w] at the grid ys [n] x xs [m] (pixel centres at integers), 0
    outside [0, h - 1] x [0, w - 1] (crop_and_resize's extrapolation value).

    Returns (values [n, m], near_edge [n, m] bool): samples within ``edge`` of the border,
    which float rounding in crop_and_resize may put on either side of it.
    """
    h, w = image.shape
    values = np.zeros((len(ys), len(xs)))
    near_edge = np.zeros((len(ys), len(xs)), bool)
    for a, y in enumerate(ys):
        for b, x in enumerate(xs):
            near_edge[a, b] = min(abs(y), abs(y - (h - 1)), abs(x), abs(x - (w - 1))) < edge
            if not (0 <= y <= h - 1 and 0 <= x <= w - 1):
                continue
            y0, x0 = int(math.floor(y)), int(math.floor(x))
            y1, x1 = min(y0 + 1, h - 1), min(x0 + 1, w - 1)
            fy, fx = y - y0, x - x0
            values[a, b] = ((1 - fy) * (1 - fx) * image[y0, x0] + (1 - fy) * fx * image[y0, x1]
                            + fy * (1 - fx) * image[y1, x0] + fy * fx * image[y1, x1])
    return values, near_edge
