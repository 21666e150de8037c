"""VGG Image Annotator (VIA) JSON -> Dataset: polygons and rectangles with a class attribute.

Files read (one JSON file per subset, ``--annotations FILE``):
  * a VIA 2.x project file (``_via_img_metadata`` inside, region attributes declared in
    ``_via_attributes``);
  * VIA's exported annotations ({key: {filename, size, regions, file_attributes}}), from
    VIA 2.x (``regions`` a list) or 1.x (``regions`` a dict {"0": region, ...}: matterport's
    balloon files, ``via_region_data.json``, whose region_attributes are all ``{}``).
A VIA 3 project (``project``, ``file``, ``metadata`` keys) is a DataError that says to export
VIA 2 JSON instead. Images: ``--images DIR`` (default the JSON's folder) joined with each
entry's ``filename``. VIA files do not hold the image size: it is read from each image's
header (images.image_size, EXIF orientation applied as read_image applies it).

Regions (``shape_attributes.name``): polygon (all_points_x, all_points_y), rect (x, y,
width, height), circle (cx, cy, r) and ellipse (cx, cy, rx, ry, theta in radians) become
polygons (detection/data/polygons.py: continuous coordinates, box = the points' extent);
point and polyline outline no area and are counted as ``unsupported_shape``; another name
is a malformed region. Every problem names the file and the field, e.g.
``["a.jpg1234"].regions[2].shape_attributes.all_points_x``.

The class of a region is the value of one region attribute:
  1. config.VIA_CLASS_ATTRIBUTE when set;
  2. else the only region attribute there is (declared in a project file or used by any
     region of the file); several are a DataError asking for VIA_CLASS_ATTRIBUTE;
  3. no attribute at all (matterport's balloon files): with one class (CLASS_NAMES of one
     name) every region is that class; otherwise a DataError saying so.
A text, radio or dropdown attribute's value is the class name; a checkbox attribute
({option: true, ...}) names a class when exactly one option is set. A region without a
usable value is counted as ``unknown_class``, as is a name not in CLASS_NAMES.
Classes: CLASS_NAMES when set, else every name in the file, sorted (ids 1..K; category ids
1..K). image_id: the entry's position in the file. Entries without regions are images
without boxes (kept as negative samples, or dropped, by KEEP_EMPTY_IMAGES).
"""

import os

from detection.data import polygons as poly
from detection.data.images import ImageReadError, image_size
from detection.data.jsonfile import read_json
from detection.data.validation import DataError, ValidationReport


def read_via_json(path):
    """(entries, prefix, declared): the image entries of a VIA file as {key: entry}, the
    field prefix naming them in problems ("_via_img_metadata" in a project file, else ""),
    and the region attribute names a project file declares (None for an export).
    DataError (one line) for a file that is not VIA 1.x / 2.x JSON."""
    data = read_json(path)
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a VIA JSON object, got {type(data).__name__}")
    if "_via_img_metadata" in data:
        entries = data["_via_img_metadata"]
        if not isinstance(entries, dict):
            raise DataError(f"{path}: field '_via_img_metadata': expected an object of images")
        attributes = data.get("_via_attributes")
        region = attributes.get("region") if isinstance(attributes, dict) else None
        return entries, "_via_img_metadata", list(region) if isinstance(region, dict) else None
    if {"project", "file", "metadata"} <= set(data):
        raise DataError(f"{path}: a VIA 3 project file; export the annotations as VIA 2 JSON "
                        "(or COCO) to load them")
    if data and not any(isinstance(e, dict) and "regions" in e and "filename" in e for e in data.values()):
        raise DataError(f"{path}: not a VIA file: expected _via_img_metadata, or entries with "
                        "filename and regions")
    return data, "", None


def load_via(annotation_file, images=None, config=None, strict=None, name=None):
    """Loads a VIA JSON file (see the module docstring for what is read and how).

    annotation_file: the project or exported JSON; images: image folder (default the
    file's folder); config: supplies CLASS_NAMES, VIA_CLASS_ATTRIBUTE, KEEP_EMPTY_IMAGES,
    MAX_GT_INSTANCES, STRICT_DATA (None: defaults); strict overrides STRICT_DATA.
    Returns a Dataset with records in file order.
    """
    from detection.config import Config

    config = config or Config()
    strict = config.STRICT_DATA if strict is None else strict
    file = annotation_file
    entries, prefix, declared = read_via_json(file)
    images = images or os.path.dirname(os.path.abspath(file))
    if not os.path.isdir(images):
        raise DataError(f"{images}: image folder not found")
    report = ValidationReport(name or os.path.basename(file), strict=strict)

    parsed = []  # (image_id, field, entry, [(region field, region dict)])
    seen = set()
    for image_id, (key, entry) in enumerate(entries.items()):
        field = f'{prefix}["{key}"]'
        if not (isinstance(entry, dict) and isinstance(entry.get("filename"), str) and entry["filename"]):
            report.add("malformed_annotation", file, field, "expected an object with a filename")
            continue
        if entry["filename"] in seen:
            report.add("duplicate_image_id", file, f"{field}.filename", f"{entry['filename']} seen before")
            continue
        seen.add(entry["filename"])
        parsed.append((image_id, field, entry, _regions(entry, field, file, report)))

    classify = _class_rule(config, declared, [r for *_, regions in parsed for _, r in regions], file)
    instances = {image_id: _instances(regions, classify, file, report) for image_id, _, _, regions in parsed}
    class_names = poly.class_names_of(config, (i.label for found in instances.values() for i in found))
    class_of_name = {n: k + 1 for k, n in enumerate(class_names)}

    records = []
    for image_id, field, entry, _ in parsed:
        path = os.path.join(images, entry["filename"])
        if not os.path.isfile(path):
            report.add("missing_image", file, f"{field}.filename", f"no {entry['filename']} in {images}")
            continue
        try:
            height, width = image_size(path)
        except ImageReadError as e:
            report.add("unreadable_image", path, "", str(e).split(": ", 1)[-1], once=True)
            continue
        records.append(poly.polygon_record(image_id, path, height, width, instances[image_id],
                                           class_of_name, report, file))
    return poly.polygon_dataset(report, records, class_names, config, source=file)


