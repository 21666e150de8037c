"""COCO evaluation on small hand-made cases, both backends: values worked out by hand.

SMALL_GT: image 1 has cat A; image 2 has cat B and a dog; image 3 has no GT; cow has no
GT anywhere. Every box is 50x50 ("medium"), so APs/APl/ARs/ARl are -1 throughout.
"""

import copy

import pytest
from pycocotools import mask as mask_util

from detection.evaluation.coco import BACKENDS, METRIC_NAMES, evaluate_coco
from detection.evaluation.errors import EvaluationWarning

from .helpers import CAT_A, PERFECT, SMALL_GT, assert_same_metrics, result

NO_SIZE = {"APs": -1.0, "APl": -1.0, "ARs": -1.0, "ARl": -1.0}


def approx(expected):
    # COCOeval's precision is tp / (tp + fp + eps): a perfect AP is 1 - 2e-16, not 1.
    return pytest.approx(expected, abs=1e-12)


def evaluate_both(results, **kwargs):
    """Our metrics of ``results`` on SMALL_GT with each backend, checked to agree; returns one."""
    runs = [evaluate_coco(SMALL_GT, results, backend=b, log=None, **kwargs)["bbox"] for b in BACKENDS]
    assert_same_metrics(*runs)
    return runs[0]


def test_perfect_detections():
    metrics = evaluate_both(PERFECT)
    assert {k: metrics[k] for k in METRIC_NAMES} == approx({**{k: 1.0 for k in METRIC_NAMES}, **NO_SIZE})
    assert metrics["per_category"] == approx({"cat": 1.0, "dog": 1.0, "cow": -1.0})


def test_no_detections_is_zero_with_a_warning_not_a_crash():
    with pytest.warns(EvaluationWarning, match="no detections"):
        metrics = evaluate_both([])
    assert {k: metrics[k] for k in METRIC_NAMES} == {**{k: 0.0 for k in METRIC_NAMES}, **NO_SIZE}
    assert metrics["per_category"] == {"cat": 0.0, "dog": 0.0, "cow": -1.0}


def test_a_false_positive_on_an_image_without_gt_counts():
    # cat, by score: FP (image 3), TP, TP -> precision 0, 1/2, 2/3 at recall 0, 1/2, 1;
    # the monotone envelope is 2/3 at every recall point, so cat AP = 2/3 at every IoU.
    metrics = evaluate_both(PERFECT + [result(3, 5, CAT_A, 0.95)])
    assert metrics["per_category"] == approx({"cat": 2 / 3, "dog": 1.0, "cow": -1.0})
    assert metrics["AP"] == approx((2 / 3 + 1) / 2)
    assert metrics["AR100"] == 1.0  # every GT box is still found


def test_a_category_never_detected_has_ap_zero_and_counts_in_the_mean():
    metrics = evaluate_both([r for r in PERFECT if r["category_id"] != 7])
    assert metrics["per_category"] == approx({"cat": 1.0, "dog": 0.0, "cow": -1.0})
    assert metrics["AP"] == approx(0.5) and metrics["AR100"] == 0.5


def test_detections_of_a_category_without_gt_change_nothing():
    metrics = evaluate_both(PERFECT + [result(1, 9, CAT_A, 0.99)])
    assert metrics["per_category"]["cow"] == -1.0 and metrics["AP"] == approx(1.0)


def test_a_loose_box_counts_at_iou_50_not_at_75():
    # The dog box shifted by 10 px: IoU = 40*50 / (2*2500 - 2000) = 2/3, a hit at 0.50..0.65 only.
    metrics = evaluate_both([r for r in PERFECT if r["category_id"] != 7] + [result(2, 7, (30, 120, 50, 50), 0.9)])
    assert metrics["per_category"]["dog"] == approx(4 / 10)  # 4 of 10 thresholds
    assert metrics["AP50"] == approx(1.0) and metrics["AP75"] == approx(0.5)


def test_image_ids_restrict_the_evaluation():
    # Without the dog detection the dog is missed; evaluating images 1 and 3 only leaves it out.
    results = [r for r in PERFECT if r["category_id"] != 7]
    metrics = evaluate_both(results, image_ids=[1, 3])
    assert metrics["per_category"] == approx({"cat": 1.0, "dog": -1.0, "cow": -1.0})
    assert metrics["AP"] == approx(1.0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_inputs_are_left_unchanged(backend):
    gt, results = copy.deepcopy(SMALL_GT), copy.deepcopy(PERFECT)
    evaluate_coco(gt, results, backend=backend, log=None)
    assert gt == SMALL_GT and results == PERFECT  # loadRes adds "id", "area"... to its own copies


def test_printed_report_has_the_summary_and_a_per_category_table():
    lines = []
    evaluate_coco(SMALL_GT, PERFECT, backend="pycocotools", log=lambda text: lines.extend(text.splitlines()))
    assert lines[0].startswith("COCO bbox evaluation (pycocotools): 3 images, 3 results")
    assert lines[1].endswith("= 1.000") and "IoU=0.50:0.95" in lines[1] and lines[4].endswith("= -1.000")
    assert len([line for line in lines if "maxDets" in line]) == 12
    assert lines[13].split() == ["category", "AP", "|", "category", "AP", "|", "category", "AP"]
    assert lines[15].split() == ["cat", "1.000", "|", "dog", "1.000", "|", "cow", "-"]


def test_one_checked_list_runs_on_both_backends_in_turn():
    # loadRes writes into result records (segm: a numpy "bbox"); run_cocoeval copies them,
    # so the bench can time the same list again and again.
    from detection.evaluation.coco import run_cocoeval
    from detection.evaluation.results import check_results

    from .helpers import box_polygon

    rles = mask_util.frPyObjects([box_polygon(r["bbox"]) for r in PERFECT], 200, 200)
    results = [{**r, "segmentation": {"size": rle["size"], "counts": rle["counts"].decode()}}
               for r, rle in zip(PERFECT, rles)]
    checked = check_results(results, SMALL_GT, "segm")
    stats = [list(run_cocoeval(SMALL_GT, checked, "segm", backend)[0].stats) for backend in BACKENDS * 2]
    assert all(s == pytest.approx(stats[0], abs=1e-12) for s in stats)
    assert stats[0][0] == pytest.approx(1.0, abs=1e-12)
    assert "bbox" not in checked[0] and "id" not in checked[0]
