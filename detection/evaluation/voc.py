"""Pascal VOC detection mAP: AP per class at one IoU threshold (0.5), as the VOC devkit.

The rules of the official devkit (VOCevaldet.m), per class:
  1. All detections of the class, over all images, sorted by score, highest first (a
     stable sort: equal scores keep their input order).
  2. Each detection takes the GT box of its image and class with the highest IoU, whether
     that box is difficult or already taken.
  3. IoU >= threshold and the box is difficult: the detection is ignored, neither a true
     nor a false positive. IoU >= threshold and the box is free: true positive, the box
     is taken. Taken already: false positive (a duplicate). IoU < threshold: false positive.
  4. Recall = TP / (number of non-difficult GT boxes); precision = TP / (TP + FP).
  5. AP: all-point (VOC2010 and later) is the area under the precision-recall curve made
     monotone (precision at recall r = best precision at any recall >= r); 11-point
     (VOC2007) is the mean over recall r in {0, 0.1, ..., 1} of the best precision at
     recall >= r (0 where that recall is never reached).

Where this differs from the devkit, on purpose:
  - Boxes are [y1, x1, y2, x2] with area (y2 - y1) * (x2 - x1), no +1 (the project's
    convention). The devkit's +1 is for inclusive integer pixel indices; a box given as
    (xmin - 1, ymin - 1, xmax, ymax) in continuous coordinates has the devkit's area.
  - The 11 recall points are k / 10 exactly; MATLAB's 0:0.1:1 makes the fourth one
    0.30000000000000004, so the devkit misses a recall of exactly 0.3 (3 of 10 boxes).
  - A class with no non-difficult GT box has AP -1 (the devkit divides by zero) and is
    left out of the mean, as COCOeval does with -1.
The threshold test is ``>=`` as in VOCevaldet.m (the Python ports write ``>``).

Worked example (one class, 2 GT boxes, one of them difficult; 3 detections)::

    GT:   A [0, 0, 10, 10],  B [20, 20, 30, 30] difficult
    dets: d1 on B (0.9), d2 on A (0.8), d3 on A (0.7)
    d1: ignored (difficult) | d2: TP | d3: FP (A taken)
    npos 1; recall [0, 1, 1], precision [0, 1, 0.5] -> AP 1.0 (all-point and 11-point)
"""

import numpy as np

from detection.core.overlaps import pairwise_iou
from detection.evaluation.errors import EvaluationError
from detection.evaluation.tables import format_ap_table


def evaluate_voc(ground_truth, detections, class_names, iou_threshold=0.5, use_07_metric=False, log=print):
    """VOC mAP of ``detections`` against ``ground_truth``.

    ground_truth: per-image dicts {"image_id": int, "boxes": [G, 4] float [y1, x1, y2, x2]
        original-image pixels, "class_ids": [G] int 1..K, "difficult": [G] bool (optional,
        default all False)}; one per image evaluated, with or without boxes.
    detections: per-image dicts {"image_id", "boxes": [D, 4] same frame, "class_ids": [D]
        int 1..K, "scores": [D] float} (the predictor's output; other keys are ignored).
        Every image_id must be in ``ground_truth``; images may have no detections entry.
    class_names: K names; class_names[k - 1] names class k.
    iou_threshold: a detection matches a GT box at IoU >= this.
    use_07_metric: True for the 11-point AP of VOC2007, False for all-point (VOC2010+).
    log: called with the printed table's lines; None prints nothing.
    Returns {"mAP": float, "per_class": {name: AP}, "iou_threshold": float,
    "metric": "voc2007_11point" or "voc2010_allpoint"}; AP -1 marks a class without
    non-difficult GT (left out of mAP; mAP is -1 when no class has GT).
    """
    if not 0 < iou_threshold <= 1:
        raise EvaluationError(f"iou_threshold {iou_threshold} is not in (0, 1]")
    num_classes = len(class_names)
    gt_by_image = {}
    for image in ground_truth:
        boxes, class_ids = _boxes_and_classes(image, num_classes, "ground truth")
        difficult = np.asarray(image.get("difficult", np.zeros(len(boxes))), dtype=bool).reshape(-1)
        if len(difficult) != len(boxes):
            raise EvaluationError(f"ground truth of image {image['image_id']}: {len(boxes)} boxes but "
                                  f"{len(difficult)} difficult flags")
        gt_by_image[image["image_id"]] = (boxes, class_ids, difficult)

    det_image_ids, det_boxes, det_classes, det_scores = [], [], [], []
    for image in detections:
        if image["image_id"] not in gt_by_image:
            raise EvaluationError(f"detections name image_id {image['image_id']!r}, which has no ground truth entry")
        boxes, class_ids = _boxes_and_classes(image, num_classes, "detections")
        scores = np.asarray(image["scores"], dtype=np.float64).reshape(-1)
        if len(scores) != len(boxes):
            raise EvaluationError(f"detections of image {image['image_id']}: "
                                  f"{len(boxes)} boxes but {len(scores)} scores")
        det_image_ids += [image["image_id"]] * len(boxes)
        det_boxes.append(boxes)
        det_classes.append(class_ids)
        det_scores.append(scores)
    det_image_ids = np.array(det_image_ids, dtype=object)
    det_boxes = np.concatenate(det_boxes) if det_boxes else np.zeros((0, 4))
    det_classes = np.concatenate(det_classes) if det_classes else np.zeros((0,), np.int64)
    det_scores = np.concatenate(det_scores) if det_scores else np.zeros((0,))

    per_class = {}
    for k, name in enumerate(class_names, start=1):
        chosen = det_classes == k
        tp, fp, npos = match_detections(
            {image_id: (boxes[classes == k], difficult[classes == k])
             for image_id, (boxes, classes, difficult) in gt_by_image.items()},
            det_image_ids[chosen], det_boxes[chosen], det_scores[chosen], iou_threshold)
        if npos == 0:
            per_class[name] = -1.0
            continue
        tp, fp = np.cumsum(tp), np.cumsum(fp)
        recall = tp / npos
        precision = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)  # 0, not 0/0, before any TP
        per_class[name] = average_precision(recall, precision, use_07_metric)

    measured = [ap for ap in per_class.values() if ap >= 0]
    result = {
        "mAP": float(np.mean(measured)) if measured else -1.0,
        "per_class": per_class,
        "iou_threshold": float(iou_threshold),
        "metric": "voc2007_11point" if use_07_metric else "voc2010_allpoint",
    }
    if log:
        log(f"VOC {result['metric']} AP at IoU {iou_threshold:g}: {len(gt_by_image)} images, "
            f"{len(det_scores)} detections")
        log(format_ap_table(per_class, label="class"))
        log(f"mAP = {result['mAP']:.4f}")
    return result


