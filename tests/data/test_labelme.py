"""LabelMe loader; expected masks computed without pycocotools, as in test_via.py."""
import json
import os
import re

import numpy as np
import pytest

from detection.config import Config
from detection.data.labelme import load_labelme
from detection.data.masks import decode_segmentation
from detection.data.validation import DataError

from .helpers import assert_mask_is_polygon, write_image


def shape(label, points, shape_type="polygon", group_id=None):
    return {"label": label, "points": points, "shape_type": shape_type, "group_id": group_id, "flags": {}}


def write_labelme(folder, stem, shapes, image_path=None, size=(40, 60), image_ext=".jpg", image_folder=None):
    """STEM.json in ``folder`` and (unless image_ext is None) its image in ``image_folder``
    (default ``folder``); imagePath as given, default the image's file name."""
    folder.mkdir(parents=True, exist_ok=True)
    if image_ext:
        (image_folder or folder).mkdir(parents=True, exist_ok=True)
        write_image((image_folder or folder) / f"{stem}{image_ext}", *size)
    data = {"version": "5.4.1", "flags": {}, "shapes": shapes, "imageData": None,
            "imagePath": image_path if image_path is not None else f"{stem}{image_ext}",
            "imageHeight": size[0], "imageWidth": size[1]}
    (folder / f"{stem}.json").write_text(json.dumps(data))
    return str(folder / f"{stem}.json")


def masks_of(record):
    return [decode_segmentation(s, record.height, record.width) for s in record.segmentations]


def test_polygon_rectangle_circle_masks_and_boxes(tmp_path):
    slanted = [[40.5, 3.25], [55, 10], [50.75, 30], [37, 22.5]]
    write_labelme(tmp_path, "a", [shape("cat", [[10, 5], [30, 5], [30, 25], [20, 25], [20, 15], [10, 15]]),
                                  shape("dog", [[9, 35], [2, 26]], "rectangle"),  # corners in any order
                                  shape("cat", slanted),
                                  shape("dog", [[20, 30], [20, 36]], "circle")])
    dataset = load_labelme(str(tmp_path))
    record = dataset.records[0]
    assert dataset.class_names == ["cat", "dog"] and dataset.report.num_problems == 0
    np.testing.assert_array_equal(record.class_ids, [1, 2, 1, 2])
    np.testing.assert_allclose(record.boxes, [[5, 10, 25, 30], [26, 2, 35, 9], [3.25, 37, 30, 55],
                                              [24, 14, 36, 26]], atol=1e-4)
    l_mask, rect_mask, slanted_mask, circle_mask = masks_of(record)
    expected = np.zeros((40, 60), np.uint8)
    expected[5:15, 10:30] = expected[15:25, 20:30] = 1
    np.testing.assert_array_equal(l_mask, expected)
    expected = np.zeros((40, 60), np.uint8)
    expected[26:35, 2:9] = 1
    np.testing.assert_array_equal(rect_mask, expected)
    assert_mask_is_polygon(slanted_mask, [np.array(slanted)])
    assert abs(circle_mask.sum() - np.pi * 36) < 0.05 * np.pi * 36


def test_shapes_with_one_label_and_group_id_are_one_instance(tmp_path):
    left, right = [[2, 2], [10, 2], [10, 12], [2, 12]], [[20, 4], [28, 4], [28, 9], [20, 9]]
    write_labelme(tmp_path, "a", [shape("car", left, group_id=1), shape("car", right, group_id=1),
                                  shape("car", left, group_id=2), shape("person", right, group_id=1),
                                  shape("car", right), shape("car", left)])
    record = load_labelme(str(tmp_path)).records[0]
    np.testing.assert_array_equal(record.boxes, [[2, 2, 12, 28], [2, 2, 12, 10], [4, 20, 9, 28],
                                                 [4, 20, 9, 28], [2, 2, 12, 10]])
    np.testing.assert_array_equal(record.class_ids, [1, 1, 2, 1, 1])
    expected = np.zeros((40, 60), np.uint8)
    expected[2:12, 2:10] = expected[4:9, 20:28] = 1
    np.testing.assert_array_equal(masks_of(record)[0], expected)


