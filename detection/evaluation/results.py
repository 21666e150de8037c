"""COCO results records: made from model detections, and checked against the GT.

A COCO result record is one detection::

    {"image_id": 42, "category_id": 18, "bbox": [x, y, w, h], "score": 0.9,
     "segmentation": {"size": [H, W], "counts": "..."}}     # segmentation: masks only

``bbox`` is in original-image pixels, x/y the top-left corner; ``category_id`` is the
dataset's own id (COCO ids are not contiguous: 1..90 for 80 classes);
``segmentation`` is a compressed RLE of the full-image mask, counts as a str for JSON.

pycocotools checks almost nothing (an unknown category id is silently dropped, an unknown
image id is an AssertionError, a missing field a KeyError deep inside): ``check_results``
turns every such problem into a one-line EvaluationError naming the record.
"""

import math
import numbers

import numpy as np

from detection.evaluation.errors import EvaluationError


def detections_to_coco_results(detection, category_ids):
    """One image's detections -> a list of COCO result records.

    detection: a predictor output dict:
        image_id: int, the dataset's own image id.
        boxes: [N, 4] float, [y1, x1, y2, x2] in ORIGINAL-image pixels.
        class_ids: [N] int, contiguous class ids 1..K.
        scores: [N] float.
        masks: None, or [N, H, W] uint8/bool full-image masks at the original image size.
    category_ids: K ints; category_ids[k - 1] is the dataset's own id of class k.
    Returns N dicts {"image_id", "category_id", "bbox": [x, y, w, h], "score"}, plus
    "segmentation" (RLE, counts a str) when masks are given.

    Example: boxes [[10, 20, 50, 80]], class_ids [2], category_ids [1, 3] ->
    [{"image_id": ..., "category_id": 3, "bbox": [20.0, 10.0, 60.0, 40.0], "score": ...}].
    """
    image_id = int(detection["image_id"])
    boxes = np.asarray(detection["boxes"], dtype=np.float64).reshape(-1, 4)
    class_ids = np.asarray(detection["class_ids"]).reshape(-1)
    scores = np.asarray(detection["scores"], dtype=np.float64).reshape(-1)
    masks = detection.get("masks")
    n = len(boxes)
    if len(class_ids) != n or len(scores) != n or (masks is not None and len(masks) != n):
        sizes = f"boxes {n}, class_ids {len(class_ids)}, scores {len(scores)}"
        sizes += f", masks {len(masks)}" if masks is not None else ""
        raise EvaluationError(f"image {image_id}: detections of different lengths ({sizes})")
    bad = (class_ids < 1) | (class_ids > len(category_ids))
    if bad.any():
        raise EvaluationError(f"image {image_id}: class id {int(class_ids[bad][0])} is outside 1..{len(category_ids)} "
                              f"(the {len(category_ids)} dataset categories)")
    if n == 0:
        return []

    y1, x1, y2, x2 = boxes.T
    xywh = np.stack([x1, y1, x2 - x1, y2 - y1], axis=1).tolist()
    results = [
        {"image_id": image_id, "category_id": int(category_ids[int(k) - 1]), "bbox": box, "score": float(s)}
        for k, box, s in zip(class_ids, xywh, scores)
    ]
    if masks is not None:
        for result, rle in zip(results, encode_masks(masks)):
            result["segmentation"] = rle
    return results


def encode_masks(masks):
    """[N, H, W] full-image masks (nonzero = inside) -> N compressed RLE dicts
    {"size": [H, W], "counts": str}, the form COCO results files hold."""
    from detection.data.masks import encode_rle

    masks = np.asarray(masks)
    if masks.ndim != 3:
        raise EvaluationError(f"masks must be [N, H, W], got shape {list(masks.shape)}")
    return encode_rle(np.transpose(masks, (1, 2, 0)))


# ----------------------------------------------------------------------------------------
# Checking records against the ground truth.

_REQUIRED = ("image_id", "category_id", "score")


