"""A predictor over a dataset (predict, convert, evaluate) and COCO GT built from records,
with a stand-in predictor that replays chosen boxes (the real model is tested elsewhere)."""

import types

import numpy as np
import pytest

from detection.data.records import Record
from detection.data.validation import ValidationReport
from detection.evaluation.coco_gt import coco_gt_from_records
from detection.evaluation.detector_eval import evaluate_predictor


def record(image_id, boxes, class_ids, difficult=None):
    boxes = np.array(boxes, np.float32).reshape(-1, 4)
    n = len(boxes)
    return Record(image_id=image_id, path=f"{image_id}.jpg", height=100, width=120, boxes=boxes,
                  class_ids=np.array(class_ids, np.int32), iscrowd=np.zeros(n, bool),
                  difficult=np.zeros(n, bool) if difficult is None else np.array(difficult, bool))


class ReplayPredictor:
    """Yields each record's GT boxes as detections (score 0.9), minus ``drop`` {image_id: n}
    trailing boxes; records what it was asked."""

    batch_size, score_threshold = 3, 0.05

    def __init__(self, drop=None):
        self.drop = drop or {}
        self.calls = []

    def predict_records(self, records, progress=False, report=None):
        self.calls.append([r.image_id for r in records])
        for r in records:
            keep = len(r.boxes) - self.drop.get(r.image_id, 0)
            yield {"image_id": r.image_id, "boxes": r.boxes[:keep], "class_ids": r.class_ids[:keep],
                   "scores": np.full(keep, 0.9, np.float32), "masks": None}


# Classes 1 "cat" and 2 "dog" are the dataset's categories 4 and 9.
DATASET = types.SimpleNamespace(
    records=[record(10, [[10, 20, 50, 80], [60, 60, 90, 100]], [1, 2], difficult=[False, True]),
             record(11, [[0, 0, 40, 40]], [1])],
    class_names=["cat", "dog"], category_ids=[4, 9], report=ValidationReport("test"))


def test_coco_gt_from_records():
    gt = coco_gt_from_records(DATASET.records, DATASET.class_names, DATASET.category_ids)
    assert gt["images"][0] == {"id": 10, "height": 100, "width": 120, "file_name": "10.jpg"}
    assert gt["categories"] == [{"id": 4, "name": "cat"}, {"id": 9, "name": "dog"}]
    first, difficult, last = gt["annotations"]
    assert first == {"id": 1, "image_id": 10, "category_id": 4, "bbox": [20.0, 10.0, 60.0, 40.0],
                     "area": 2400.0, "iscrowd": 0}
    assert difficult["category_id"] == 9 and difficult["iscrowd"] == 1  # VOC difficult: never counted
    assert last["id"] == 3 and last["image_id"] == 11


def test_perfect_predictor_scores_one_with_both_metrics():
    predictor = ReplayPredictor()
    coco, results = evaluate_predictor(predictor, DATASET, metric="coco", progress=False, log=None)
    assert list(coco) == ["bbox"]  # no masks predicted
    assert coco["bbox"]["AP"] == pytest.approx(1.0, abs=1e-12)
    assert coco["bbox"]["per_category"] == pytest.approx({"cat": 1.0, "dog": -1.0}, abs=1e-12)  # dog: difficult only
    assert sorted({r["category_id"] for r in results}) == [4, 9] and len(results) == 3
    assert predictor.calls == [[10, 11]]

    voc, _ = evaluate_predictor(ReplayPredictor(), DATASET, metric="voc", progress=False, log=None)
    assert voc["voc"]["per_class"] == pytest.approx({"cat": 1.0, "dog": -1.0})


class PretrainedPredictor(ReplayPredictor):
    """A model with its own three classes, dataset ids [9, 7, 4] (a pretrained model's list, as
    torchvision's 90 COCO ids): GT cat (id 4) comes out as class 3, dog (id 9) as class 1, and
    each image also has a box of class 2 (id 7), a category the dataset does not have."""

    def predict_records(self, records, progress=False, report=None):
        for d in super().predict_records(records, progress, report):
            yield dict(d, boxes=np.concatenate([d["boxes"], [[1, 1, 9, 9]]]).astype(np.float32),
                       class_ids=np.append(np.array([0, 3, 1])[d["class_ids"]], 2).astype(np.int32),
                       scores=np.append(d["scores"], np.float32(0.95)))


def test_a_pretrained_models_classes_are_mapped_by_their_dataset_ids():
    coco, results = evaluate_predictor(PretrainedPredictor(), DATASET, metric="coco", progress=False, log=None,
                                       model_category_ids=[9, 7, 4])
    assert coco["bbox"]["per_category"] == pytest.approx({"cat": 1.0, "dog": -1.0}, abs=1e-12)
    assert sorted(r["category_id"] for r in results) == [4, 4, 9]  # class 2 (id 7) dropped
    # the model's own classes taken as the dataset's: class 3 is outside the dataset's two
    with pytest.raises(ValueError, match="class id 3 is outside 1..2"):
        evaluate_predictor(PretrainedPredictor(), DATASET, metric="coco", progress=False, log=None)
    # ids equal to the dataset's: nothing changes
    _, same = evaluate_predictor(ReplayPredictor(), DATASET, metric="coco", progress=False, log=None,
                                 model_category_ids=[4, 9])
    assert sorted(r["category_id"] for r in same) == [4, 4, 9]


def test_a_missed_box_lowers_ap_and_limit_evaluates_only_the_first_images():
    predictor = ReplayPredictor(drop={11: 1})  # image 11's cat is missed: cat recall 1/2
    voc, _ = evaluate_predictor(predictor, DATASET, metric="voc", progress=False, log=None)
    assert voc["voc"]["mAP"] == pytest.approx(0.5)
    coco, _ = evaluate_predictor(predictor, DATASET, metric="coco", progress=False, log=None)
    assert coco["bbox"]["AP"] == pytest.approx(51 / 101, abs=1e-12)  # COCO: recall points 0, .01, ..., .5
    coco, _ = evaluate_predictor(predictor, DATASET, metric="coco", limit=1, progress=False, log=None)
    assert coco["bbox"]["AP"] == pytest.approx(1.0, abs=1e-12)
    assert predictor.calls[-1] == [10]


def test_unknown_metric():
    with pytest.raises(ValueError, match="unknown metric 'map'"):
        evaluate_predictor(ReplayPredictor(), DATASET, metric="map")
