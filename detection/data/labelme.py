"""LabelMe JSON (one file per image) -> Dataset: polygons, rectangles and circles.

Layout: the .json files in one folder (``--annotations DIR``), optionally a split file of
stems (``--split``, as for VOC). A file holds ``shapes`` [{label, points, shape_type,
group_id}], ``imagePath``, ``imageHeight``, ``imageWidth`` (and maybe ``imageData``, not read).

The image of ``a.json``, first that exists:
  1. its imagePath, relative to the JSON's folder (Windows separators accepted);
  2. the image with the JSON's stem (``a.jpg`` / ``.jpeg`` / ``.png``, any case) in
     ``--images DIR`` (default the JSON folder);
  3. imagePath's file name in that folder.
None: ``missing_image``, counted. An image only embedded in ``imageData`` is not read.
The size is imageHeight x imageWidth (LabelMe stores the size after EXIF orientation, as
read_image reads it); missing or invalid, it is read from the image and counted.

Shapes (``shape_type``, default polygon as in files of LabelMe < 3): polygon (>= 3 points),
rectangle (2 corners), circle (centre, then a point on the circle) become polygons
(detection/data/polygons.py: continuous coordinates, box = the points' extent); point,
points, line and linestrip outline no area (``unsupported_shape``, counted); mask (LabelMe
5.3's bitmap shapes) is counted as unsupported too; anything else is malformed.
Shapes with the same label and the same non-null ``group_id`` are ONE instance in several
polygons (an object cut in parts by an occluder); null group_id: each shape its own.
Problems name the file and the field, e.g. ``shapes[3].points``.

Classes: CLASS_NAMES when set, else the label of every polygon, rectangle and circle in every
JSON of the folder (not only the split), sorted, so train and val splits of one folder agree;
ids 1..K, category ids 1..K.
image_id: index of the file's stem among all stems of the folder, sorted.
"""

import os

import numpy as np

from detection.data import polygons as poly
from detection.data.annotation_folder import annotation_files, parse_files, size_or_read, wanted_stems
from detection.data.images import index_images
from detection.data.jsonfile import read_json
from detection.data.validation import DataError, ValidationReport

# shape_type -> smallest number of points
_AREA_SHAPES = {"polygon": 3, "rectangle": 2, "circle": 2}
_UNSUPPORTED = poly.NO_AREA_SHAPES + ("mask",)


def parse_labelme_json(path):
    """The parsed JSON of one LabelMe file; DataError (one line) when it is not a JSON
    object with a ``shapes`` list."""
    data = read_json(path)
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a LabelMe JSON object, got {type(data).__name__}")
    if not isinstance(data.get("shapes"), list):
        raise DataError(f"{path}: field 'shapes': missing or not a list")
    return data


def load_labelme(annotations, images=None, split=None, config=None, strict=None, name=None):
    """Loads a folder of LabelMe files (see the module docstring for what is read and how).

    annotations: folder of .json files; images: folder searched by stem (default the same);
    split: optional file of stems; config: supplies CLASS_NAMES, KEEP_EMPTY_IMAGES,
    MAX_GT_INSTANCES, STRICT_DATA (None: defaults); strict overrides STRICT_DATA.
    Returns a Dataset with records in split order (or sorted by stem).
    """
    from detection.config import Config

    config = config or Config()
    strict = config.STRICT_DATA if strict is None else strict
    images = images or annotations
    report = ValidationReport(name or os.path.basename(os.path.normpath(annotations)), strict=strict)
    json_files = annotation_files(annotations, ".json", report)
    image_ids = {stem: i for i, stem in enumerate(sorted(json_files))}
    wanted = wanted_stems(json_files, split, report, annotations, ".json")
    parsed = parse_files(json_files, wanted, parse_labelme_json, report, read_all=not config.CLASS_NAMES)
    class_names = poly.class_names_of(config, (s["label"].strip() for p in parsed.values() if p
                                               for s in p["shapes"] if _names_an_object(s)))
    class_of_name = {n: k + 1 for k, n in enumerate(class_names)}

    image_index = index_images(images)
    records = []
    for stem in wanted:
        data, file = parsed[stem], json_files[stem]
        if data is None:
            continue
        path = _image_path(data, file, stem, images, image_index)
        if path is None:
            report.add("missing_image", file, "imagePath",
                       f"{data.get('imagePath')!r:.60} not found, nor {stem}.jpg/.jpeg/.png in {images}")
            continue
        size = size_or_read(data.get("imageHeight"), data.get("imageWidth"), path, report, file, "imageHeight")
        if size is None:
            continue
        instances = _instances(data["shapes"], file, report)
        records.append(poly.polygon_record(image_ids[stem], path, *size, instances, class_of_name, report, file))
    return poly.polygon_dataset(report, records, class_names, config, source=annotations)


def _is_label(shape):
    return isinstance(shape, dict) and isinstance(shape.get("label"), str) and shape["label"].strip()


def _names_an_object(shape):
    """A shape whose label is a class name: a labelled area shape (a point's label is not a
    class of the detector: it is often a keypoint's name)."""
    return _is_label(shape) and (shape.get("shape_type") or "polygon") in _AREA_SHAPES


def _image_path(data, file, stem, images, image_index):
    """The image file of a LabelMe file (the order of the module docstring), or None."""
    image_path = data.get("imagePath")
    relative = image_path.replace("\\", "/") if isinstance(image_path, str) and image_path else None
    if relative:
        candidate = os.path.normpath(os.path.join(os.path.dirname(file), relative))
        if os.path.isfile(candidate):
            return candidate
    if image_index.get(stem):
        return image_index[stem][0]
    if relative:
        candidate = os.path.join(images, os.path.basename(relative))
        if os.path.isfile(candidate):
            return candidate
    return None


def _instances(shapes, file, report):
    """The shapes of one file as polygon Instances, grouped by (label, group_id)."""
    out, groups = [], {}
    for i, shape in enumerate(shapes):
        field = f"shapes[{i}]"
        if not _is_label(shape):
            report.add("malformed_annotation", file, f"{field}.label", "missing or empty label")
            continue
        points = _shape_points(shape, field, file, report)
        if points is None:
            continue
        label, group = shape["label"].strip(), shape.get("group_id")
        if group is None:
            out.append(poly.Instance(label, [points], field))
        elif (label, group) in groups:
            groups[(label, group)].polygons.append(points)
        else:
            groups[(label, group)] = poly.Instance(label, [points], f"{field} (group_id {group})")
            out.append(groups[(label, group)])
    return out


def _shape_points(shape, field, file, report):
    """[K, 2] (x, y) outline points of a LabelMe shape, or None (counted)."""
    kind = shape.get("shape_type") or "polygon"
    if not poly.known_area_shape(kind, tuple(_AREA_SHAPES), report, file, f"{field}.shape_type", _UNSUPPORTED):
        return None
    points = poly.points_from_pairs(shape.get("points"), report, file, f"{field}.points", _AREA_SHAPES[kind])
    if points is None or kind == "polygon":
        return points
    if kind == "rectangle":  # two corners; more points (other tools): their extent
        (x1, y1), (x2, y2) = points.min(axis=0), points.max(axis=0)
        return poly.rectangle(x1, y1, x2, y2)
    (cx, cy), edge = points[0], points[1]
    radius = float(np.hypot(*(edge - points[0])))
    return poly.ellipse(cx, cy, radius, radius)
