"""Small builders for data tests: tiny image files and hand-made records."""
import cv2
import numpy as np

from detection.config import Config
from detection.data.masks import decode_segmentation
from detection.data.records import Dataset, Record
from detection.data.validation import ValidationReport


def write_image(path, height=40, width=60, value=128, channels=3):
    """Writes a tiny image file (format from the extension) filled with ``value``; returns its path."""
    shape = (height, width, channels) if channels > 1 else (height, width)
    image = np.full(shape, value, np.uint8)
    assert cv2.imwrite(str(path), image)
    return str(path)


def make_record(path, boxes, class_ids, height=40, width=60, iscrowd=None, image_id=1, segmentations=None):
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    n = len(boxes)
    return Record(image_id=image_id, path=str(path) if path else None, height=height, width=width,
                  boxes=boxes, class_ids=np.asarray(class_ids, np.int32),
                  iscrowd=np.zeros(n, bool) if iscrowd is None else np.asarray(iscrowd, bool),
                  difficult=np.zeros(n, bool), segmentations=segmentations)


def make_dataset_of(records, names=("a", "b", "c")):
    return Dataset("test", list(records), list(names), list(range(1, len(names) + 1)), ValidationReport("test"))


def small_config(**changes):
    """A config for tiny test images: square 64 px input, 4 GT rows, 8x8 mini masks."""
    values = dict(IMAGE_RESIZE_MODE="square", IMAGE_MIN_DIM=64, IMAGE_MAX_DIM=64, MAX_GT_INSTANCES=4,
                  MINI_MASK_SHAPE=[8, 8], IMAGES_PER_GPU=1, NUM_CLASSES=4, SHAPES_IMAGE_SIZE=64,
                  SHAPES_TRAIN_COUNT=8, SHAPES_VAL_COUNT=4)
    values.update(changes)
    return Config(values)


def voc_xml(objects, width=60, height=40, filename="ignored.jpg"):
    """A VOC annotation document; objects: (name, xmin, ymin, xmax, ymax[, difficult]) tuples,
    values written as given (strings allowed, for malformed cases)."""
    parts = [f"<annotation><filename>{filename}</filename><path>/elsewhere/{filename}</path>",
             f"<size><width>{width}</width><height>{height}</height><depth>3</depth></size>"]
    for obj in objects:
        name, xmin, ymin, xmax, ymax = obj[:5]
        difficult = obj[5] if len(obj) > 5 else 0
        parts.append(f"<object><name>{name}</name><difficult>{difficult}</difficult><bndbox><xmin>{xmin}</xmin>"
                     f"<ymin>{ymin}</ymin><xmax>{xmax}</xmax><ymax>{ymax}</ymax></bndbox></object>")
    return "".join(parts) + "</annotation>"


# pycocotools rasterises a polygon by sampling at 5x: a pixel is inside when its centre is,
# except within this distance (pixels) of the outline (measured: at most 0.142 over 5000
# random polygons). A test of "mask = rasterised polygon" holds pixel by pixel outside it.
RASTER_TOLERANCE = 0.2


def centres_inside(points, height, width):
    """[H, W] bool: the pixels whose centre (j + 0.5, i + 0.5) lies inside the polygon
    ``points`` [K, 2] (x, y) continuous coordinates (even-odd rule), without pycocotools."""
    cy, cx = np.mgrid[0:height, 0:width] + 0.5
    inside = np.zeros((height, width), bool)
    points = np.asarray(points, np.float64)
    for (x1, y1), (x2, y2) in zip(points, np.roll(points, -1, axis=0)):
        if y1 != y2:
            crosses = (cy >= min(y1, y2)) & (cy < max(y1, y2))
            inside ^= crosses & (cx < x1 + (cy - y1) * (x2 - x1) / (y2 - y1))
    return inside


def distance_to_outline(points, height, width):
    """[H, W] distance of each pixel centre to the nearest edge of polygon ``points`` [K, 2]."""
    cy, cx = np.mgrid[0:height, 0:width] + 0.5
    distance = np.full((height, width), np.inf)
    points = np.asarray(points, np.float64)
    for p, q in zip(points, np.roll(points, -1, axis=0)):
        v = q - p
        t = np.clip(((cx - p[0]) * v[0] + (cy - p[1]) * v[1]) / max(v @ v, 1e-12), 0, 1)
        distance = np.minimum(distance, np.hypot(cx - p[0] - t * v[0], cy - p[1] - t * v[1]))
    return distance


def assert_mask_is_polygon(mask, polygons):
    """``mask`` [H, W] is the union of ``polygons`` (each [K, 2] (x, y)) rasterised by pixel
    centres, pixel by pixel, except within RASTER_TOLERANCE of an outline."""
    height, width = mask.shape
    expected = np.zeros((height, width), bool)
    near = np.zeros((height, width), bool)
    for points in polygons:
        expected |= centres_inside(points, height, width)
        near |= distance_to_outline(points, height, width) < RASTER_TOLERANCE
    differ = (mask != 0) != expected
    assert not (differ & ~near).any(), f"{int((differ & ~near).sum())} pixels differ away from the outline"
    assert expected.sum() > 0


class PerfectPredictor:
    """Predicts every GT instance of the records, with its GT mask: AP must be 1."""

    def predict_records(self, records, progress=False, report=None):
        for record in records:
            masks = np.stack([decode_segmentation(s, record.height, record.width) for s in record.segmentations])
            yield {"image_id": record.image_id, "boxes": record.boxes, "class_ids": record.class_ids,
                   "scores": np.ones(record.num_boxes), "masks": masks}
