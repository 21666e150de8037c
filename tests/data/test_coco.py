import json

import numpy as np
import pytest
from conftest import shared_dataset

from detection.config import Config
from detection.data.coco import load_coco
from detection.data.masks import decode_segmentation
from detection.data.validation import DataError

from .helpers import write_image


def coco_file(tmp_path, images, annotations, categories=None, name="instances.json"):
    categories = categories or [{"id": 7, "name": "cat"}, {"id": 3, "name": "dog"}, {"id": 90, "name": "toaster"}]
    path = tmp_path / name
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return str(path)


def image_entry(image_id, file_name, height=40, width=60):
    return {"id": image_id, "file_name": file_name, "height": height, "width": width}


def ann(ann_id, image_id, category_id, bbox, iscrowd=0, segmentation=None):
    entry = {"id": ann_id, "image_id": image_id, "category_id": category_id, "bbox": bbox, "iscrowd": iscrowd}
    if segmentation is not None:
        entry["segmentation"] = segmentation
    return entry


def test_boxes_classes_crowd_and_the_category_round_trip(tmp_path):
    write_image(tmp_path / "a.jpg")
    rle = {"size": [40, 60], "counts": [40 * 10 + 2, 3, 40 * 60 - 405]}
    path = coco_file(tmp_path, [image_entry(5, "a.jpg")], [
        ann(1, 5, 90, [10, 20, 30, 5], segmentation=[[10, 20, 40, 20, 40, 25, 10, 25]]),
        ann(2, 5, 3, [0, 0, 5, 5], iscrowd=1, segmentation=rle),
        ann(3, 5, 7, [1, 1, 2, 2]),
    ])
    dataset = load_coco(path, str(tmp_path))
    # Categories sorted by id: 3 dog -> 1, 7 cat -> 2, 90 toaster -> 3.
    assert dataset.class_names == ["dog", "cat", "toaster"] and dataset.category_ids == [3, 7, 90]
    assert [dataset.category_id(k) for k in (1, 2, 3)] == [3, 7, 90]
    assert [dataset.class_id(c) for c in (3, 7, 90)] == [1, 2, 3]
    with pytest.raises(KeyError):
        dataset.class_id(4)
    record = dataset.records[0]
    assert record.image_id == 5 and (record.height, record.width) == (40, 60)
    np.testing.assert_array_equal(record.boxes, [[20, 10, 25, 40], [0, 0, 5, 5], [1, 1, 3, 3]])
    np.testing.assert_array_equal(record.class_ids, [3, 1, 2])
    np.testing.assert_array_equal(record.iscrowd, [False, True, False])
    assert record.segmentations[1] is not None and record.segmentations[1]["counts"] == rle["counts"]
    # No segmentation: the box stands in as a polygon.
    assert decode_segmentation(record.segmentations[2], 40, 60).sum() == 4
    assert dataset.report.num_crowd == 1


def test_bad_entries_are_counted_with_file_and_field(tmp_path):
    write_image(tmp_path / "a.jpg")
    write_image(tmp_path / "b.jpg")
    path = coco_file(tmp_path, [image_entry(1, "a.jpg"), image_entry(1, "b.jpg"), image_entry(2, "missing.jpg"),
                                {"id": 3, "file_name": "x.jpg"}], [
        ann(1, 1, 7, [50, 30, 20, 20]),          # beyond 60x40: clipped
        ann(2, 1, 7, [5, 5, 0, 4]),              # zero width: dropped
        ann(3, 1, 7, [float("nan"), 1, 2, 2]),   # NaN: dropped
        ann(4, 1, 8, [1, 1, 2, 2]),              # unknown category id
        ann(5, 99, 7, [1, 1, 2, 2]),             # unknown image id
        ann(6, 1, 7, [1, 1, 2]),                 # malformed bbox
    ])
    dataset = load_coco(path, str(tmp_path))
    assert [r.path.rsplit("/", 1)[1] for r in dataset.records] == ["a.jpg"]
    assert dataset.report.counts == {"duplicate_image_id": 1, "missing_image": 1, "malformed_annotation": 2,
                                     "box_outside_image": 1, "zero_area_box": 1, "invalid_coordinates": 1,
                                     "unknown_class": 1, "orphan_annotation": 1}
    np.testing.assert_array_equal(dataset.records[0].boxes, [[30, 50, 40, 60]])
    fields = {kind: [p.field for p in problems] for kind, problems in dataset.report.examples.items()}
    assert fields["zero_area_box"] == ["annotations[1].bbox"] and fields["duplicate_image_id"] == ["images[1].id"]
    assert fields["malformed_annotation"] == ["images[3]", "annotations[5].bbox"]
    assert all(p.file == path for problems in dataset.report.examples.values() for p in problems
               if p.kind != "missing_image")


