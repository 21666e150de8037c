"""Evaluating a detector on a dataset: predict every record, convert, measure.

The predictor is duck-typed (``predict_records(records, progress=..., report=...)``
yielding one dict per image, see ``detections_to_coco_results``), so this module never
imports TensorFlow; tools/eval_coco.py and the trainer's end-of-epoch AP share it.

COCO metric: a COCO dataset is measured against its own annotation file (true mask areas
and crowd regions); any other dataset against GT built from its records (coco_gt.py).
Only the images predicted on are evaluated (``limit`` takes the first N records).
"""

import numpy as np

from detection.evaluation.coco import DEFAULT_BACKEND, evaluate_coco
from detection.evaluation.coco_gt import coco_gt_from_records
from detection.evaluation.results import detections_to_coco_results
from detection.evaluation.voc import evaluate_voc

METRICS = ("coco", "voc")


def evaluate_predictor(predictor, dataset, metric="coco", annotations=None, limit=None, iou_types=None,
                       backend=DEFAULT_BACKEND, use_07_metric=False, progress=True, log=print,
                       model_category_ids=None):
    """Runs ``predictor`` over ``dataset``'s records and evaluates its detections.

    predictor: has ``predict_records(records, progress=..., report=...)`` yielding per
        image {"image_id", "boxes": [N, 4] [y1, x1, y2, x2] original-image pixels,
        "class_ids": [N] 1..K, "scores": [N], "masks": None or [N, H, W] uint8}.
    dataset: has ``records`` (Record objects), ``class_names`` and ``category_ids`` (K
        each, index k - 1 for class k), as detection.data.records.Dataset; its ``report``
        (if any) counts the images found unreadable while predicting.
    metric: "coco" (COCO AP; ``iou_types`` default: bbox, plus segm when the detections
        carry masks and there is mask GT) or "voc" (VOC AP at IoU 0.5, 11-point if ``use_07_metric``).
    annotations: the COCO GT file (or dict) of a COCO dataset; None builds GT from records.
    limit: evaluate the first ``limit`` records only (None: all).
    model_category_ids: the dataset category id of each of the model's classes (its config's
        CATEGORY_IDS) when they differ from the dataset's own: a pretrained model's classes,
        e.g. torchvision's 90 COCO ids on a COCO dataset of 80 categories. Class k is then
        scored as the dataset's class of id ``model_category_ids[k - 1]``, and its detections
        dropped when the dataset has no such category (torchvision's "N/A" ids). None: the
        model's classes are the dataset's (a model trained on it).
    Returns (metrics, coco_results): {"bbox": ..., "segm": ...} or {"voc": ...} as
    evaluate_coco / evaluate_voc return them, and every detection as COCO result records
    (dataset category ids, xywh boxes, RLE masks), ready to write as a results file.
    """
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; expected one of {', '.join(METRICS)}")
    records = list(dataset.records[:limit] if limit else dataset.records)
    coco_results, boxes_only, has_masks = [], [], False
    to_dataset = _class_map(model_category_ids, dataset.category_ids)
    for detection in predictor.predict_records(records, progress=progress, report=getattr(dataset, "report", None)):
        if to_dataset is not None:
            detection = _mapped(detection, to_dataset)
        coco_results.extend(detections_to_coco_results(detection, dataset.category_ids))
        has_masks = has_masks or detection.get("masks") is not None
        # VOC needs boxes only; masks of a whole dataset would not fit in memory.
        boxes_only.append({k: detection[k] for k in ("image_id", "boxes", "class_ids", "scores")})

    if metric == "voc":
        ground_truth = [{"image_id": r.image_id, "boxes": r.boxes, "class_ids": r.class_ids,
                         "difficult": r.difficult} for r in records]
        voc = evaluate_voc(ground_truth, boxes_only, dataset.class_names, use_07_metric=use_07_metric, log=log)
        return {"voc": voc}, coco_results

    gt = annotations if annotations is not None else coco_gt_from_records(
        records, dataset.class_names, dataset.category_ids)
    if iou_types is None:
        # Mask GT exists when every record has segmentations or renders its masks (shapes).
        segm = has_masks and (annotations is not None or all(
            r.segmentations is not None or hasattr(r.synthetic, "visible_masks") for r in records))
        iou_types = ("bbox", "segm") if segm else ("bbox",)
    metrics = evaluate_coco(gt, coco_results, iou_types=iou_types, backend=backend,
                            image_ids=[r.image_id for r in records], log=log)
    return metrics, coco_results


def _class_map(model_category_ids, dataset_category_ids):
    """[K_model + 1] int array: the dataset class (1..K, 0: none) of each model class; None when
    the model's classes are the dataset's."""
    if model_category_ids is None or [int(c) for c in model_category_ids] == [int(c) for c in dataset_category_ids]:
        return None
    dataset_class = {int(c): k for k, c in enumerate(dataset_category_ids, start=1)}
    return np.array([0] + [dataset_class.get(int(c), 0) for c in model_category_ids], np.int64)


def _mapped(detection, to_dataset):
    """One image's detections with model classes replaced by dataset classes, those the
    dataset lacks dropped."""
    classes = to_dataset[np.asarray(detection["class_ids"], np.int64)]
    keep = classes > 0
    mapped = dict(detection, class_ids=classes[keep].astype(np.int32))
    for key in ("boxes", "scores", "masks"):
        if detection.get(key) is not None:
            mapped[key] = np.asarray(detection[key])[keep]
    return mapped
