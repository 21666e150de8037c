"""Pascal VOC XML -> Dataset, for the standard layout and free ones.

Layouts:
  standard: ROOT/Annotations/*.xml, ROOT/JPEGImages/*, ROOT/ImageSets/Main/<split>.txt;
            pass ROOT or ROOT/Annotations as the annotation folder (images default to
            ROOT/JPEGImages) and the split file if wanted.
  free:     XML files in one folder, images in another or the same one; optional split file.
An image is found by the stem of its XML file name (``a.xml`` -> ``a.jpg``, ``a.jpeg`` or
``a.png``, extension in any case), never by the XML's ``path`` or ``filename`` fields, which
often point at the annotator's own disk. A split file lists image stems, one per line (only
the first word counts, so ImageSets/Main/<class>_train.txt works too).

Box conversion: VOC pixel coordinates are 1-based and inclusive (xmin = 1 is the first
column; xmax = W the last), so in our 0-based pixel-edge frame
``[y1, x1, y2, x2] = [ymin - 1, xmin - 1, ymax, xmax]``: a box over the whole image,
xmin..xmax = 1..W, becomes x1..x2 = 0..W. A box with xmax <= xmin or ymax <= ymin in the file
is degenerate (a labelling click without a drag) and dropped as zero-area, not read as
one pixel wide.

Classes: config.CLASS_NAMES when set (an object of another class is counted as unknown);
otherwise every name in every XML of the annotation folder (not only the split), sorted, so
train and val splits of one folder agree. Class k is class_names[k - 1]; category_ids are
1..K. image_id: index of the file's stem among all annotation stems of the folder, sorted.
"""

import math
import os
import xml.etree.ElementTree as ET

import numpy as np

from detection.data.annotation_folder import annotation_files, parse_files, size_or_read, wanted_stems
from detection.data.images import index_images
from detection.data.records import Dataset, Record
from detection.data.validation import DataError, ValidationReport, clean_boxes, finalize_records

_COORDS = ("xmin", "ymin", "xmax", "ymax")


def resolve_layout(annotations, images=None):
    """(annotation folder, image folder) for a VOC root, a standard Annotations folder or a free
    layout (images default to ../JPEGImages when present, else the annotation folder)."""
    if os.path.isdir(os.path.join(annotations, "Annotations")):
        root = annotations
        annotations = os.path.join(root, "Annotations")
        images = images or os.path.join(root, "JPEGImages")
    if not os.path.isdir(annotations):
        raise DataError(f"{annotations}: annotation folder not found")
    if images is None:
        sibling = os.path.join(os.path.dirname(os.path.abspath(annotations)), "JPEGImages")
        images = sibling if os.path.isdir(sibling) else annotations
    return annotations, images


def parse_voc_xml(path):
    """Parses one annotation file.

    Returns {"width", "height" (ints or None when absent/invalid), "objects": [{"name",
    "difficult", "bndbox": (xmin, ymin, xmax, ymax) floats or None, "index"}]}.
    Raises DataError (one line) for an empty file ("empty annotation file") or malformed XML
    ("line L, column C: ..."); field-level problems are left to the caller.
    """
    with open(path, "rb") as f:
        content = f.read()
    if not content.strip():
        raise DataError(f"{path}: empty annotation file")
    try:
        root = ET.fromstring(content)
    except ET.ParseError as e:
        line, column = e.position
        message = str(e).split(":")[0]
        raise DataError(f"{path}: line {line}, column {column + 1}: malformed XML ({message})") from None
    if root.tag != "annotation":
        raise DataError(f"{path}: root element is <{root.tag}>, expected <annotation>")
    objects = []
    for i, obj in enumerate(root.findall("object")):
        box = obj.find("bndbox")
        objects.append({
            "index": i,
            "name": (obj.findtext("name") or "").strip(),
            "difficult": _to_int(obj.findtext("difficult")) or 0,
            "bndbox": None if box is None else tuple(_to_float(box.findtext(k)) for k in _COORDS),
        })
    return {"width": _to_int(root.findtext("size/width")), "height": _to_int(root.findtext("size/height")),
            "objects": objects}