@pytest.mark.parametrize("bad, kind, field, message", [
    (shape("cat", [[1, 1], [5, 1]]), "malformed_annotation", "shapes[1].points", "2 point(s)"),
    (shape("cat", [[1, 1], [5, "x"], [3, 4]]), "malformed_annotation", "shapes[1].points", "list of [x, y] numbers"),
    ({"label": "cat", "shape_type": "polygon"}, "malformed_annotation", "shapes[1].points", "list of [x, y] numbers"),
    (shape("cat", [[1, 1]], "rectangle"), "malformed_annotation", "shapes[1].points", "1 point(s)"),
    (shape("cat", [[1, 1], [2, 2], [3, 1]], "hexagon"), "malformed_annotation", "shapes[1].shape_type",
     "unknown shape"),
    (shape("", [[1, 1], [5, 1], [3, 4]]), "malformed_annotation", "shapes[1].label", "missing or empty label"),
    (shape("cat", [[1, 1], [5, 5]], "line"), "unsupported_shape", "shapes[1].shape_type", "'line'"),
    (shape("cat", [[1, 1], [5, 5], [9, 9]]), "zero_area_box", "shapes[1]", "without area"),
    (shape("cow", [[1, 1], [5, 1], [3, 4]]), "unknown_class", "shapes[1]", "'cow'"),
])
def test_a_bad_shape_is_counted_with_file_and_field_and_an_error_when_strict(tmp_path, bad, kind, field, message):
    file = write_labelme(tmp_path, "a", [shape("cat", [[1, 1], [9, 1], [5, 8]]), bad])
    config = Config({"CLASS_NAMES": ["cat"], "NUM_CLASSES": 2})
    dataset = load_labelme(str(tmp_path), config=config)
    assert dataset.records[0].num_boxes == 1 and dataset.report.counts == {kind: 1}
    (problem,) = dataset.report.examples[kind]
    assert (problem.file, problem.field) == (file, field) and message in problem.detail
    with pytest.raises(DataError, match="^" + re.escape(f"{file}: {field}: ")):
        load_labelme(str(tmp_path), config=config, strict=True)


def test_images_by_image_path_or_stem_and_missing_ones_counted(tmp_path):
    ann, img = tmp_path / "ann", tmp_path / "img"
    square = [shape("cat", [[1, 1], [9, 1], [9, 8]])]
    write_labelme(ann, "relative", square, image_path="..\\img\\relative.jpg", image_folder=img)  # Windows separators
    write_labelme(ann, "by_stem", square, image_path="C:/Users/someone/by_stem.png", image_ext=".png", image_folder=img)
    write_labelme(ann, "by_name", square, image_path="/elsewhere/photo_7.jpg", image_ext=None)
    write_image(img / "photo_7.jpg")
    write_labelme(ann, "gone", square, image_ext=None)
    dataset = load_labelme(str(ann), str(img))
    assert [os.path.relpath(r.path, tmp_path) for r in dataset.records] == [
        "img/photo_7.jpg", "img/by_stem.png", "img/relative.jpg"]
    assert dataset.report.counts == {"missing_image": 1}
    (problem,) = dataset.report.examples["missing_image"]
    assert problem.file.endswith("gone.json") and problem.field == "imagePath"


def test_split_class_discovery_over_the_folder_and_size_read_when_missing(tmp_path):
    write_labelme(tmp_path, "a", [shape("zebra", [[1, 1], [9, 1], [9, 8]])])
    write_labelme(tmp_path, "b", [shape("ant", [[1, 1], [9, 1], [9, 8]]), shape("nose", [[3, 3]], "point")])
    file = write_labelme(tmp_path, "c", [shape("ant", [[1, 1], [9, 1], [9, 8]])], size=(30, 50))
    data = json.loads(open(file).read())
    del data["imageHeight"]
    open(file, "w").write(json.dumps(data))
    (tmp_path / "val.txt").write_text("c\nmissing\n")
    dataset = load_labelme(str(tmp_path), split=str(tmp_path / "val.txt"))
    assert dataset.class_names == ["ant", "zebra"]  # from every file; a point's label is not a class
    record = dataset.records[0]
    assert record.image_id == 2 and (record.height, record.width) == (30, 50)
    assert dataset.report.counts == {"malformed_annotation": 1, "missing_annotation": 1}
    assert dataset.report.examples["malformed_annotation"][0].field == "imageHeight"


def test_empty_and_broken_files_are_counted(tmp_path):
    write_labelme(tmp_path, "ok", [shape("cat", [[1, 1], [9, 1], [9, 8]])])
    (tmp_path / "empty.json").write_text("")
    (tmp_path / "broken.json").write_text('{"shapes": [\n  {"label": "cat",]}')
    (tmp_path / "other.json").write_text('{"images": []}')
    dataset = load_labelme(str(tmp_path))
    assert len(dataset) == 1 and dataset.report.counts == {"empty_annotation": 1, "malformed_annotation": 2}
    details = sorted(p.detail for p in dataset.report.examples["malformed_annotation"])
    assert details[0].startswith("field 'shapes'") and details[1].startswith("line 2, column 19: malformed JSON")
