"""match_detections: greedy one-to-one pairing of two models' detections."""

import numpy as np

from detection.evaluation.detection_match import match_detections


def dets(rois, class_ids, scores=None):
    return {"rois": np.array(rois, float).reshape(-1, 4), "class_ids": class_ids,
            "scores": scores if scores is not None else [1.0] * len(class_ids)}


def test_pairs_by_class_and_overlap_and_uses_each_of_ours_once():
    reference = dets([[0, 0, 10, 10], [0, 0, 10, 10], [50, 50, 60, 60]], [1, 1, 2], [0.9, 0.8, 0.7])
    ours = dets([[0, 1, 10, 11], [0, 0, 10, 10], [50, 50, 60, 60], [0, 0, 10, 10]], [1, 2, 1, 1])
    # reference 0 (best score) takes our exact box 3; reference 1 gets the shifted one (IoU 9/11);
    # reference 2's class 2 has no partner (ours 2 is class 1, ours 1 does not overlap it).
    assert match_detections(reference, ours) == [(0, 3), (1, 0)]


def test_min_iou_is_strict_and_empty_sides_give_no_pairs():
    reference = dets([[0, 0, 10, 10]], [1])
    half = dets([[0, 0, 10, 5]], [1])  # IoU exactly 0.5
    assert match_detections(reference, half) == []
    assert match_detections(reference, half, min_iou=0.49) == [(0, 0)]
    assert match_detections(reference, dets([], [])) == []
    assert match_detections(dets([], []), half) == []