def match_detections(gt_by_image, image_ids, boxes, scores, iou_threshold):
    """Marks the detections of ONE class as true or false positives (devkit rules 1-3).

    gt_by_image: {image_id: (boxes [G, 4] [y1, x1, y2, x2], difficult [G] bool)}, this
        class's GT of every evaluated image.
    image_ids: [D] image id of each detection; boxes: [D, 4] same frame; scores: [D].
    Returns (tp [D] float, fp [D] float, npos int): flags in descending-score order (both
    0 for a detection ignored on a difficult box) and the number of non-difficult GT.
    """
    npos = int(sum(int((~difficult).sum()) for _, difficult in gt_by_image.values()))
    order = np.argsort(-np.asarray(scores), kind="stable")
    taken = {image_id: np.zeros(len(gt_boxes), bool) for image_id, (gt_boxes, _) in gt_by_image.items()}
    tp = np.zeros(len(order))
    fp = np.zeros(len(order))
    for rank, d in enumerate(order):
        gt_boxes, difficult = gt_by_image[image_ids[d]]
        if len(gt_boxes) == 0:
            fp[rank] = 1
            continue
        overlaps = pairwise_iou(boxes[d][None], gt_boxes)[0]
        best = int(np.argmax(overlaps))  # the first of equal best, as the devkit's strict >
        if overlaps[best] < iou_threshold:
            fp[rank] = 1
        elif difficult[best]:
            continue  # neither TP nor FP
        elif taken[image_ids[d]][best]:
            fp[rank] = 1
        else:
            tp[rank] = 1
            taken[image_ids[d]][best] = True
    return tp, fp, npos


def average_precision(recall, precision, use_07_metric=False):
    """AP from cumulative recall and precision [D] in descending-score order.

    all-point: area under the monotone precision envelope, summed where recall changes.
    11-point: mean over r = 0, 0.1, ..., 1 of max(precision[recall >= r]), 0 if none.
    Example: recall [0.5, 0.5, 1], precision [1, 0.5, 0.667] -> all-point
    0.5 * 1 + 0.5 * 0.667 = 0.833; 11-point (6 * 1 + 5 * 0.667) / 11 = 0.848.
    """
    recall = np.asarray(recall, dtype=np.float64)
    precision = np.asarray(precision, dtype=np.float64)
    if use_07_metric:
        points = [precision[recall >= r].max() if (recall >= r).any() else 0.0 for r in np.arange(11) / 10]
        return float(np.mean(points))
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    changes = np.where(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[changes + 1] - mrec[changes]) * mpre[changes + 1]))


def _boxes_and_classes(image, num_classes, what):
    boxes = np.asarray(image["boxes"], dtype=np.float64).reshape(-1, 4)
    class_ids = np.asarray(image["class_ids"]).reshape(-1).astype(np.int64)
    if len(class_ids) != len(boxes):
        raise EvaluationError(f"{what} of image {image['image_id']}: {len(boxes)} boxes but {len(class_ids)} class ids")
    bad = (class_ids < 1) | (class_ids > num_classes)
    if bad.any():
        raise EvaluationError(f"{what} of image {image['image_id']}: class id {class_ids[bad][0]} is outside "
                              f"1..{num_classes}")
    return boxes, class_ids
