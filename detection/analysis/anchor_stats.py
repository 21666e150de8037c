"""What stat_gt computes: every GT box in the model-input frame, matched against the anchors.

Input: the images of a dataset as objects with ``image_id``, ``height``, ``width`` (original
pixels), ``boxes`` [N, 4] float32 [y1, x1, y2, x2] in ORIGINAL-image pixels and ``iscrowd``
[N] bool -- a ``detection.data.records.Record`` or an ``ImageBoxes``. Each image is resized as
the pipeline does (``geometry_from_config``: input = original * scale + offset in float32, the
offset of IMAGE_RESIZE_METHOD's placement; no augmentation), and its boxes are matched against
the anchors of its own padded input (which differs per image in the pad64 and none modes).
Crowd boxes are excluded (the RPN target layer never makes them positive) and counted; boxes
with no area in the input frame are excluded and counted.

Size buckets are COCO's, by area in INPUT pixels: small < 32^2 <= medium < 96^2 <= large.
Aspect buckets are by width / height.
"""

import collections
import dataclasses
from typing import Any

import numpy as np

from detection.analysis.anchor_match import AnchorSpec, match_to_anchor_grid
from detection.data.resize import geometry_from_config

SIZE_BUCKETS = (("small", 0.0, 32.0**2), ("medium", 32.0**2, 96.0**2), ("large", 96.0**2, np.inf))
# width / height, symmetric in log space around 1.
ASPECT_BUCKETS = (("w/h<1/3", 0.0, 1 / 3), ("1/3-2/3", 1 / 3, 2 / 3), ("2/3-3/2", 2 / 3, 1.5),
                  ("3/2-3", 1.5, 3.0), ("w/h>=3", 3.0, np.inf))
# Reported matched fractions, besides the config's RPN thresholds.
BASE_THRESHOLDS = (0.3, 0.5, 0.7)
# match_table's default exact_above: the lowest reported threshold.
LOWEST_BASE_THRESHOLD = min(BASE_THRESHOLDS)
POSITIVE_HISTOGRAM = ((0, 1, "0"), (1, 2, "1"), (2, 3, "2"), (3, 4, "3"), (4, 6, "4-5"),
                      (6, 10, "6-9"), (10, 20, "10-19"), (20, np.iinfo(np.int64).max, "20+"))


@dataclasses.dataclass
class ImageBoxes:
    """The fields of a Record that stat_gt reads (for callers without a loader).

    boxes: [N, 4] float32 [y1, x1, y2, x2] original-image pixels; iscrowd: [N] bool."""

    image_id: Any
    height: int
    width: int
    boxes: np.ndarray
    iscrowd: np.ndarray


@dataclasses.dataclass
class GtTable:
    """One row per non-crowd GT box with area, G rows.

    image_index: [G] int64 position of the box's image in the input list.
    image_id: [G] object, the dataset's image id.
    boxes: [G, 4] float32 [y1, x1, y2, x2] in model-input pixels.
    original_boxes: [G, 4] float32, the same boxes in original-image pixels.
    padded_shape: [G, 2] int64 (H, W) of the box's padded input.
    best_iou, positive_anchors, level, scale, ratio_index: [G], see ``GridMatch`` (None before matching).
    """

    image_index: np.ndarray
    image_id: np.ndarray
    boxes: np.ndarray
    original_boxes: np.ndarray
    padded_shape: np.ndarray
    best_iou: np.ndarray = None
    positive_anchors: np.ndarray = None
    level: np.ndarray = None
    scale: np.ndarray = None
    ratio_index: np.ndarray = None

    def __len__(self):
        return len(self.boxes)

    @property
    def heights(self):
        return (self.boxes[:, 2] - self.boxes[:, 0]).astype(np.float64)

    @property
    def widths(self):
        return (self.boxes[:, 3] - self.boxes[:, 1]).astype(np.float64)

    def size_bucket(self):
        """[G] int index into SIZE_BUCKETS, by input-frame area."""
        return _bucket(self.heights * self.widths, SIZE_BUCKETS)

    def aspect_bucket(self):
        """[G] int index into ASPECT_BUCKETS, by width / height."""
        return _bucket(self.widths / self.heights, ASPECT_BUCKETS)


@dataclasses.dataclass
class ImageCounts:
    """Per-dataset counts that are not per GT box.

    anchors_by_shape: {(H, W) padded input shape: (images, anchors per image)}.
    """

    image_num: int
    images_without_gt: int
    crowd_num: int
    degenerate_num: int
    anchors_by_shape: dict