def load_voc(annotations, images=None, split=None, config=None, strict=None, name=None):
    """Loads VOC annotations (see the module docstring for layouts and conversions).

    annotations: annotation folder (or VOC root); images: image folder (default: see
    resolve_layout); split: optional split file of stems; config: supplies CLASS_NAMES,
    KEEP_EMPTY_IMAGES, MAX_GT_INSTANCES, STRICT_DATA (None: defaults); strict overrides
    STRICT_DATA. Returns a Dataset with records in split order (or sorted by stem).
    """
    from detection.config import Config

    config = config or Config()
    strict = config.STRICT_DATA if strict is None else strict
    annotations, images = resolve_layout(annotations, images)
    report = ValidationReport(name or os.path.basename(os.path.normpath(annotations)), strict=strict)
    xml_files = annotation_files(annotations, ".xml", report)
    stems = sorted(xml_files)
    image_ids = {stem: i for i, stem in enumerate(stems)}
    wanted = wanted_stems(xml_files, split, report, annotations, ".xml")
    class_names = list(config.CLASS_NAMES) if config.CLASS_NAMES else None
    parsed = parse_files(xml_files, wanted, parse_voc_xml, report, read_all=class_names is None)
    if class_names is None:
        class_names = sorted({o["name"] for p in parsed.values() if p for o in p["objects"] if o["name"]})
    class_of_name = {n: k + 1 for k, n in enumerate(class_names)}

    image_index = index_images(images)
    records = []
    for stem in wanted:
        annotation = parsed[stem]
        if annotation is None:
            continue
        paths = image_index.get(stem)
        if not paths:
            report.add("missing_image", xml_files[stem], "filename",
                       f"no {stem}.jpg/.jpeg/.png in {images}")
            continue
        if len(paths) > 1:
            report.add("duplicate_image_id", xml_files[stem], "filename",
                       f"{len(paths)} images named {stem}: using {os.path.basename(paths[0])}")
        record = _record(image_ids[stem], paths[0], xml_files[stem], annotation, class_of_name, report)
        if record is not None:
            records.append(record)
    records = finalize_records(records, report, config.KEEP_EMPTY_IMAGES, config.MAX_GT_INSTANCES)
    return Dataset(name=report.name, records=records, class_names=class_names,
                   category_ids=list(range(1, len(class_names) + 1)), report=report, source=annotations)


def _record(image_id, image_path, xml_path, annotation, class_of_name, report):
    """A Record from a parsed annotation; None when the image size is unknown and unreadable."""
    size = size_or_read(annotation["height"], annotation["width"], image_path, report, xml_path, "size")
    if size is None:
        return None
    height, width = size
    rows, fields, labels, difficult = [], [], [], []
    for obj in annotation["objects"]:
        field = f"object[{obj['index']}]"
        if obj["name"] not in class_of_name:
            report.add("unknown_class", xml_path, f"{field}.name", repr(obj["name"]))
            continue
        box = obj["bndbox"]
        if box is None or any(v is None for v in box):
            report.add("malformed_annotation", xml_path, f"{field}.bndbox", f"missing or non-numeric: {box}")
            continue
        xmin, ymin, xmax, ymax = box
        if xmax <= xmin or ymax <= ymin:  # NaN compares False and falls through to clean_boxes
            report.add("zero_area_box", xml_path, f"{field}.bndbox",
                       f"xmin..xmax {xmin:g}..{xmax:g}, ymin..ymax {ymin:g}..{ymax:g}")
            continue
        rows.append([ymin - 1, xmin - 1, ymax, xmax])
        fields.append(f"{field}.bndbox")
        labels.append(class_of_name[obj["name"]])
        difficult.append(bool(obj["difficult"]))
    boxes, keep = clean_boxes(np.array(rows, np.float64).reshape(-1, 4), height, width, report, xml_path, fields)
    return Record(image_id=image_id, path=image_path, height=height, width=width, boxes=boxes,
                  class_ids=np.array(labels, np.int32).reshape(-1)[keep],
                  iscrowd=np.zeros(len(keep), bool), difficult=np.array(difficult, bool).reshape(-1)[keep])


def _to_float(text):
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def _to_int(text):
    value = _to_float(text)
    return int(value) if value is not None and math.isfinite(value) else None
