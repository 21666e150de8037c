"""bench/data_scale.py's synthetic COCO file: the loader reads it without a problem, with the
boxes it says it wrote, and its crowd RLEs lie inside their boxes."""
import json

import data_scale
import numpy as np

from detection.config import Config
from detection.data.coco import load_coco
from detection.data.masks import decode_segmentation
from tests.conftest import shared_dataset


def test_the_synthetic_file_loads_clean_with_its_boxes_and_masks(tmp_path, monkeypatch):
    monkeypatch.setattr(data_scale, "SOURCE_IMAGES", str(shared_dataset("coco_tiny") / "train2017"))
    annotations, images, boxes = data_scale.write_coco(str(tmp_path), 300)
    data = json.loads(open(annotations).read())
    dataset = load_coco(annotations, images, Config({"MAX_GT_INSTANCES": 200}))
    assert len(dataset) == 300 and dataset.report.num_boxes == boxes == len(data["annotations"])
    assert dataset.report.num_problems == 0 and dataset.report.num_crowd > 0
    for record in dataset.records:
        for segmentation, box, crowd in zip(record.segmentations, record.boxes, record.iscrowd):
            if crowd:  # the RLE of the box rectangle at whole pixels: its area, inside the box
                mask = decode_segmentation(segmentation, record.height, record.width)
                ys, xs = np.nonzero(mask)
                assert ys.min() >= int(box[0]) and xs.min() >= int(box[1])
                assert ys.max() < np.ceil(box[2]) and xs.max() < np.ceil(box[3])
    assert data_scale.write_coco(str(tmp_path), 300)[2] == boxes  # written once, then found