def _regions(entry, field, file, report):
    """[(field, region)] of an entry's well-formed regions (list or 1.x dict); others counted."""
    regions = entry.get("regions", [])
    if isinstance(regions, dict):
        items = [(f"{field}.regions[\"{k}\"]", r) for k, r in regions.items()]
    elif isinstance(regions, list):
        items = [(f"{field}.regions[{i}]", r) for i, r in enumerate(regions)]
    else:
        report.add("malformed_annotation", file, f"{field}.regions",
                   f"expected a list or an object, got {regions!r:.60}")
        return []
    out = []
    for region_field, region in items:
        shape = region.get("shape_attributes") if isinstance(region, dict) else None
        if not (isinstance(shape, dict) and isinstance(shape.get("name"), str)):
            report.add("malformed_annotation", file, f"{region_field}.shape_attributes",
                       "missing, or without a shape name")
            continue
        if not isinstance(region.get("region_attributes", {}), dict):
            report.add("malformed_annotation", file, f"{region_field}.region_attributes", "expected an object")
            continue
        out.append((region_field, region))
    return out


def _class_rule(config, declared, regions, file):
    """A function region -> (class name or None, why not) by the rule of the module docstring."""
    attribute = config.VIA_CLASS_ATTRIBUTE
    names = sorted(set(declared or ()) | {k for r in regions for k in r.get("region_attributes", {})})
    if not regions:
        pass  # nothing to classify (an empty subset): no rule needed
    elif attribute is not None and attribute not in names:
        raise DataError(f"{file}: VIA_CLASS_ATTRIBUTE {attribute!r} is not an attribute of any region "
                        f"(attributes: {', '.join(map(repr, names)) or 'none'})")
    elif attribute is None:
        if len(names) > 1:
            raise DataError(f"{file}: regions have attributes {', '.join(map(repr, names))}: set "
                            "VIA_CLASS_ATTRIBUTE to the one naming the class (--set VIA_CLASS_ATTRIBUTE=NAME)")
        if not names:
            if config.CLASS_NAMES and len(config.CLASS_NAMES) == 1:
                only = config.CLASS_NAMES[0]
                return lambda region: (only, "")
            raise DataError(f"{file}: regions have no attribute naming their class: for a dataset of one "
                            "class set CLASS_NAMES to its name (every region is that class); otherwise "
                            "label the regions with a class attribute")
        attribute = names[0]

    def classify(region):
        value = region.get("region_attributes", {}).get(attribute)
        if isinstance(value, dict):  # checkbox: {option: true/false}
            chosen = [k for k, v in value.items() if v]
            if len(chosen) != 1:
                return None, f"checkbox attribute '{attribute}' with {len(chosen)} options set, not 1"
            value = chosen[0]
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str) or not value.strip():
            return None, f"no class in attribute '{attribute}'" + ("" if value is None else f": {value!r:.40}")
        return value.strip(), ""

    return classify


def _instances(regions, classify, file, report):
    """The regions of one entry as polygon Instances (problems counted)."""
    out = []
    for field, region in regions:
        label, why = classify(region)
        if label is None:
            report.add("unknown_class", file, f"{field}.region_attributes", why)
            continue
        points = _shape_points(region["shape_attributes"], f"{field}.shape_attributes", file, report)
        if points is not None:
            out.append(poly.Instance(label, [points], field))
    return out


_NUMBERS = {"rect": ("x", "y", "width", "height"), "circle": ("cx", "cy", "r"), "ellipse": ("cx", "cy", "rx", "ry")}


def _shape_points(shape, field, file, report):
    """[K, 2] (x, y) outline points of a VIA shape, or None (counted)."""
    name = shape["name"]
    if not poly.known_area_shape(name, ("polygon",) + tuple(_NUMBERS), report, file, f"{field}.name"):
        return None
    if name == "polygon":
        return poly.points_from_xy(shape.get("all_points_x"), shape.get("all_points_y"), report, file, field)
    values = {}
    for key in _NUMBERS[name] + (("theta",) if name == "ellipse" else ()):
        value = shape.get(key, 0.0 if key == "theta" else None)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            report.add("malformed_annotation", file, f"{field}.{key}", f"expected a number, got {value!r:.40}")
            return None
        values[key] = float(value)
    if name == "rect":
        x, y = values["x"], values["y"]
        return poly.rectangle(x, y, x + values["width"], y + values["height"])
    if name == "circle":
        return poly.ellipse(values["cx"], values["cy"], values["r"], values["r"])
    return poly.ellipse(values["cx"], values["cy"], values["rx"], values["ry"], values["theta"])
