"""Polygon annotations (VIA, LabelMe) -> records: the shape conversions and checks both share.

Coordinates: a polygon's points are CONTINUOUS original-image coordinates, as COCO polygons
are: pixel (row i, column j) is the unit square [j, j + 1) x [i, i + 1), so a click on the
top-left corner of the image is (0, 0) and one on its bottom-right corner is (W, H). VIA and
LabelMe store the positions of the annotator's clicks in these units (VIA rounds them to
integers). The polygons are kept as COCO polygon segmentations (flat [x0, y0, x1, y1, ...]
lists) in Record.segmentations and rasterised by the pipeline (masks.decode_segmentation,
pycocotools): a pixel is inside when its centre is, up to 0.2 px at the edges (pycocotools
samples at 5x). The box of an instance is the extent of its points,
``[y1, x1, y2, x2] = [min y, min x, max y, max x]``; for a polygon with integer vertices this
is exactly the pixel-edge bounding box of its mask. (LabelMe's own ``shape_to_mask`` draws with
PIL, which treats a point as a pixel index and fills half a pixel more on every side; we keep
the COCO convention, as the COCO loader does.)

Shapes other than polygons are converted here, once:
  * rectangle (two corners, or VIA's x, y, width, height): its box, and its 4 corners as the
    polygon;
  * circle and ellipse: a polygon of ELLIPSE_VERTICES points on the outline (the box is the
    points' extent, which for an unrotated ellipse is exact: a vertex falls on every extreme);
  * point, line, polyline, linestrip: they outline no area, so they are counted as
    ``unsupported_shape`` (file and field named) and dropped, not guessed into a region.

Checks (each a counted repair naming file and field, or DataError under strict): missing or
non-numeric coordinates, x and y lists of different lengths, fewer than 3 points
(``malformed_annotation``); a polygon without area (all points on a line:
``zero_area_box``); then the box checks every loader shares (``clean_boxes``: clipped to the
image, dropped without area).
"""

import dataclasses
import math

import numpy as np

from detection.data.records import Dataset, Record
from detection.data.validation import clean_boxes, finalize_records

ELLIPSE_VERTICES = 64  # a multiple of 4: the extremes of an unrotated ellipse are vertices
NO_AREA_SHAPES = ("point", "points", "line", "polyline", "linestrip")


@dataclasses.dataclass
class Instance:
    """One object of an annotation file, before its checks.

    label: the class name as the file gives it.
    polygons: list of [K, 2] float64 arrays of (x, y) points, continuous original-image
        coordinates; several for an object in several parts (LabelMe group_id).
    field: where it is in the file, for problems (e.g. ``regions[2]``, ``shapes[3]``).
    """

    label: str
    polygons: list
    field: str


def points_from_xy(xs, ys, report, file, field):
    """VIA's all_points_x / all_points_y -> [K, 2] float64 (x, y), or None (counted) when
    either is missing, not a list of numbers, they differ in length or there are < 3 points."""
    if not (_is_number_list(xs) and _is_number_list(ys)):
        bad = "all_points_x" if not _is_number_list(xs) else "all_points_y"
        value = xs if bad == "all_points_x" else ys
        report.add("malformed_annotation", file, f"{field}.{bad}", f"expected a list of numbers, got {value!r:.60}")
        return None
    if len(xs) != len(ys):
        report.add("malformed_annotation", file, f"{field}.all_points_x",
                   f"{len(xs)} x values but {len(ys)} y values")
        return None
    return _enough_points(np.array([xs, ys], np.float64).T.reshape(-1, 2), report, file, field + ".all_points_x")


def points_from_pairs(points, report, file, field, minimum=3):
    """LabelMe's points [[x, y], ...] -> [K, 2] float64, or None (counted) when malformed or
    with fewer than ``minimum`` points."""
    if not (isinstance(points, list) and all(isinstance(p, list) and len(p) == 2 and _is_number_list(p)
                                             for p in points)):
        report.add("malformed_annotation", file, field, f"expected a list of [x, y] numbers, got {points!r:.60}")
        return None
    return _enough_points(np.array(points, np.float64).reshape(-1, 2), report, file, field, minimum)


