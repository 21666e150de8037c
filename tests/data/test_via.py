"""VIA loader. Expected masks are computed here without pycocotools: exactly (numpy slices)
for polygons with axis-parallel edges on integer coordinates, whose pixels are unambiguous;
by pixel centres (helpers.assert_mask_is_polygon) for slanted edges, where pycocotools'
5x sampling may differ within 0.2 px of the outline, and only there."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from detection.config import Config
from detection.data.masks import decode_segmentation
from detection.data.validation import DataError
from detection.data.via import load_via

from .helpers import PerfectPredictor, assert_mask_is_polygon, write_image

ONE_CLASS = Config({"CLASS_NAMES": ["balloon"], "NUM_CLASSES": 2})


def polygon(xs, ys, **attributes):
    return {"shape_attributes": {"name": "polygon", "all_points_x": xs, "all_points_y": ys},
            "region_attributes": attributes}


def rect(x, y, width, height, **attributes):
    return {"shape_attributes": {"name": "rect", "x": x, "y": y, "width": width, "height": height},
            "region_attributes": attributes}


def write_via(folder, regions_by_image, name="via_region_data.json", size=(40, 60), v1=False, project=None):
    """A VIA export (2.x: regions a list; v1: a dict {"0": ...} as matterport's balloon files)
    with an image (height, width = size) per entry; project: wrap it as a 2.x project file
    declaring these region attribute names."""
    folder.mkdir(parents=True, exist_ok=True)
    entries = {}
    for filename, regions in regions_by_image.items():
        if size is not None:
            write_image(folder / filename, *size)
        entries[f"{filename}1234"] = {
            "filename": filename, "size": 1234, "file_attributes": {},
            "regions": {str(i): r for i, r in enumerate(regions)} if v1 else regions}
    data = entries
    if project is not None:
        data = {"_via_settings": {}, "_via_img_metadata": entries,
                "_via_attributes": {"region": {a: {"type": "text"} for a in project}, "file": {}}}
    (folder / name).write_text(json.dumps(data))
    return str(folder / name)


def masks_of(record):
    return [decode_segmentation(s, record.height, record.width) for s in record.segmentations]


def test_polygon_and_rect_give_masks_equal_to_the_rasterised_shapes_and_boxes_their_extents(tmp_path):
    # an L: rows 5..14 cols 10..29, rows 15..24 cols 20..29
    l_shape = ([10, 30, 30, 20, 20, 10], [5, 5, 25, 25, 15, 15])
    slanted = ([40, 55, 50, 37], [3, 10, 30, 22])
    path = write_via(tmp_path, {"a.jpg": [polygon(*l_shape, name="cat"), rect(2, 26, 7, 9, name="dog"),
                                          polygon(*slanted, name="cat")]})
    dataset = load_via(path)
    record = dataset.records[0]
    assert dataset.class_names == ["cat", "dog"] and dataset.report.num_problems == 0
    np.testing.assert_array_equal(record.class_ids, [1, 2, 1])
    np.testing.assert_array_equal(record.boxes, [[5, 10, 25, 30], [26, 2, 35, 9], [3, 37, 30, 55]])
    l_mask, rect_mask, slanted_mask = masks_of(record)
    expected = np.zeros((40, 60), np.uint8)
    expected[5:15, 10:30] = 1
    expected[15:25, 20:30] = 1
    np.testing.assert_array_equal(l_mask, expected)
    expected = np.zeros((40, 60), np.uint8)
    expected[26:35, 2:9] = 1
    np.testing.assert_array_equal(rect_mask, expected)
    assert_mask_is_polygon(slanted_mask, [np.stack(slanted, axis=1)])


def test_balloon_style_file_regions_dict_without_attributes_is_one_class(tmp_path):
    path = write_via(tmp_path, {"b1.jpg": [polygon([1, 9, 5], [1, 1, 8]), polygon([20, 30, 25], [2, 2, 9])],
                                "b2.jpg": []}, v1=True)
    dataset = load_via(path, config=ONE_CLASS)
    assert dataset.class_names == ["balloon"] and [r.num_boxes for r in dataset.records] == [2, 0]
    np.testing.assert_array_equal(dataset.records[0].class_ids, [1, 1])
    np.testing.assert_array_equal(dataset.records[0].boxes, [[1, 1, 8, 9], [2, 20, 9, 30]])
    assert dataset.report.num_empty_images == 1 and [r.image_id for r in dataset.records] == [0, 1]
    with pytest.raises(DataError, match="no attribute naming their class: .* set CLASS_NAMES"):
        load_via(path)  # several classes possible: which one is it?


def test_the_class_attribute_rule(tmp_path):
    regions = [polygon([1, 9, 5], [1, 1, 8], type="cat", colour="red"),
               polygon([1, 9, 5], [1, 1, 8], type={"dog": True, "cat": False}, colour="red"),
               polygon([1, 9, 5], [1, 1, 8], type={"dog": True, "cat": True}),
               polygon([1, 9, 5], [1, 1, 8], colour="blue")]
    path = write_via(tmp_path, {"a.jpg": regions})
    with pytest.raises(DataError, match="regions have attributes 'colour', 'type': set VIA_CLASS_ATTRIBUTE"):
        load_via(path)
    with pytest.raises(DataError, match="VIA_CLASS_ATTRIBUTE 'kind' is not an attribute"):
        load_via(path, config=Config({"VIA_CLASS_ATTRIBUTE": "kind"}))
    dataset = load_via(path, config=Config({"VIA_CLASS_ATTRIBUTE": "type"}))
    assert dataset.class_names == ["cat", "dog"]
    np.testing.assert_array_equal(dataset.records[0].class_ids, [1, 2])  # checkbox: the one option set
    unknown = dataset.report.examples["unknown_class"]
    assert [p.field for p in unknown] == ['["a.jpg1234"].regions[2].region_attributes',
                                          '["a.jpg1234"].regions[3].region_attributes']
    assert "2 options set" in unknown[0].detail and "no class in attribute 'type'" in unknown[1].detail


def test_a_single_attribute_names_the_class_and_class_names_filter(tmp_path):
    path = write_via(tmp_path, {"a.jpg": [polygon([1, 9, 5], [1, 1, 8], name="cat"),
                                          polygon([1, 9, 5], [1, 1, 8], name="bird")]},
                     project=["name"], name="project.json")
    dataset = load_via(path, config=Config({"CLASS_NAMES": ["cat"], "NUM_CLASSES": 2}))
    assert dataset.records[0].num_boxes == 1
    (problem,) = dataset.report.examples["unknown_class"]
    assert problem.field == '_via_img_metadata["a.jpg1234"].regions[1]' and "bird" in problem.detail


@pytest.mark.parametrize("shape, field, message", [
    ({"name": "polygon", "all_points_y": [1, 2, 3]}, "shape_attributes.all_points_x", "expected a list of numbers"),
    ({"name": "polygon", "all_points_x": [1, "b", 3], "all_points_y": [1, 2, 3]}, "shape_attributes.all_points_x",
     "expected a list of numbers"),
    ({"name": "polygon", "all_points_x": [1, 2, 3], "all_points_y": [1, 2]}, "shape_attributes.all_points_x",
     "3 x values but 2 y values"),
    ({"name": "polygon", "all_points_x": [1, 5], "all_points_y": [1, 5]}, "shape_attributes.all_points_x",
     "2 point(s)"),
    ({"name": "rect", "x": 1, "y": 1, "width": "5", "height": 3}, "shape_attributes.width", "expected a number"),
    ({"name": "star"}, "shape_attributes.name", "unknown shape 'star'"),
])
def test_a_malformed_region_is_counted_with_file_and_field_and_an_error_when_strict(tmp_path, shape, field, message):
    good = polygon([1, 9, 5], [1, 1, 8])
    path = write_via(tmp_path, {"a.jpg": [good, {"shape_attributes": shape, "region_attributes": {}}]})
    dataset = load_via(path, config=ONE_CLASS)
    assert dataset.records[0].num_boxes == 1 and dataset.report.counts == {"malformed_annotation": 1}
    (problem,) = dataset.report.examples["malformed_annotation"]
    assert problem.file == path and problem.field == f'["a.jpg1234"].regions[1].{field}' and message in problem.detail
    with pytest.raises(DataError) as error:
        load_via(path, config=ONE_CLASS, strict=True)
    assert str(error.value).startswith(f'{path}: ["a.jpg1234"].regions[1].{field}: malformed')


def test_other_shapes_circle_ellipse_converted_polyline_and_point_counted(tmp_path):
    regions = [{"shape_attributes": {"name": "circle", "cx": 20, "cy": 20, "r": 10}, "region_attributes": {}},
               {"shape_attributes": {"name": "ellipse", "cx": 45, "cy": 20, "rx": 8, "ry": 4}, "region_attributes": {}},
               {"shape_attributes": {"name": "polyline", "all_points_x": [1, 5, 9], "all_points_y": [1, 9, 1]},
                "region_attributes": {}},
               {"shape_attributes": {"name": "point", "cx": 3, "cy": 3}, "region_attributes": {}}]
    dataset = load_via(write_via(tmp_path, {"a.jpg": regions}), config=ONE_CLASS)
    record = dataset.records[0]
    np.testing.assert_allclose(record.boxes, [[10, 10, 30, 30], [16, 37, 24, 53]], atol=1e-4)
    circle, ellipse = masks_of(record)
    assert abs(circle.sum() - np.pi * 100) < 0.03 * np.pi * 100  # a 64-gon: area within 3 %
    assert abs(ellipse.sum() - np.pi * 32) < 0.05 * np.pi * 32
    assert dataset.report.counts == {"unsupported_shape": 2}
    assert [p.field for p in dataset.report.examples["unsupported_shape"]] == [
        '["a.jpg1234"].regions[2].shape_attributes.name', '["a.jpg1234"].regions[3].shape_attributes.name']


def test_missing_image_duplicate_entry_boxes_outside_and_images_folder(tmp_path):
    images = tmp_path / "pictures"
    images.mkdir()
    write_image(images / "a.jpg", 40, 60)
    write_image(images / "b.png", 40, 60)
    path = write_via(tmp_path / "json", {"a.jpg": [polygon([50, 70, 60], [30, 30, 45])], "b.png": [],
                                         "gone.jpg": []}, size=None)
    data = json.loads(open(path).read())
    data["again"] = dict(data["a.jpg1234"])
    open(path, "w").write(json.dumps(data))
    dataset = load_via(path, str(images), config=ONE_CLASS)
    assert [os.path.basename(r.path) for r in dataset.records] == ["a.jpg", "b.png"]
    assert dataset.report.counts == {"missing_image": 1, "duplicate_image_id": 1, "box_outside_image": 1}
    assert dataset.report.examples["missing_image"][0].field == '["gone.jpg1234"].filename'
    np.testing.assert_array_equal(dataset.records[0].boxes, [[30, 50, 40, 60]])  # clipped to 40 x 60


def test_image_size_comes_from_the_image_with_its_exif_orientation(tmp_path):
    image = Image.fromarray(np.zeros((20, 40, 3), np.uint8))
    exif = image.getexif()
    exif[0x0112] = 6  # displayed turned: 40 rows x 20 columns
    image.save(tmp_path / "turned.jpg", exif=exif.tobytes())
    path = write_via(tmp_path, {"turned.jpg": [polygon([1, 9, 5], [1, 1, 30])]}, size=None)
    record = load_via(path, config=ONE_CLASS).records[0]
    assert (record.height, record.width) == (40, 20) and record.boxes.tolist() == [[1, 1, 30, 9]]


@pytest.mark.parametrize("content, message", [
    ({"project": {}, "file": {}, "metadata": {}, "attribute": {}}, "a VIA 3 project file"),
    ({"images": [], "annotations": []}, "not a VIA file"),
    ([1, 2], "expected a VIA JSON object, got list"),
])
def test_a_file_that_is_not_via_2_is_a_one_line_error(tmp_path, content, message):
    path = tmp_path / "x.json"
    path.write_text(json.dumps(content))
    with pytest.raises(DataError, match=message) as error:
        load_via(str(path))
    assert "\n" not in str(error.value)


def test_stat_gt_runs_on_a_via_file(tmp_path):
    path = write_via(tmp_path / "balloon", {"b1.jpg": [polygon([1, 29, 15], [1, 1, 28])],
                                            "b2.jpg": [rect(5, 5, 30, 20), polygon([1, 2, 3], [1, 2])]},
                     v1=True, size=(64, 64))
    config = tmp_path / "c.yaml"
    config.write_text("CLASS_NAMES: [balloon]\nNUM_CLASSES: 2\nIMAGE_MIN_DIM: 64\nIMAGE_MAX_DIM: 64\n")
    out = tmp_path / "stat.json"
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    done = subprocess.run([sys.executable, "tools/stat_gt.py", "--config", str(config), "--format", "via",
                           "--annotations", path, "--json", str(out)], cwd=repo, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(out.read_text())
    assert summary["data"]["problems"] == {"malformed_annotation": 1}
    assert "2 images, 2 boxes" in summary["data"]["summary"]


def test_the_pipeline_gets_the_polygons_masks(tmp_path):
    from detection.data.example import load_example
    from detection.data.masks import mini_masks

    from .helpers import small_config

    l_shape = ([10, 30, 30, 20, 20, 10], [5, 5, 25, 25, 15, 15])
    dataset = load_via(write_via(tmp_path, {"a.png": [polygon(*l_shape), rect(40, 30, 20, 30)]}, size=(64, 64)),
                       config=ONE_CLASS)
    example = load_example(dataset.records[0], small_config(), dataset.report)
    full = np.zeros((2, 64, 64), np.uint8)
    full[0, 5:15, 10:30] = full[0, 15:25, 20:30] = 1
    full[1, 30:60, 40:60] = 1
    boxes = np.array([[5, 10, 25, 30], [30, 40, 60, 60]], np.float32)
    np.testing.assert_array_equal(example["gt_boxes"][:2], boxes)
    np.testing.assert_array_equal(example["gt_masks"][:2], mini_masks(full, boxes, (8, 8)))
    assert example["gt_masks"][1].all() and not example["gt_masks"][0].all()


def test_evaluation_against_the_polygons_gives_ap_1_for_perfect_detections(tmp_path):
    from detection.evaluation.detector_eval import evaluate_predictor

    dataset = load_via(write_via(tmp_path, {"a.jpg": [polygon([10, 30, 30, 20, 20, 10], [5, 5, 25, 25, 15, 15],
                                                              name="cat"),
                                                      polygon([40, 55, 50, 37], [3, 10, 30, 22], name="dog")],
                                            "b.jpg": [rect(2, 26, 7, 9, name="dog")]}))
    metrics, _ = evaluate_predictor(PerfectPredictor(), dataset, log=None)
    assert metrics["bbox"]["AP"] == pytest.approx(1.0) and metrics["segm"]["AP"] == pytest.approx(1.0)
