"""Data validation: every problem found while loading or reading a dataset, counted and shown.

A loader never crashes on a bad annotation and never drops anything silently: each problem is
``report.add(kind, file, field, detail)``, which counts it and keeps the first few examples
(with file and field) for ``report.summary()``. The repair each kind gets is in ``PROBLEMS``.
With ``strict=True`` the first problem raises ``DataError`` naming the file and the field.

Example::

    report = ValidationReport("bccd/train", strict=False)
    report.add("zero_area_box", "BloodImage_00343.xml", "object[5].bndbox", "xmin == xmax == 181")
    report.counts["zero_area_box"]   # 1
    report.summary()                 # prints the per-problem counts and examples

``clean_boxes`` applies the box checks every loader shares (NaN, negative, outside, zero area)
to boxes already in our ``[y1, x1, y2, x2]`` original-image frame.
"""

import collections
import dataclasses
import sys
import threading

import numpy as np


class DataError(ValueError):
    """A data problem that cannot be repaired, or any problem under strict mode.

    The message is one line naming the file and the field (or the line/column) at fault.
    """


# kind -> what it means and what the loader or the pipeline did about it.
PROBLEMS = {
    "missing_image": "image file not found (image skipped)",
    "unreadable_image": "corrupt or undecodable image file (image skipped)",
    "truncated_image": "truncated JPEG: data end early (decoded as far as they go, the rest grey)",
    "missing_annotation": "split names an image with no annotation file (image skipped)",
    "empty_annotation": "empty annotation file (image skipped)",
    "malformed_annotation": "malformed annotation file or field (file or object skipped)",
    "box_outside_image": "box extends outside the image (clipped)",
    "invalid_coordinates": "NaN, infinite or negative box coordinates (NaN dropped, negative clipped)",
    "zero_area_box": "zero-area box (dropped)",
    "unknown_class": "unknown class name or category id (box dropped)",
    "unsupported_shape": "shape that outlines no area: point, line, polyline (dropped)",
    "empty_mask": "instance mask without pixels (instance dropped)",
    "orphan_annotation": "annotation of an image id that is not in the file (dropped)",
    "duplicate_image_id": "duplicate image id or file stem (later one dropped)",
    "too_many_boxes": "more boxes than MAX_GT_INSTANCES (kept; the pipeline truncates)",
    "empty_image_dropped": "image without boxes dropped (KEEP_EMPTY_IMAGES is false)",
    "size_mismatch": "decoded image size differs from the annotation's (boxes rescaled)",
    "truncated_to_max_gt": "boxes cut by the pipeline to MAX_GT_INSTANCES (per read)",
    "dropped_by_augmentation": "boxes dropped by augmentation below MIN_BOX_VISIBILITY (per read)",
}

# Kinds the pipeline counts while it runs; strict mode ignores the two that are expected side
# effects of augmentation and truncation (already an error at load time under strict).
RUNTIME_COUNTS = ("truncated_to_max_gt", "dropped_by_augmentation")


@dataclasses.dataclass(frozen=True)
class Problem:
    """One example of a problem: which file, which field inside it, and the details."""

    kind: str
    file: str
    field: str
    detail: str = ""

    def __str__(self):
        where = f"{self.file}: {self.field}" if self.field else self.file
        text = f"{where}: {PROBLEMS.get(self.kind, self.kind)}"
        return f"{text}: {self.detail}" if self.detail else text


_STDOUT = object()  # summary's default: sys.stdout as it is when called


class ValidationReport:
    """Counts of each problem kind with the first ``max_examples`` examples, plus totals.

    Thread-safe: the tf.data pipeline adds to it from parallel readers.
    Totals set by the loader: num_images, num_boxes, num_empty_images, num_crowd, num_difficult.
    """

    def __init__(self, name="", strict=False, max_examples=3):
        self.name = name
        self.strict = strict
        self.max_examples = max_examples
        self.counts = collections.Counter()
        self.examples = collections.defaultdict(list)
        self.num_images = 0
        self.num_boxes = 0
        self.num_empty_images = 0
        self.num_crowd = 0
        self.num_difficult = 0
        self._seen = set()
        self._lock = threading.Lock()

    def add(self, kind, file, field="", detail="", count=1, once=False):
        """Counts ``count`` occurrences of ``kind`` (a key of PROBLEMS) found in ``file`` at
        ``field``; raises DataError instead when strict (except the runtime counts).
        once: count this (kind, file) only the first time (an image read every epoch).
        Returns True when counted, False when ``once`` found it counted before."""
        if kind not in PROBLEMS:
            raise KeyError(f"unknown problem kind {kind!r}; known: {', '.join(PROBLEMS)}")
        problem = Problem(kind, str(file), field, detail)
        if self.strict and kind not in RUNTIME_COUNTS:
            raise DataError(f"{problem} (strict data checking; drop --strict / STRICT_DATA to repair and count)")
        with self._lock:
            if once:
                if (kind, problem.file) in self._seen:
                    return False
                self._seen.add((kind, problem.file))
            self.counts[kind] += count
            if len(self.examples[kind]) < self.max_examples:
                self.examples[kind].append(problem)
        return True

    @property
    def num_problems(self):
        return sum(self.counts.values())

    def summary(self, file=_STDOUT):
        """Prints (to ``file``, default the sys.stdout of the moment, None: nowhere) and returns a
        summary: totals, then each kind found with its count and first examples."""
        lines = [f"Dataset {self.name}: {self.num_images} images, {self.num_boxes} boxes "
                 f"({self.num_crowd} crowd, {self.num_difficult} difficult), "
                 f"{self.num_empty_images} images without boxes (negative samples)"]
        if not self.counts:
            lines.append("  no data problems found")
        for kind in PROBLEMS:
            if self.counts[kind]:
                lines.append(f"  {self.counts[kind]:6d} x {PROBLEMS[kind]}")
                lines += ["           e.g. " + ": ".join(part for part in (p.file, p.field, p.detail) if part)
                          for p in self.examples[kind]]
        text = "\n".join(lines)
        file = sys.stdout if file is _STDOUT else file  # at call time: redirect_stdout applies
        if file is not None:
            print(text, file=file)
        return text

    def __str__(self):
        return self.summary(file=None)