@pytest.mark.parametrize("text, message", [
    ("", "empty annotation file"),
    ('{"images": [],\n "annotations": [}', "line 2, column 18: malformed JSON"),
    ('{"annotations": []}', "field 'images': missing or not a list"),
])
def test_empty_or_malformed_file_is_a_one_line_error(tmp_path, text, message):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(DataError) as error:
        load_coco(str(path), str(tmp_path))
    assert str(error.value).startswith(str(path)) and message in str(error.value)
    assert "\n" not in str(error.value) and error.value.__cause__ is None


def test_strict_names_the_first_problem(tmp_path):
    write_image(tmp_path / "a.jpg")
    path = coco_file(tmp_path, [image_entry(1, "a.jpg")], [ann(1, 1, 7, [-3, 1, 5, 5])])
    with pytest.raises(DataError, match=r"annotations\[0\]\.bbox: NaN, infinite or negative"):
        load_coco(path, str(tmp_path), config=Config({"STRICT_DATA": True}))


def test_coco_tiny_counts():
    root = shared_dataset("coco_tiny")
    for subset, boxes, crowd in (("train", 705, 6), ("val", 815, 11)):
        dataset = load_coco(str(root / "annotations" / f"instances_{subset}2017.json"), str(root / f"{subset}2017"))
        assert len(dataset) == 80 and dataset.report.num_boxes == boxes and dataset.report.num_crowd == crowd
        assert dataset.num_classes == 81 and dataset.category_ids[-1] == 90 and 12 not in dataset.category_ids
        assert dataset.report.num_problems == 0
        crowd_segs = [s for r in dataset.records for s, c in zip(r.segmentations, r.iscrowd) if c]
        assert len(crowd_segs) == crowd and all(isinstance(s, dict) for s in crowd_segs)


def test_without_masks_the_segmentations_are_checked_but_not_kept(tmp_path):
    write_image(tmp_path / "a.jpg")
    annotations = [ann(1, 1, 7, [1, 2, 10, 8], segmentation=[[1, 2, 11, 2, 11, 10]]),
                   ann(2, 1, 7, [5, 5, 4, 4], segmentation=[[1, 2, 3]]),  # too short: counted, box kept
                   ann(3, 1, 3, [0, 0, 3, 3], iscrowd=1, segmentation={"counts": [0, 9, 2391], "size": [40, 60]})]
    path = coco_file(tmp_path, [image_entry(1, "a.jpg")], annotations)
    with_masks = load_coco(path, str(tmp_path), config=Config({"USE_MASK": True}))
    without = load_coco(path, str(tmp_path), config=Config({"USE_MASK": False}))
    assert len(with_masks.records[0].segmentations) == 3 and without.records[0].segmentations is None
    np.testing.assert_array_equal(without.records[0].boxes, with_masks.records[0].boxes)
    np.testing.assert_array_equal(without.records[0].iscrowd, [False, False, True])
    assert without.report.counts == with_masks.report.counts and without.report.counts["malformed_annotation"] == 1
