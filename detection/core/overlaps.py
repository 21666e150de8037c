"""Pairwise IoU in NumPy, for code that runs without TensorFlow (evaluation, analysis).

The in-graph version is detection.core.boxes.iou; both compute the same quantity on
``[y1, x1, y2, x2]`` boxes of one frame, area ``(y2 - y1) * (x2 - x1)`` with no +1.
"""

import numpy as np


def pairwise_iou(boxes_a, boxes_b):
    """IoU of boxes_a [N, 4] with boxes_b [M, 4] -> [N, M] float64 in [0, 1].

    Negative extents count as zero area; a pair whose union is empty (two zero-area boxes,
    e.g. padding rows) has IoU 0.

    Example: [0, 0, 10, 10] against [0, 5, 10, 15] gives 50 / 150 = 1/3.
    """
    a = np.asarray(boxes_a, np.float64).reshape(-1, 4)
    b = np.asarray(boxes_b, np.float64).reshape(-1, 4)
    ih = np.maximum(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0.0)
    iw = np.maximum(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0.0)
    inter = ih * iw
    area_a = np.maximum(a[:, 2] - a[:, 0], 0) * np.maximum(a[:, 3] - a[:, 1], 0)
    area_b = np.maximum(b[:, 2] - b[:, 0], 0) * np.maximum(b[:, 3] - b[:, 1], 0)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
