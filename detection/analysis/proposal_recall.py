"""Recall of GT boxes by ranked RPN proposals: the second-stage view of stat_gt.

A GT box is recalled by the top k proposals at IoU t when one of the k highest-scoring
proposals overlaps it at IoU >= t. A box no proposal reaches at MISS_IOU (the usual
ROI_POSITIVE_IOU, 0.5) can never be a positive RoI for the box head: it is an "rcnn miss".

Example: GT [0, 0, 10, 10]; proposals ranked [[0, 0, 10, 5], [0, 0, 10, 10]] give best IoU
0.5 over the top 1 and 1.0 over the top 2.
"""

import numpy as np

from detection.analysis.anchor_stats import SIZE_BUCKETS, distribution, threshold_key
from detection.core.overlaps import pairwise_iou

TOP_K = (100, 300, 1000)
IOU_THRESHOLDS = (0.5, 0.7)
MISS_IOU = 0.5


def best_iou_over_top_k(gt_boxes, proposals, top_ks=TOP_K):
    """Best IoU of each GT box over the top k proposals, for each k.

    gt_boxes: [G, 4] GT boxes; proposals: [P, 4] ranked highest score first, same frame.
    top_ks: [K] ints; k beyond P means all P. Returns [G, K + 1] float64, the last column
    over all P proposals.
    """
    gt_boxes = np.asarray(gt_boxes, np.float64).reshape(-1, 4)
    num_proposals = len(np.asarray(proposals).reshape(-1, 4))
    if num_proposals == 0:
        return np.zeros((len(gt_boxes), len(top_ks) + 1))
    running = np.maximum.accumulate(pairwise_iou(gt_boxes, proposals), axis=1)  # [G, P] best over the first p + 1
    columns = [min(k, num_proposals) - 1 for k in top_ks] + [num_proposals - 1]
    return running[:, columns]


def proposal_recall(gt_boxes_per_image, proposals_per_image, top_ks=TOP_K):
    """best_iou_over_top_k over images: lists of [G_i, 4] and [P_i, 4] -> [sum G_i, K + 1]."""
    parts = [best_iou_over_top_k(g, p, top_ks) for g, p in zip(gt_boxes_per_image, proposals_per_image)]
    return np.concatenate(parts) if parts else np.zeros((0, len(top_ks) + 1))


def proposals_by_image(predictions, records):
    """Collects ranked proposals from predictor outputs, keyed by the record's list position.

    predictions: iterable of dicts with "image_id" and "proposals" [P, 4] ORIGINAL-image pixels,
        highest score first (``Predictor.predict_records``); images may be missing (unreadable).
    records: the list the table was built from (image ids unique, as the loaders ensure).
    Returns {image_index: proposals [P, 4]}.
    """
    index_of = {record.image_id: i for i, record in enumerate(records)}
    return {index_of[p["image_id"]]: np.asarray(p["proposals"], np.float32).reshape(-1, 4) for p in predictions}


def recall_for_table(table, proposals_per_image, top_ks=TOP_K):
    """Best IoU over the top k proposals for every row of a GtTable.

    table: GtTable (its original_boxes, ORIGINAL-image pixels, grouped by image_index).
    proposals_per_image: {image_index: [P, 4] proposals in ORIGINAL-image pixels, ranked}; an
        image missing from it (not predicted) gives NaN rows.
    IoU does not change under the resize (one scale on both axes, top-left placement), so this
    equals the input-frame figure. Returns [G, K + 1] float64 aligned with the table's rows.
    """
    best = np.full((len(table), len(top_ks) + 1), np.nan)
    for index, proposals in proposals_per_image.items():
        rows = np.flatnonzero(table.image_index == index)
        if len(rows):
            best[rows] = best_iou_over_top_k(table.original_boxes[rows], proposals, top_ks)
    return best


def _group(best, top_ks, iou_thresholds, miss_iou):
    n = len(best)
    recall = {str(k): {threshold_key(t): float(np.mean(best[:, j] >= t)) if n else None for t in iou_thresholds}
              for j, k in enumerate(top_ks)}
    return {"gt_num": n, "recall": recall, "best_iou": distribution(best[:, -1]),
            "rcnn_miss_match_gt_num": int(np.count_nonzero(best[:, -1] < miss_iou))}


def summarize_recall(best, areas, top_ks=TOP_K, iou_thresholds=IOU_THRESHOLDS, miss_iou=MISS_IOU):
    """Recall summary (JSON-ready) of ``best`` [G, K + 1] from ``proposal_recall``.

    areas: [G] GT areas in input pixels, for the COCO size buckets. NaN rows are left out.
    Returns {top_k, iou_thresholds, miss_iou, gt_num, recall {"k": {"t": fraction}}, best_iou
    (over all proposals), rcnn_miss_match_gt_num, by_size {bucket: the same per bucket}}.
    """
    best = np.asarray(best, np.float64).reshape(-1, len(top_ks) + 1)
    areas = np.asarray(areas, np.float64)
    predicted = ~np.isnan(best).any(axis=1)  # rows of images that were not predicted drop out
    best, areas = best[predicted], areas[predicted]
    summary = {"top_k": list(top_ks), "iou_thresholds": [threshold_key(t) for t in iou_thresholds],
               "miss_iou": miss_iou}
    summary.update(_group(best, top_ks, iou_thresholds, miss_iou))
    summary["by_size"] = {name: _group(best[(areas >= low) & (areas < high)], top_ks, iou_thresholds, miss_iou)
                          for name, low, high in SIZE_BUCKETS}
    return summary