def known_area_shape(kind, known, report, file, field, unsupported=NO_AREA_SHAPES):
    """True when the shape name ``kind`` is one of ``known`` (those a loader converts); else
    False, counted: ``unsupported_shape`` for a name in ``unsupported`` (a shape without
    area), ``malformed_annotation`` for any other name."""
    if kind in known:
        return True
    if kind in unsupported:
        report.add("unsupported_shape", file, field, repr(kind))
    else:
        report.add("malformed_annotation", file, field, f"unknown shape {kind!r:.40}; expected {', '.join(known)}")
    return False


def rectangle(x1, y1, x2, y2):
    """The 4 corners [4, 2] (x, y) of the rectangle with corners (x1, y1) and (x2, y2), any order."""
    xa, xb = sorted((float(x1), float(x2)))
    ya, yb = sorted((float(y1), float(y2)))
    return np.array([[xa, ya], [xb, ya], [xb, yb], [xa, yb]], np.float64)


def ellipse(cx, cy, rx, ry, theta=0.0):
    """ELLIPSE_VERTICES points [V, 2] (x, y) on the ellipse with centre (cx, cy), radii rx, ry
    and the x radius turned by ``theta`` radians (clockwise on screen: y points down)."""
    angles = np.arange(ELLIPSE_VERTICES) * (2 * math.pi / ELLIPSE_VERTICES)
    x, y = rx * np.cos(angles), ry * np.sin(angles)
    c, s = math.cos(theta), math.sin(theta)
    return np.stack([cx + c * x - s * y, cy + s * x + c * y], axis=1)


def class_names_of(config, found):
    """The class names: config.CLASS_NAMES when set, else the ``found`` names sorted."""
    return list(config.CLASS_NAMES) if config.CLASS_NAMES else sorted(set(found))


def polygon_record(image_id, path, height, width, instances, class_of_name, report, file):
    """A Record from an image's instances: unknown classes and bad polygons counted and
    dropped, boxes the polygons' extents cleaned by clean_boxes, the polygons kept as COCO
    segmentations (original pixels).

    instances: list of Instance; class_of_name: {name: class id 1..K}; file: the annotation
    file named in problems.
    """
    rows, fields, labels, segmentations = [], [], [], []
    for instance in instances:
        if instance.label not in class_of_name:
            report.add("unknown_class", file, instance.field, repr(instance.label))
            continue
        polygons = [p for p in instance.polygons if _has_area(p, report, file, instance.field)]
        if not polygons:
            continue
        points = np.concatenate(polygons)
        (x1, y1), (x2, y2) = points.min(axis=0), points.max(axis=0)
        rows.append([y1, x1, y2, x2])
        fields.append(instance.field)
        labels.append(class_of_name[instance.label])
        segmentations.append([[float(v) for v in p.reshape(-1)] for p in polygons])
    boxes, keep = clean_boxes(np.array(rows, np.float64).reshape(-1, 4), height, width, report, file, fields)
    n = len(keep)
    return Record(image_id=image_id, path=path, height=height, width=width, boxes=boxes,
                  class_ids=np.array(labels, np.int32).reshape(-1)[keep],
                  iscrowd=np.zeros(n, bool), difficult=np.zeros(n, bool),
                  segmentations=[segmentations[i] for i in keep])


def polygon_dataset(report, records, class_names, config, source, file_of=lambda r: r.path):
    """The Dataset of ``records`` after the dataset-level checks (finalize_records);
    category ids 1..K."""
    records = finalize_records(records, report, config.KEEP_EMPTY_IMAGES, config.MAX_GT_INSTANCES, file_of)
    return Dataset(name=report.name, records=records, class_names=list(class_names),
                   category_ids=list(range(1, len(class_names) + 1)), report=report, source=source)


def _enough_points(points, report, file, field, minimum=3):
    if len(points) < minimum:
        report.add("malformed_annotation", file, field, f"{len(points)} point(s), a region needs at least {minimum}")
        return None
    return points


def _has_area(points, report, file, field):
    """False (counted) for a polygon whose points all lie on one line (shoelace area 0).
    NaN coordinates pass: clean_boxes counts them."""
    x, y = points[:, 0], points[:, 1]
    area = 0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))
    if area == 0:
        report.add("zero_area_box", file, field, f"polygon of {len(points)} points without area")
        return False
    return True


def _is_number_list(values):
    return isinstance(values, list) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