def check_results(results, gt, iou_type, source="results"):
    """Checks COCO result records against the GT; returns copies ready for ``loadRes``.

    results: a list of result records (see module docstring).
    gt: the COCO ground-truth dict ({"images": [...], "categories": [...], ...}).
    iou_type: "bbox" (every record needs "bbox", or none has one and every one has a
        "segmentation" to take the box from, as pycocotools does) or "segm" (every record
        needs an RLE "segmentation" of its image's size).
    source: names the results in error messages (the file path).
    Raises EvaluationError, one line: the first bad record by index, and for unknown ids
    how many records have one.

    The copies are shallow, with Python numbers for ids, score and bbox; for segm they drop
    "bbox": pycocotools would otherwise take the instance area (small/medium/large) from the
    box, not from the mask.
    """
    if not isinstance(results, list):
        raise EvaluationError(f"{source}: expected a JSON list of result records, got {_json_type(results)}")
    image_sizes = {img["id"]: (img.get("height"), img.get("width")) for img in gt["images"]}
    category_ids = {cat["id"] for cat in gt["categories"]}
    derive_boxes = iou_type == "bbox" and bool(results) and not any(
        isinstance(r, dict) and "bbox" in r for r in results)
    required = _REQUIRED + (("segmentation",) if iou_type == "segm" or derive_boxes else ("bbox",))

    unknown_images, unknown_categories = [], []
    checked = []
    for i, record in enumerate(results):
        where = f"{source}: record {i}"
        if not isinstance(record, dict):
            raise EvaluationError(f"{where} is {_json_type(record)}, expected an object")
        missing = [field for field in required if field not in record]
        if missing:
            raise EvaluationError(f"{where} has no field {missing[0]!r} (needed for {iou_type} evaluation)")
        if not _is_known(record["image_id"], image_sizes):
            unknown_images.append(i)
            continue
        if not _is_known(record["category_id"], category_ids):
            unknown_categories.append(i)
            continue
        if not _is_number(record["score"]):
            raise EvaluationError(f"{where}: score {record['score']!r} is not a finite number")
        if "bbox" in required:
            _check_box(record["bbox"], where)
        if "segmentation" in required:
            _check_rle(record["segmentation"], image_sizes[record["image_id"]], where)
        copy = dict(record, score=float(record["score"]))
        for key in ("image_id", "category_id"):
            if isinstance(record[key], numbers.Integral):
                copy[key] = int(record[key])  # NumPy ints: the backends want Python ones
        if iou_type == "segm":
            copy.pop("bbox", None)
        elif "bbox" in copy:
            copy["bbox"] = [float(v) for v in copy["bbox"]]  # loadRes fails on a NumPy array
        checked.append(copy)

    for indices, field, what in ((unknown_images, "image_id", "images"),
                                 (unknown_categories, "category_id", "categories")):
        if indices:
            first = indices[0]
            raise EvaluationError(
                f"{source}: {len(indices)} record(s) name {field}s not among the GT {what} "
                f"(first: record {first}, {field} {results[first][field]!r})")
    return checked


def _json_type(value):
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")


def _is_known(value, ids):
    # bool is an int to Python (True == 1), never an id; lists and objects are unhashable.
    # numbers.Integral also admits NumPy integers, from in-memory results.
    return isinstance(value, (numbers.Integral, str)) and not isinstance(value, bool) and value in ids


def _is_number(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _check_box(box, where):
    if not (isinstance(box, (list, tuple, np.ndarray)) and len(box) == 4 and all(_is_number(v) for v in box)):
        raise EvaluationError(f"{where}: bbox {box!r} is not [x, y, width, height] of 4 finite numbers")
    if box[2] < 0 or box[3] < 0:
        raise EvaluationError(f"{where}: bbox {box!r} has a negative width or height")


def _check_rle(segmentation, image_size, where):
    if not (isinstance(segmentation, dict) and "size" in segmentation and "counts" in segmentation):
        raise EvaluationError(f"{where}: segmentation is not an RLE object {{\"size\": [H, W], \"counts\": ...}} "
                              "(COCO results hold RLE, not polygons)")
    if None not in image_size and list(segmentation["size"]) != list(image_size):
        raise EvaluationError(f"{where}: segmentation size {list(segmentation['size'])} is not the image's "
                              f"[height, width] {list(image_size)}")
