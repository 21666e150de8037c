"""Pairs the detections of two models on one image (e.g. matterport's and ours on the same .h5).

Used to check that two implementations agree, detection by detection, where COCO AP would
hide a swapped or shifted box.
"""

import numpy as np

from detection.core.overlaps import pairwise_iou


def match_detections(reference, ours, min_iou=0.5):
    """Greedy one-to-one pairing -> [(reference index, our index)].

    reference, ours: dicts as Predictor.detect gives them: "rois" [N, 4] (or [M, 4]) boxes
    [y1, x1, y2, x2] in one frame, "class_ids" [N] and "scores" [N] (only the reference's
    scores are used). Each reference detection, highest score first, takes the unused
    detection of ours of the same class that overlaps it most, if that IoU is > min_iou.
    Reference detections left without a partner are absent from the result.

    Example: reference boxes [[0, 0, 10, 10]] of class 1 against ours [[0, 1, 10, 11]] of
    class 1 (IoU 9/11) and [[0, 0, 10, 10]] of class 2 give [(0, 0)].
    """
    n, m = len(reference["rois"]), len(ours["rois"])
    iou = pairwise_iou(reference["rois"], ours["rois"]) if n and m else np.zeros((n, m))
    used, pairs = set(), []
    for i in np.argsort(-np.asarray(reference["scores"], np.float64), kind="stable"):
        for j in np.argsort(-iou[i], kind="stable"):
            if j not in used and ours["class_ids"][j] == reference["class_ids"][i] and iou[i, j] > min_iou:
                used.add(j)
                pairs.append((int(i), int(j)))
                break
    return pairs