def _bucket(values, buckets):
    edges = np.array([low for _, low, _ in buckets[1:]])
    return np.searchsorted(edges, values, side="right")


def gt_table(images, config):
    """Images (see module docstring) -> (GtTable without match results, ImageCounts)."""
    spec = AnchorSpec.from_config(config)
    rows = collections.defaultdict(list)
    crowd = degenerate = without_gt = 0
    shapes = collections.Counter()
    for index, image in enumerate(images):
        geometry = geometry_from_config(image.height, image.width, config)
        shapes[tuple(geometry.padded_shape)] += 1
        original = np.asarray(image.boxes, np.float32).reshape(-1, 4)
        is_crowd = np.asarray(image.iscrowd, bool).reshape(-1)
        if len(is_crowd) != len(original):  # a loader without crowd flags
            is_crowd = np.zeros(len(original), bool)
        crowd += int(is_crowd.sum())
        original = original[~is_crowd]
        # float32, as the input pipeline scales them, then placed where the image sits in the input
        boxes = original * np.float32(geometry.scale) + np.asarray(geometry.offset * 2, np.float32)
        has_area = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        degenerate += int((~has_area).sum())
        count = int(has_area.sum())
        without_gt += count == 0
        rows["image_index"].append(np.full(count, index, np.int64))
        ids = np.empty(count, object)
        ids[:] = [image.image_id] * count
        rows["image_id"].append(ids)
        rows["boxes"].append(boxes[has_area])
        rows["original_boxes"].append(original[has_area])
        rows["padded_shape"].append(np.tile(np.asarray(geometry.padded_shape, np.int64), (count, 1)))
    empty = {"image_index": np.zeros(0, np.int64), "image_id": np.zeros(0, object),
             "boxes": np.zeros((0, 4), np.float32), "original_boxes": np.zeros((0, 4), np.float32),
             "padded_shape": np.zeros((0, 2), np.int64)}
    table = GtTable(**{k: np.concatenate(rows[k]) if rows[k] else empty[k] for k in empty})
    anchors = {shape: (n, spec.anchor_count(shape)) for shape, n in sorted(shapes.items())}
    counts = ImageCounts(sum(shapes.values()), without_gt, crowd, degenerate, anchors)
    return table, counts


def match_table(table, spec, positive_iou, exact_above=LOWEST_BASE_THRESHOLD):
    """Fills ``table``'s match results (best IoU, positive count, level, scale, ratio) in place and
    returns it. exact_above: see ``match_to_anchor_grid`` (the lowest reported threshold)."""
    m = match_to_anchor_grid(table.boxes, table.padded_shape, spec, positive_iou, exact_above)
    table.best_iou, table.positive_anchors, table.level, table.scale, table.ratio_index = (
        m.best_iou, m.positive_anchors, m.level, m.scale, m.ratio_index)
    return table


def match_dataset(images, config):
    """Images -> (matched GtTable, ImageCounts) for the config's anchors and resize."""
    table, counts = gt_table(images, config)
    exact_above = min(BASE_THRESHOLDS + (config.RPN_NEGATIVE_IOU,))
    return match_table(table, AnchorSpec.from_config(config), config.RPN_POSITIVE_IOU, exact_above), counts


def thresholds_of(config):
    """The IoU thresholds reported: 0.3, 0.5, 0.7 and the config's RPN thresholds, sorted."""
    return sorted(set(BASE_THRESHOLDS) | {config.RPN_NEGATIVE_IOU, config.RPN_POSITIVE_IOU})


def threshold_key(t):
    """0.7 -> "0.7": the JSON key of a threshold."""
    return f"{t:g}"


def distribution(values):
    """{min, p10, median, mean} of ``values`` [n], None when n == 0 (no division by zero)."""
    values = np.asarray(values, np.float64)
    if len(values) == 0:
        return None
    return {"min": float(values.min()), "p10": float(np.percentile(values, 10)),
            "median": float(np.median(values)), "mean": float(values.mean())}


def group_stats(best_iou, positive_anchors, thresholds, positive_iou):
    """Statistics of one group of GT boxes: best_iou [n] float, positive_anchors [n] int.

    Returns {gt_num, best_iou {min, p10, median, mean}, matched_fraction {"t": fraction of
    boxes with best IoU >= t}, miss_match_gt_num (best IoU < positive_iou),
    positive_anchors_per_gt {mean, histogram}}; averages are None when n == 0.
    """
    best_iou = np.asarray(best_iou, np.float64)
    positive_anchors = np.asarray(positive_anchors, np.int64)
    n = len(best_iou)
    histogram = {label: int(np.count_nonzero((positive_anchors >= low) & (positive_anchors < high)))
                 for low, high, label in POSITIVE_HISTOGRAM}
    return {
        "gt_num": n,
        "best_iou": distribution(best_iou),
        "matched_fraction": {threshold_key(t): float(np.mean(best_iou >= t)) if n else None for t in thresholds},
        "miss_match_gt_num": int(np.count_nonzero(best_iou < positive_iou)),
        "positive_anchors_per_gt": {"mean": float(positive_anchors.mean()) if n else None, "histogram": histogram},
    }


