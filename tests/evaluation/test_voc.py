"""VOC mAP against cases worked out by hand (boxes [y1, x1, y2, x2], one image unless said)."""

import numpy as np
import pytest

from detection.core.overlaps import pairwise_iou
from detection.evaluation.errors import EvaluationError
from detection.evaluation.voc import average_precision, evaluate_voc

A = [0, 0, 10, 10]
B = [20, 20, 30, 30]
FAR = [50, 50, 60, 60]


def gt(image_id, boxes, class_ids, difficult=None):
    entry = {"image_id": image_id, "boxes": np.array(boxes, np.float32).reshape(-1, 4),
             "class_ids": np.array(class_ids)}
    if difficult is not None:
        entry["difficult"] = np.array(difficult, bool)
    return entry


def det(image_id, boxes, class_ids, scores):
    return {"image_id": image_id, "boxes": np.array(boxes, np.float32).reshape(-1, 4),
            "class_ids": np.array(class_ids), "scores": np.array(scores, np.float32)}


def ap(ground_truth, detections, use_07_metric=False, names=("thing",)):
    result = evaluate_voc(ground_truth, detections, list(names), use_07_metric=use_07_metric, log=None)
    return result["per_class"][names[0]], result


@pytest.mark.parametrize("use_07_metric", [False, True])
def test_a_detection_on_a_difficult_box_is_neither_tp_nor_fp(use_07_metric):
    # d1 on difficult B (0.9), d2 on nothing (0.8), d3 on A (0.7).
    dets = [det(1, [B, FAR, A], [1, 1, 1], [0.9, 0.8, 0.7])]
    # d1 ignored: FP, TP -> precision 1/2 at recall 1, AP 0.5 (were d1 a FP: 1/3).
    assert ap([gt(1, [A, B], [1, 1], [False, True])], dets, use_07_metric)[0] == pytest.approx(0.5)
    # B not difficult: TP, FP, TP -> recall 1/2, 1/2, 1; precision 1, 1/2, 2/3.
    expected = 0.5 * 1 + 0.5 * 2 / 3 if not use_07_metric else (6 * 1 + 5 * 2 / 3) / 11
    assert ap([gt(1, [A, B], [1, 1], [False, False])], dets, use_07_metric)[0] == pytest.approx(expected)


def test_difficult_boxes_do_not_count_as_positives():
    # Only the difficult box found: nothing to find remains undetected, A is missed -> AP 0.
    assert ap([gt(1, [A, B], [1, 1], [False, True])], [det(1, [B], [1], [0.9])])[0] == 0.0
    # Only a difficult GT: no positive at all -> -1, left out of the mean.
    value, result = ap([gt(1, [B], [1], [True])], [det(1, [B], [1], [0.9])])
    assert value == -1.0 and result["mAP"] == -1.0


def test_a_duplicate_is_a_false_positive():
    # TP, then the same box again: precision 1, 1/2 at recall 1, 1 -> AP 1 (the envelope);
    # a second GT missed would halve it: recall 1/2 -> AP 0.5.
    assert ap([gt(1, [A], [1])], [det(1, [A, A], [1, 1], [0.9, 0.8])])[0] == pytest.approx(1.0)
    assert ap([gt(1, [A, B], [1, 1])], [det(1, [A, A], [1, 1], [0.9, 0.8])])[0] == pytest.approx(0.5)


def test_a_detection_takes_its_best_gt_even_when_taken_like_the_devkit():
    # C overlaps A by 1/3. d2 has IoU 2/3 with A (taken by d1) and 7/13 with C: FP, not a
    # match with C. TP, FP -> recall 1/2, precision 1 then 1/2.
    C = [0, 5, 10, 15]
    ground_truth = [gt(1, [A, C], [1, 1])]
    dets = [det(1, [A, [0, 2, 10, 12]], [1, 1], [0.9, 0.8])]
    assert pairwise_iou([[0, 2, 10, 12]], [A, C])[0] == pytest.approx([2 / 3, 7 / 13])
    assert ap(ground_truth, dets)[0] == pytest.approx(0.5)
    assert ap(ground_truth, dets, use_07_metric=True)[0] == pytest.approx(6 / 11)  # r = 0, ..., 0.5


