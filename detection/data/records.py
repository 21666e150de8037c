"""The one record type every loader produces, and the dataset that holds them.

Frames: ``Record.boxes`` are ``[y1, x1, y2, x2]`` float32 in ORIGINAL-image pixels (the
loaders convert COCO xywh and VOC xmin..ymax here); the pipeline maps them to the model-input
frame. Class ids are contiguous 1..K (0 is background); ``Dataset.category_ids[k - 1]`` is the
dataset's own id of class k, used to map every output back.
"""

import dataclasses
from typing import Any, Optional

import numpy as np


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

    @property
    def num_boxes(self):
        return int(len(self.boxes))