def summarize(table, counts, config, worst=20):
    """The stat_gt summary (a JSON-ready dict) of a matched GtTable and its ImageCounts.

    Keys: config, image_num, images_without_gt, gt_num, crowd_num, degenerate_num, anchor_num
    (anchors per image; the mean when inputs differ), anchor_num_by_input_shape, thresholds,
    the ``group_stats`` keys over all boxes, by_size and by_aspect (group_stats per bucket),
    best_level and best_scale (boxes whose best anchor is on each level, of each RPN_ANCHOR_SCALES
    scale: with ANCHOR_SCALES_ON_EVERY_LEVEL a level holds several), worst (the ``worst`` lowest best IoUs).
    """
    spec = AnchorSpec.from_config(config)
    thresholds = thresholds_of(config)
    t_pos = config.RPN_POSITIVE_IOU

    def by(buckets, index):
        return {name: group_stats(table.best_iou[index == i], table.positive_anchors[index == i], thresholds, t_pos)
                for i, (name, _, _) in enumerate(buckets)}

    images = sum(n for n, _ in counts.anchors_by_shape.values())
    anchor_mean = sum(n * a for n, a in counts.anchors_by_shape.values()) / images if images else 0
    summary = {
        "config": {key: getattr(config, key) for key in (
            "RPN_ANCHOR_SCALES", "ANCHOR_SCALES_ON_EVERY_LEVEL", "ANCHOR_GENERATOR", "RPN_ANCHOR_RATIOS",
            "BACKBONE_STRIDES", "RPN_ANCHOR_STRIDE", "RPN_POSITIVE_IOU",
            "RPN_NEGATIVE_IOU", "IMAGE_RESIZE_MODE", "IMAGE_MIN_DIM", "IMAGE_MAX_DIM", "IMAGE_MIN_SCALE")},
        "image_num": counts.image_num,
        "images_without_gt": counts.images_without_gt,
        "gt_num": len(table),
        "crowd_num": counts.crowd_num,
        "degenerate_num": counts.degenerate_num,
        "anchor_num": int(round(anchor_mean)),
        "anchor_num_by_input_shape": {f"{h}x{w}": {"images": n, "anchors": a}
                                      for (h, w), (n, a) in counts.anchors_by_shape.items()},
        "thresholds": [threshold_key(t) for t in thresholds],
    }
    overall = group_stats(table.best_iou, table.positive_anchors, thresholds, t_pos)
    del overall["gt_num"]
    summary.update(overall)
    summary["by_size"] = by(SIZE_BUCKETS, table.size_bucket())
    summary["by_aspect"] = by(ASPECT_BUCKETS, table.aspect_bucket())
    summary["best_level"] = {name: int(np.count_nonzero(table.level == i)) for i, name in enumerate(spec.level_names)}
    summary["best_scale"] = {f"{s:g}": int(np.count_nonzero(table.scale == s)) for s in spec.scales}
    summary["worst"] = worst_boxes(table, spec, worst)
    return summary


def worst_boxes(table, spec, count):
    """The ``count`` boxes with the lowest best IoU, lowest first, as JSON-ready dicts with the
    box in input and original pixels and the best anchor's level, scale and ratio."""
    order = np.argsort(table.best_iou, kind="stable")[:count]
    return [{
        "image_id": _plain(table.image_id[i]),
        "box": [round(float(v), 1) for v in table.boxes[i]],
        "original_box": [round(float(v), 1) for v in table.original_boxes[i]],
        "size": [round(float(table.heights[i]), 1), round(float(table.widths[i]), 1)],
        "best_iou": float(table.best_iou[i]),
        "positive_anchors": int(table.positive_anchors[i]),
        "level": spec.level_names[table.level[i]],
        "scale": float(table.scale[i]),
        "ratio": spec.ratios[table.ratio_index[i]],
    } for i in order]


def _plain(value):
    """numpy scalars -> python scalars, so ids serialise to JSON."""
    return value.item() if isinstance(value, np.generic) else value
