"""COCO instances JSON -> Dataset.

Conversions made here, once:
  * bbox [x, y, w, h] (continuous pixel coordinates) -> [y1, x1, y2, x2] = [y, x, y + h, x + w],
    original-image pixels;
  * category ids (any integers, often non-contiguous: COCO's run 1..90 for 80 classes) ->
    contiguous class ids 1..K in order of category id; ``Dataset.category_ids[k - 1]`` maps
    class k back (``dataset.category_id(k)``, ``dataset.class_id(cat)``);
  * iscrowd -> Record.iscrowd; the segmentation (polygons or RLE, compressed or not) is kept
    as is in Record.segmentations (original pixels) and decoded by the pipeline. An instance
    without a segmentation gets its box as a polygon. With USE_MASK false segmentations are
    checked (and problems counted) the same, but not kept: Record.segmentations is None, and
    the polygons, most of a COCO file's memory, are freed with the parsed file.

The JSON file is the unit of failure: an empty or malformed file is a DataError naming the
file and the JSON line/column (or the missing field); everything inside it (images,
annotations) is checked one by one, repaired or skipped, and counted in the report.
"""

import collections
import os

import numpy as np

from detection.data.jsonfile import gc_paused, read_json
from detection.data.records import Dataset, Record
from detection.data.validation import DataError, ValidationReport, clean_boxes, finalize_records


def read_coco_json(path):
    """The parsed JSON of a COCO file; DataError (one line, with line/column) when the file is
    missing, empty, not JSON, or lacks the ``images`` / ``categories`` lists."""
    data = read_json(path)
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object with images, annotations, categories; "
                        f"got {type(data).__name__}")
    for field in ("images", "categories"):
        if not isinstance(data.get(field), list):
            raise DataError(f"{path}: field '{field}': missing or not a list")
    if not isinstance(data.setdefault("annotations", []), list):
        raise DataError(f"{path}: field 'annotations': not a list")
    return data


def load_coco(annotation_file, images_dir, config=None, strict=None, name=None):
    """Loads a COCO instances file.

    annotation_file: path of the JSON; images_dir: folder holding each image's file_name.
    config: supplies KEEP_EMPTY_IMAGES, MAX_GT_INSTANCES and STRICT_DATA (None: defaults).
    strict: overrides config.STRICT_DATA. name: the Dataset's name (default: the file's).
    Returns a Dataset; records sorted by image id, image_id = the COCO image id.
    """
    from detection.config import Config

    config = config or Config()
    strict = config.STRICT_DATA if strict is None else strict
    name = name or os.path.basename(annotation_file)
    report = ValidationReport(name, strict=strict)
    with gc_paused():  # millions of objects, no cycle among them (see gc_paused)
        return _load(annotation_file, images_dir, config, report, name)


def _load(annotation_file, images_dir, config, report, name):
    """load_coco's work, into ``report``."""
    data = read_coco_json(annotation_file)
    categories = _categories(data["categories"], annotation_file)
    class_of_category = {cat_id: k + 1 for k, (cat_id, _) in enumerate(categories)}
    images = _valid_images(data["images"], annotation_file, report)
    annotations_of = _valid_annotations(data["annotations"], images, annotation_file, report)
    del data  # what the records keep (boxes, segmentations) is referenced from them

    records = []
    for image_id in sorted(images):
        info = images[image_id]
        path = os.path.join(images_dir, info["file_name"])
        if not os.path.isfile(path):
            report.add("missing_image", path, f"images[id={image_id}].file_name", "no such file")
            continue
        records.append(_record(info, path, annotations_of.get(image_id, []), class_of_category,
                               annotation_file, report, config.USE_MASK))
    records = finalize_records(records, report, config.KEEP_EMPTY_IMAGES, config.MAX_GT_INSTANCES)
    return Dataset(name=name, records=records, class_names=[n for _, n in categories],
                   category_ids=[c for c, _ in categories], report=report, source=str(annotation_file))


def _categories(categories, file):
    """[(category id, name)] sorted by id; DataError on a malformed or duplicate entry."""
    out = {}
    for i, cat in enumerate(categories):
        if not (isinstance(cat, dict) and _is_int(cat.get("id")) and isinstance(cat.get("name"), str)):
            raise DataError(f"{file}: categories[{i}]: expected {{id: int, name: str}}, got {cat!r:.80}")
        if cat["id"] in out:
            raise DataError(f"{file}: categories[{i}]: duplicate category id {cat['id']}")
        out[cat["id"]] = cat["name"]
    if not out:
        raise DataError(f"{file}: categories: empty list, no classes to learn")
    return sorted(out.items())