def test_iou_exactly_at_the_threshold_matches():
    # Half of A: IoU 50 / 100 = 0.5 >= 0.5, as VOCevaldet.m (the Python ports' > says no).
    assert ap([gt(1, [A], [1])], [det(1, [[0, 0, 10, 5]], [1], [0.9])])[0] == pytest.approx(1.0)
    assert ap([gt(1, [A], [1])], [det(1, [[0, 0, 10, 4.9]], [1], [0.9])])[0] == 0.0


def test_eleven_point_includes_a_recall_of_exactly_three_tenths():
    # 10 GT, 3 found first with precision 1, nothing else: recall 0.1, 0.2, 0.3.
    boxes = [[20 * i, 0, 20 * i + 10, 10] for i in range(10)]
    dets = [det(1, boxes[:3], [1] * 3, [0.9, 0.8, 0.7])]
    assert ap([gt(1, boxes, [1] * 10)], dets)[0] == pytest.approx(0.3)
    assert ap([gt(1, boxes, [1] * 10)], dets, use_07_metric=True)[0] == pytest.approx(4 / 11)  # 0, .1, .2, .3


def test_average_precision_of_a_curve():
    recall, precision = [0.5, 0.5, 1.0], [1.0, 0.5, 2 / 3]
    assert average_precision(recall, precision) == pytest.approx(0.5 + 0.5 * 2 / 3)
    assert average_precision(recall, precision, use_07_metric=True) == pytest.approx((6 + 5 * 2 / 3) / 11)
    assert average_precision([], []) == 0.0


def test_classes_and_images_are_kept_apart():
    # Class 1 on image 1, class 2 on image 2; a class-2 box on image 1's A is a class-2 FP
    # ranked first: class 2 gets FP, TP -> AP 1/2; class 1 is perfect.
    ground_truth = [gt(1, [A], [1]), gt(2, [B], [2]), gt(3, [], [])]
    dets = [det(1, [A, A], [1, 2], [0.5, 0.9]), det(2, [B], [2], [0.8])]
    result = evaluate_voc(ground_truth, dets, ["cat", "dog"], log=None)
    assert result["per_class"] == pytest.approx({"cat": 1.0, "dog": 0.5})
    assert result["mAP"] == pytest.approx(0.75)
    assert result["metric"] == "voc2010_allpoint" and result["iou_threshold"] == 0.5


def test_images_without_detections_and_classes_without_any():
    ground_truth = [gt(1, [A], [1]), gt(2, [B], [2])]
    result = evaluate_voc(ground_truth, [det(1, [A], [1], [0.9])], ["cat", "dog"], log=None)
    assert result["per_class"] == pytest.approx({"cat": 1.0, "dog": 0.0})
    assert result["mAP"] == pytest.approx(0.5)


def test_equal_scores_keep_their_input_order():
    # Two detections at the same score: an FP listed first ranks first -> AP 1/2, not 1.
    dets = [det(1, [FAR, A], [1, 1], [0.5, 0.5])]
    assert ap([gt(1, [A], [1])], dets)[0] == pytest.approx(0.5)


def test_bad_inputs_are_one_line_errors():
    with pytest.raises(EvaluationError, match="detections name image_id 9, which has no ground truth entry"):
        evaluate_voc([gt(1, [A], [1])], [det(9, [A], [1], [0.9])], ["cat"], log=None)
    with pytest.raises(EvaluationError, match=r"detections of image 1: class id 2 is outside 1..1"):
        evaluate_voc([gt(1, [A], [1])], [det(1, [A], [2], [0.9])], ["cat"], log=None)
    with pytest.raises(EvaluationError, match="1 boxes but 2 difficult flags"):
        evaluate_voc([gt(1, [A], [1], [True, False])], [], ["cat"], log=None)


def test_printed_table(capsys):
    evaluate_voc([gt(1, [A], [1])], [det(1, [A], [1], [0.9])], ["cat", "dog"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "VOC voc2010_allpoint AP at IoU 0.5: 1 images, 1 detections"
    assert lines[3].split() == ["cat", "1.000", "|", "dog", "-"]
    assert lines[-1] == "mAP = 1.0000"