def clean_boxes(boxes, height, width, report, file, field_names):
    """The box checks every loader shares, in the ORIGINAL-image frame.

    boxes: [N, 4] float [y1, x1, y2, x2] original-image pixels (converted from the file's format).
    height, width: image size in pixels.
    report: ValidationReport to count into; file: the annotation file named in problems.
    field_names: [N] strings naming each box's field in the file (e.g. "object[2].bndbox").
    Returns (boxes [K, 4] float32 clipped to the image, keep [K] int indices of the kept rows).

    NaN/inf boxes are dropped; negative coordinates and boxes beyond the image are clipped
    (and counted); boxes with no area after clipping are dropped.
    """
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    limits = np.array([height, width, height, width], np.float64)
    # The common case, every box clean, in a few array operations: a per-box loop costs ~40 s
    # over COCO train's 860k boxes (bench/data_scale.py). Other boxes go through the loop.
    with np.errstate(invalid="ignore"):
        clean = (np.isfinite(boxes).all() and (boxes >= 0).all() and (boxes <= limits).all()
                 and (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all())
    if clean:
        return boxes.astype(np.float32), np.arange(len(boxes), dtype=np.int64)
    keep = []
    for i, box in enumerate(boxes):
        if not np.all(np.isfinite(box)):
            report.add("invalid_coordinates", file, field_names[i], f"{box.tolist()} is not finite")
            continue
        if np.any(box < 0):
            report.add("invalid_coordinates", file, field_names[i], f"negative coordinate in {_yxyx_text(box)}")
        elif np.any(box > limits):
            report.add("box_outside_image", file, field_names[i],
                       f"{_yxyx_text(box)} beyond image {height}x{width}")
        clipped = np.clip(box, 0, limits)
        if clipped[2] <= clipped[0] or clipped[3] <= clipped[1]:
            report.add("zero_area_box", file, field_names[i], f"{_yxyx_text(box)} has no area inside the image")
            continue
        boxes[i] = clipped
        keep.append(i)
    keep = np.asarray(keep, np.int64)
    return boxes[keep].astype(np.float32).reshape(-1, 4), keep


def _yxyx_text(box):
    return "[y1, x1, y2, x2] = [" + ", ".join(f"{v:g}" for v in box) + "]"


def finalize_records(records, report, keep_empty_images, max_gt_instances, file_of=lambda r: r.path):
    """Dataset-level checks after loading: images without boxes (kept as negative samples or
    dropped, counted either way), more boxes than ``max_gt_instances`` (kept, counted), totals.

    records: list of Record; file_of: names a record's file in problems.
    Image files are checked first (check_image_files): a truncated JPEG is counted and kept, an
    undecodable file counted and dropped, so both show before training or evaluation starts.
    Returns the records that stay.
    """
    kept = []
    for record in check_image_files(records, report):
        if record.num_boxes == 0 and not keep_empty_images:
            report.add("empty_image_dropped", file_of(record), "", "no boxes")
            continue
        if record.num_boxes > max_gt_instances:
            report.add("too_many_boxes", file_of(record), "",
                       f"{record.num_boxes} boxes > MAX_GT_INSTANCES {max_gt_instances}")
        kept.append(record)
    report.num_images = len(kept)
    report.num_boxes = sum(r.num_boxes for r in kept)
    report.num_empty_images = sum(r.num_boxes == 0 for r in kept)
    report.num_crowd = int(sum(np.count_nonzero(r.iscrowd) for r in kept))
    report.num_difficult = int(sum(np.count_nonzero(r.difficult) for r in kept))
    return kept


def check_image_files(records, report):
    """The records whose image file decodes; truncated JPEGs counted (kept), undecodable files
    counted as unreadable_image (dropped), each under the image path, as the pipeline names
    them when it reads them (so a file is counted once whichever finds it first).

    Only files whose last bytes lack an end marker are decoded (truncation_suspected): a check
    of every file costs one small read each (2.4 s for 118k files in
    bench/data_scale.py, docs/BENCHMARKS.md), and a file corrupt elsewhere is still found when read.
    Records with an image_loader or a synthetic image are not files: kept as they are.
    """
    from detection.data.images import ImageReadError, read_image_checked, truncation_suspected

    kept = []
    for record in records:
        path = record.path
        if path is None or record.image_loader is not None or record.synthetic is not None \
                or not truncation_suspected(path):
            kept.append(record)
            continue
        try:
            truncated = read_image_checked(path)[1]
        except ImageReadError as e:
            report.add("unreadable_image", path, "", str(e).split(": ", 1)[-1], once=True)
            continue
        if truncated:
            report.add("truncated_image", path, "", "no end-of-image marker", once=True)
        kept.append(record)
    return kept
