"""The independent brute-force reference stat_gt's fast matcher is checked against."""
import numpy as np

from detection.core.anchors import generate_pyramid_anchors


def brute_force_match(boxes, padded_shape, scales, ratios, strides, anchor_stride, positive_iou):
    """Every anchor of one input, the full IoU matrix, in float64.

    boxes: [G, 4] float32 [y1, x1, y2, x2] input pixels; padded_shape: (H, W).
    Returns {best_iou [G], positive_anchors [G], level [G] of the first best anchor,
    level_best [G, L] best IoU on each level, anchor_num}.
    """
    anchors, levels = generate_pyramid_anchors(scales, ratios, padded_shape, strides, anchor_stride)
    a = anchors.astype(np.float64)
    g = np.asarray(boxes, np.float32).reshape(-1, 4).astype(np.float64)
    ih = np.maximum(np.minimum(g[:, None, 2], a[None, :, 2]) - np.maximum(g[:, None, 0], a[None, :, 0]), 0)
    iw = np.maximum(np.minimum(g[:, None, 3], a[None, :, 3]) - np.maximum(g[:, None, 1], a[None, :, 1]), 0)
    inter = ih * iw
    union = (((g[:, 2] - g[:, 0]) * (g[:, 3] - g[:, 1]))[:, None] + ((a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]))[None]
             - inter)
    iou = inter / union
    level_best = np.stack([iou[:, levels == i].max(axis=1) for i in range(len(scales))], axis=1)
    return {"best_iou": iou.max(axis=1), "positive_anchors": (iou >= positive_iou).sum(axis=1),
            "level": levels[iou.argmax(axis=1)], "level_best": level_best, "anchor_num": len(a)}