def _valid_images(images, file, report):
    """{image id: entry} of the well-formed, first-seen image entries (others counted)."""
    valid = {}
    for i, info in enumerate(images):
        field = f"images[{i}]"
        if not (isinstance(info, dict) and _is_int(info.get("id")) and isinstance(info.get("file_name"), str)
                and _is_int(info.get("height")) and _is_int(info.get("width"))
                and info["height"] > 0 and info["width"] > 0):
            report.add("malformed_annotation", file, field, "expected id, file_name, height > 0, width > 0")
            continue
        if info["id"] in valid:
            report.add("duplicate_image_id", file, f"{field}.id", f"image id {info['id']} seen before")
            continue
        valid[info["id"]] = info
    return valid


def _valid_annotations(annotations, images, file, report):
    """{image id: [(index in the file, annotation)]} of the annotations with a usable image_id
    and bbox (others counted), in file order (pycocotools' imgToAnns without its other indexes:
    nothing is copied, which matters for COCO train's 860k annotations)."""
    valid = collections.defaultdict(list)
    for i, ann in enumerate(annotations):
        field = f"annotations[{i}]"
        if not isinstance(ann, dict) or "image_id" not in ann:
            report.add("malformed_annotation", file, field, "expected an object with image_id")
            continue
        if ann["image_id"] not in images:
            report.add("orphan_annotation", file, f"{field}.image_id", f"no image with id {ann['image_id']!r}")
            continue
        bbox = ann.get("bbox")
        if not (isinstance(bbox, list) and len(bbox) == 4 and _all_numbers(bbox)):
            report.add("malformed_annotation", file, f"{field}.bbox", f"expected [x, y, w, h], got {bbox!r:.60}")
            continue
        valid[ann["image_id"]].append((i, ann))
    return valid


def _record(info, path, annotations, class_of_category, file, report, keep_segmentations=True):
    """One Record from an image entry and its (index in the file, annotation) pairs (boxes
    cleaned, counted); segmentations checked, and kept when ``keep_segmentations``."""
    height, width = info["height"], info["width"]
    rows, fields = [], []
    for index, ann in annotations:
        if ann.get("category_id") not in class_of_category:
            report.add("unknown_class", file, f"annotations[{index}].category_id",
                       f"category id {ann.get('category_id')!r}")
            continue
        rows.append((index, ann))
        fields.append(f"annotations[{index}].bbox")
    xywh = np.array([ann["bbox"] for _, ann in rows], np.float64).reshape(-1, 4)
    yxyx = np.stack([xywh[:, 1], xywh[:, 0], xywh[:, 1] + xywh[:, 3], xywh[:, 0] + xywh[:, 2]], axis=1)
    boxes, keep = clean_boxes(yxyx, height, width, report, file, fields)
    kept = [rows[i] for i in keep]
    segmentations = [_segmentation(a, i, box, file, report) for (i, a), box in zip(kept, boxes)]
    return Record(
        image_id=int(info["id"]), path=path, height=height, width=width, boxes=boxes,
        class_ids=np.array([class_of_category[a["category_id"]] for _, a in kept], np.int32),
        iscrowd=np.array([bool(a.get("iscrowd", 0)) for _, a in kept], bool),
        difficult=np.zeros(len(kept), bool),
        segmentations=segmentations if keep_segmentations else None)


def _segmentation(ann, index, box, file, report):
    """The annotation's segmentation if usable, else its box as a polygon (counted)."""
    seg = ann.get("segmentation")
    field = f"annotations[{index}].segmentation"
    if isinstance(seg, dict) and "counts" in seg and "size" in seg:
        return seg
    if isinstance(seg, list):
        polygons = [p for p in seg if isinstance(p, list) and len(p) >= 6 and len(p) % 2 == 0
                    and _all_numbers(p)]
        if len(polygons) < len(seg):
            report.add("malformed_annotation", file, field,
                       f"{len(seg) - len(polygons)} polygon(s) with < 3 points or bad values dropped")
        if polygons:
            return polygons
    elif seg is not None:
        report.add("malformed_annotation", file, field, f"neither polygons nor RLE: {seg!r:.60}")
    y1, x1, y2, x2 = (float(v) for v in box)
    return [[x1, y1, x2, y1, x2, y2, x1, y2]]


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


_NUMBER_TYPES = frozenset((int, float))


def _all_numbers(values):
    """Every value of a parsed JSON list is an int or float (NaN included: clean_boxes counts
    it), not a bool. JSON gives exact types (bool is int's only subclass it makes), so a set of
    types says it in C, not a call per value (COCO train holds ~30M polygon coordinates)."""
    return set(map(type, values)) <= _NUMBER_TYPES
