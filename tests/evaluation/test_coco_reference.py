"""COCO evaluation on the cocoapi demo data (../shared/data/coco_eval): our wrapper against
the published numbers, against pycocotools run directly, and backend against backend."""

import contextlib
import io
import re

import pytest
from conftest import shared_dataset
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from detection.evaluation.coco import BACKENDS, METRIC_NAMES, evaluate_coco

from .helpers import assert_same_metrics

GT = "instances_val2014_100.json"
RESULTS = {"bbox": "instances_val2014_fakebbox100_results.json", "segm": "instances_val2014_fakesegm100_results.json"}


@pytest.fixture(scope="module")
def data():
    return shared_dataset("coco_eval")


@pytest.fixture(scope="module")
def ours(data):
    """{(backend, iou_type): (metrics, printed lines)} of our wrapper on the demo files."""
    runs = {}
    for backend in BACKENDS:
        for iou_type, name in RESULTS.items():
            lines = []
            metrics = evaluate_coco(data / GT, data / name, iou_types=(iou_type,), backend=backend, log=lines.append)
            runs[backend, iou_type] = metrics[iou_type], "\n".join(lines).splitlines()
    return runs


def direct_cocoeval(data, iou_type, category_ids=None):
    """pycocotools as its demo runs it, with no code of ours: (COCOeval, summary lines)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        gt = COCO(str(data / GT))
        evaluator = COCOeval(gt, gt.loadRes(str(data / RESULTS[iou_type])), iou_type)
        if category_ids is not None:
            evaluator.params.catIds = category_ids
        evaluator.evaluate()
        evaluator.accumulate()
    table = io.StringIO()
    with contextlib.redirect_stdout(table):
        evaluator.summarize()
    return evaluator, table.getvalue().splitlines()


def reference_values(data, iou_type):
    """The 12 numbers of val2014_fake_eval_res.txt (cocoapi's own run) for ``iou_type``."""
    text = (data / "val2014_fake_eval_res.txt").read_text()
    block = text.split(f"type={iou_type}\n")[1].split("type=")[0]
    return [float(v) for v in re.findall(r"\] = ([0-9.]+)", block)]


@pytest.mark.parametrize("backend", BACKENDS)
def test_published_demo_numbers(ours, backend):
    bbox, segm = ours[backend, "bbox"][0], ours[backend, "segm"][0]
    assert (round(bbox["AP"], 3), round(bbox["AP50"], 3), round(bbox["AP75"], 3)) == (0.505, 0.697, 0.573)
    assert round(segm["AP"], 3) == 0.320


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_all_twelve_numbers_match_the_reference_output(data, ours, backend, iou_type):
    metrics = ours[backend, iou_type][0]
    assert [round(metrics[name], 3) for name in METRIC_NAMES] == reference_values(data, iou_type)


@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_pycocotools_backend_equals_a_direct_pycocotools_run(data, ours, iou_type):
    evaluator, table = direct_cocoeval(data, iou_type)
    metrics, lines = ours["pycocotools", iou_type]
    assert [metrics[name] for name in METRIC_NAMES] == [float(v) for v in evaluator.stats]  # exactly
    assert lines[1:13] == table  # the standard 12-line summary, as pycocotools prints it


def test_per_category_ap_equals_pycocotools_restricted_to_that_category(data, ours):
    per_category = ours["pycocotools", "bbox"][0]["per_category"]
    # person (1): detected; umbrella (28): detected, never right; fire hydrant (11): no GT.
    for category_id, name in ((1, "person"), (28, "umbrella"), (11, "fire hydrant")):
        evaluator, _ = direct_cocoeval(data, "bbox", category_ids=[category_id])
        assert per_category[name] == evaluator.stats[0], name
    assert per_category["umbrella"] == 0.0 and per_category["fire hydrant"] == -1.0
    assert len(per_category) == 80 and sum(ap == -1 for ap in per_category.values()) == 10  # 10 without GT
    measured = [ap for ap in per_category.values() if ap >= 0]
    assert sum(measured) / len(measured) == pytest.approx(ours["pycocotools", "bbox"][0]["AP"], abs=1e-12)


@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_backends_agree_to_float_rounding_and_print_the_same_table(ours, iou_type):
    (reference, reference_lines), (faster, faster_lines) = (ours["pycocotools", iou_type],
                                                            ours["faster-coco-eval", iou_type])
    assert_same_metrics(reference, faster)
    assert reference_lines[1:13] == faster_lines[1:13]


def test_segm_ignores_boxes_in_the_results(data):
    """Mask results that also carry boxes: the instance area comes from the mask, not the box
    (both backends' loadRes alone would take it from the box; here every box is the whole
    image, which moves APs from 0.387 to 0.471)."""
    import json

    results = json.loads((data / RESULTS["segm"]).read_text())
    with_boxes = [dict(r, bbox=[0, 0, r["segmentation"]["size"][1], r["segmentation"]["size"][0]]) for r in results]
    plain = evaluate_coco(data / GT, results, iou_types=("segm",), log=None)["segm"]
    boxed = evaluate_coco(data / GT, with_boxes, iou_types=("segm",), log=None)["segm"]
    assert boxed == plain
    assert "bbox" in with_boxes[0]  # the caller's records are left as they were


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pycocotools' annToMask on NumPy 2
@pytest.mark.parametrize("backend", BACKENDS)
def test_gt_turned_into_model_detections_scores_ap_one(data, backend):
    """The model-output path end to end: GT boxes as [y1, x1, y2, x2], contiguous class
    ids and full-image masks -> detections_to_coco_results -> AP 1 for boxes and masks."""
    import numpy as np

    from detection.evaluation.results import detections_to_coco_results

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(data / GT))
    category_ids = sorted(gt.getCatIds())  # class k is category_ids[k - 1]
    image_ids = sorted(gt.getImgIds())[:25]
    results = []
    for image_id in image_ids:
        anns = [a for a in gt.imgToAnns[image_id] if not a["iscrowd"]]
        results += detections_to_coco_results({
            "image_id": image_id,
            "boxes": np.array([[y, x, y + h, x + w] for x, y, w, h in (a["bbox"] for a in anns)], np.float32),
            "class_ids": np.array([category_ids.index(a["category_id"]) + 1 for a in anns], np.int32),
            "scores": np.linspace(1, 0.5, len(anns), dtype=np.float32),
            "masks": np.array([gt.annToMask(a) for a in anns], np.uint8),
        }, category_ids)
    metrics = evaluate_coco(data / GT, results, iou_types=("bbox", "segm"), backend=backend,
                            image_ids=image_ids, log=None)
    for iou_type in ("bbox", "segm"):
        # float32 boxes move by ~1e-5 px: IoU 0.99999..., still above every threshold.
        assert metrics[iou_type]["AP"] == pytest.approx(1.0, abs=1e-12), iou_type
        assert metrics[iou_type]["AR100"] == pytest.approx(1.0, abs=1e-12), iou_type
