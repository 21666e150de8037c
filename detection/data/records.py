"""The one record type every loader produces, and the dataset that holds them.

Frames: ``Record.boxes`` are ``[y1, x1, y2, x2]`` float32 in ORIGINAL-image pixels (the
loaders convert COCO xywh and VOC xmin..ymax here); the pipeline maps them to the model-input
frame. Class ids are contiguous 1..K (0 is background); ``Dataset.category_ids[k - 1]`` is the
dataset's own id of class k, used to map every output back.
"""

import dataclasses
from typing import Any, Optional

import numpy as np

from detection.data.validation import ValidationReport


@dataclasses.dataclass
class Record:
    """One image and its annotations.

    image_id: the dataset's own image id (COCO id; VOC: index in the sorted file list).
    path: image file path, or None for synthetic images (then ``synthetic`` renders it).
    height, width: original image size in pixels.
    boxes: [N, 4] float32 [y1, x1, y2, x2], original-image pixels.
    class_ids: [N] int32 contiguous class ids 1..K.
    iscrowd: [N] bool, COCO crowd regions (never positives, never negatives in training).
    difficult: [N] bool, VOC difficult flag (ignored by VOC evaluation).
    segmentations: None, or a list of N COCO segmentations (polygon lists or RLE dicts) in
        original-image pixels, decoded to masks by the pipeline.
    synthetic: None, or what a synthetic dataset needs to render the image and its masks.
    image_loader: None, or a callable () -> [H, W, 3] uint8 RGB original image that replaces
        reading ``path`` (a Python dataset with its own ``load_image``); it raises
        ImageReadError (one line) when it fails, and ``str(image_loader)`` names the image
        in problems.
    """

    image_id: int
    path: Optional[str]
    height: int
    width: int
    boxes: np.ndarray
    class_ids: np.ndarray
    iscrowd: np.ndarray
    difficult: np.ndarray
    segmentations: Optional[list] = None
    synthetic: Any = None
    image_loader: Any = None

    @property
    def num_boxes(self):
        return int(len(self.boxes))


@dataclasses.dataclass
class Dataset:
    """The records of one subset of a dataset, its classes and its validation report.

    name: a short name for messages (e.g. "coco_tiny/train").
    records: the images, each a Record with class ids 1..K.
    class_names: K names; class_names[k - 1] is the name of class k.
    category_ids: K ints; category_ids[k - 1] is the dataset's own id of class k
        (COCO category id; 1..K for VOC and shapes).
    report: what validation found while loading (and, later, while reading images).
    source: where it came from (an annotation file or folder, or "synthetic").
    """

    name: str
    records: list
    class_names: list
    category_ids: list
    report: ValidationReport
    source: str = ""

    @property
    def num_classes(self):
        """Classes including background (class 0): K + 1, matching config.NUM_CLASSES."""
        return len(self.class_names) + 1

    def category_id(self, class_id):
        """Contiguous class id k (1..K) -> the dataset's own category id."""
        return self.category_ids[int(class_id) - 1]

    def class_id(self, category_id):
        """The dataset's own category id -> contiguous class id k (1..K); KeyError if unknown."""
        try:
            return self.category_ids.index(int(category_id)) + 1
        except ValueError:
            raise KeyError(f"category id {category_id} is not in dataset {self.name}") from None

    def __len__(self):
        return len(self.records)

    def shard(self, index, count):
        """The records index, index + count, index + 2 count, ... as a Dataset of their own (one
        worker's share of the data); classes and report shared with this one."""
        if count == 1:
            return self
        return dataclasses.replace(self, name=f"{self.name} shard {index + 1}/{count}",
                                   records=self.records[index::count])
