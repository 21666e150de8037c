"""Detections -> COCO results records, and the one-line errors for bad results."""

import json

import numpy as np
import pytest
from pycocotools import mask as mask_util

from detection.evaluation.coco import evaluate_coco
from detection.evaluation.errors import EvaluationError
from detection.evaluation.results import detections_to_coco_results

from .helpers import PERFECT, SMALL_GT, result


def detection(**changes):
    base = {"image_id": 7, "boxes": np.array([[10, 20, 50, 80], [0, 0, 5, 5]], np.float32),
            "class_ids": np.array([2, 1], np.int32), "scores": np.array([0.9, 0.25], np.float32), "masks": None}
    return {**base, **changes}


def test_boxes_become_xywh_and_classes_the_dataset_ids():
    results = detections_to_coco_results(detection(), category_ids=[17, 3])
    assert results == [
        {"image_id": 7, "category_id": 3, "bbox": [20.0, 10.0, 60.0, 40.0], "score": pytest.approx(0.9)},
        {"image_id": 7, "category_id": 17, "bbox": [0.0, 0.0, 5.0, 5.0], "score": 0.25},
    ]
    assert json.loads(json.dumps(results)) == results  # plain Python numbers, JSON-ready
    assert type(results[0]["image_id"]) is int and type(results[0]["score"]) is float


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pycocotools' decode on NumPy 2
def test_masks_become_rle_with_str_counts_that_decode_back():
    masks = np.zeros((2, 30, 40), np.uint8)
    masks[0, 10:20, 5:25] = 1
    masks[1, 0:3, 30:40] = 1
    results = detections_to_coco_results(detection(masks=masks), category_ids=[17, 3])
    rles = [r["segmentation"] for r in results]
    assert all(isinstance(rle["counts"], str) and rle["size"] == [30, 40] for rle in rles)
    json.dumps(results)
    decoded = mask_util.decode([{"size": rle["size"], "counts": rle["counts"].encode()} for rle in rles])
    assert np.array_equal(decoded.transpose(2, 0, 1), masks)
    assert mask_util.area([{"size": rles[0]["size"], "counts": rles[0]["counts"].encode()}])[0] == 200


def test_no_detections_give_no_records():
    empty = detection(boxes=np.zeros((0, 4)), class_ids=np.zeros(0, np.int32), scores=np.zeros(0),
                      masks=np.zeros((0, 30, 40), np.uint8))
    assert detections_to_coco_results(empty, category_ids=[1]) == []


@pytest.mark.parametrize("class_ids", [[0, 1], [3, 1]])
def test_class_ids_outside_1_to_k_are_an_error(class_ids):
    with pytest.raises(EvaluationError, match=r"image 7: class id \d is outside 1..2"):
        detections_to_coco_results(detection(class_ids=np.array(class_ids)), category_ids=[17, 3])


def test_arrays_of_different_lengths_are_an_error():
    with pytest.raises(EvaluationError, match="boxes 2, class_ids 2, scores 1"):
        detections_to_coco_results(detection(scores=np.array([0.5])), category_ids=[17, 3])


# ----------------------------------------------------------------------------------------
# Bad results: one line naming the record.


def error_of(results, iou_types=("bbox",), gt=SMALL_GT):
    with pytest.raises(EvaluationError) as info:
        evaluate_coco(gt, results, iou_types=iou_types, log=None)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_unknown_image_ids():
    message = error_of(PERFECT + [result(42, 5, (0, 0, 1, 1), 0.5), result(43, 5, (0, 0, 1, 1), 0.5)])
    assert message == "results: 2 record(s) name image_ids not among the GT images (first: record 3, image_id 42)"


def test_unknown_category_ids():
    message = error_of(PERFECT + [result(1, 6, (0, 0, 1, 1), 0.5)])
    assert message == ("results: 1 record(s) name category_ids not among the GT categories "
                       "(first: record 3, category_id 6)")


@pytest.mark.parametrize("field", ["image_id", "category_id", "score", "bbox"])
def test_a_record_missing_a_field(field):
    broken = [dict(r) for r in PERFECT]
    del broken[1][field]
    assert error_of(broken) == f"results: record 1 has no field {field!r} (needed for bbox evaluation)"


def test_segm_needs_a_segmentation():
    assert error_of(PERFECT, iou_types=("segm",)).startswith(
        "results: record 0 has no field 'segmentation' (needed for segm evaluation)")


@pytest.mark.parametrize("change, expected", [
    ({"bbox": [1, 2, 3]}, "bbox [1, 2, 3] is not [x, y, width, height] of 4 finite numbers"),
    ({"bbox": [1, 2, -3, 4]}, "bbox [1, 2, -3, 4] has a negative width or height"),
    ({"score": "high"}, "score 'high' is not a finite number"),
    ({"segmentation": [[0, 0, 5, 0, 5, 5]]}, "segmentation is not an RLE object"),
    ({"segmentation": {"size": [100, 100], "counts": "PPYo1"}}, "segmentation size [100, 100] is not the image's"),
])
def test_bad_values(change, expected):
    broken = [dict(r) for r in PERFECT]
    broken[2].update(change)
    iou_types = ("segm",) if "segmentation" in change else ("bbox",)
    if iou_types == ("segm",):
        for r in broken[:2]:
            r["segmentation"] = {"size": [200, 200], "counts": "PPYo1"}
    assert error_of(broken, iou_types).startswith(f"results: record 2: {expected}")


def test_results_that_are_not_a_list():
    assert error_of({"annotations": PERFECT}) == "results: expected a JSON list of result records, got an object"


def test_malformed_results_file_names_file_line_and_column(tmp_path):
    path = tmp_path / "dt.json"
    path.write_text('[\n  {"image_id": 1, "category_id": 5,\n   "score" 0.5}\n]\n')
    assert error_of(path) == f"{path}: not valid JSON at line 3, column 12: Expecting ':' delimiter"


def test_missing_files(tmp_path):
    assert error_of(tmp_path / "none.json") == f"{tmp_path / 'none.json'}: results file not found"
    with pytest.raises(EvaluationError, match="annotations file not found"):
        evaluate_coco(tmp_path / "gt.json", PERFECT, log=None)


def test_gt_without_the_coco_lists_or_fields(tmp_path):
    with pytest.raises(EvaluationError, match=r"no 'categories' list \(is this a COCO annotations file\?\)"):
        evaluate_coco({"images": [], "annotations": []}, PERFECT, log=None)
    gt = {**SMALL_GT, "annotations": [dict(a) for a in SMALL_GT["annotations"]]}
    del gt["annotations"][1]["area"]
    with pytest.raises(EvaluationError, match=r"annotations\[1\] has no field 'area'"):
        evaluate_coco(gt, PERFECT, log=None)


def test_numpy_values_in_memory_are_accepted():
    results = [{"image_id": np.int64(r["image_id"]), "category_id": np.int32(r["category_id"]),
                "bbox": np.array(r["bbox"], np.float32), "score": np.float32(r["score"])} for r in PERFECT]
    metrics = evaluate_coco(SMALL_GT, results, log=None)["bbox"]
    assert metrics["AP"] == pytest.approx(1.0, abs=1e-12)
