import numpy as np
import pytest
from conftest import shared_dataset

from detection.config import Config
from detection.data.validation import DataError
from detection.data.voc import load_voc

from .helpers import voc_xml, write_image


def write_voc(folder, stem, objects, image_ext=".jpg", image_folder=None, **size):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{stem}.xml").write_text(voc_xml(objects, **size))
    if image_ext:
        images = image_folder or folder
        images.mkdir(parents=True, exist_ok=True)
        write_image(images / f"{stem}{image_ext}", size.get("height", 40), size.get("width", 60))


def test_one_based_inclusive_coordinates_become_pixel_edges(tmp_path):
    # xmin..xmax = 1..60 covers every column of a 60 px wide image: x1..x2 = 0..60.
    write_voc(tmp_path, "a", [("cat", 1, 1, 60, 40), ("dog", 11, 21, 20, 30, 1)])
    dataset = load_voc(str(tmp_path))
    record = dataset.records[0]
    np.testing.assert_array_equal(record.boxes, [[0, 0, 40, 60], [20, 10, 30, 20]])
    assert dataset.class_names == ["cat", "dog"] and dataset.category_ids == [1, 2]
    np.testing.assert_array_equal(record.class_ids, [1, 2])
    np.testing.assert_array_equal(record.difficult, [False, True])
    assert (record.height, record.width) == (40, 60) and dataset.report.num_problems == 0


def test_free_layout_finds_images_by_stem_any_extension_and_case_and_reads_the_split(tmp_path):
    xml, img = tmp_path / "xml", tmp_path / "img"
    write_voc(xml, "b", [("cat", 1, 1, 5, 5)], image_ext=".PNG", image_folder=img)
    write_voc(xml, "a", [("cat", 1, 1, 5, 5)], image_ext=".jpeg", image_folder=img)
    write_voc(xml, "c", [("cat", 1, 1, 5, 5)], image_ext=".jpg", image_folder=img)
    (tmp_path / "split.txt").write_text("c\nb\n\n")
    dataset = load_voc(str(xml), str(img), str(tmp_path / "split.txt"))
    assert [r.path.rsplit("/", 1)[1] for r in dataset.records] == ["c.jpg", "b.PNG"]
    assert [r.image_id for r in dataset.records] == [2, 1]  # index among all stems, sorted


def test_standard_layout_from_the_root(tmp_path):
    write_voc(tmp_path / "Annotations", "x", [("cat", 1, 1, 5, 5)], image_folder=tmp_path / "JPEGImages")
    dataset = load_voc(str(tmp_path))
    assert len(dataset) == 1 and "JPEGImages" in dataset.records[0].path


def test_bad_boxes_are_clipped_dropped_and_counted(tmp_path):
    write_voc(tmp_path, "a", [
        ("cat", 1, 1, 10, 10),      # fine
        ("cat", 50, 30, 80, 50),    # beyond 60x40: clipped
        ("cat", 5, 5, 5, 9),        # xmin == xmax: zero area
        ("cat", "nan", 1, 4, 4),    # NaN: dropped
        ("cat", -5, 1, 4, 4),       # negative: clipped
        ("bird", 1, 1, 4, 4),       # unknown class
        ("cat", "abc", 1, 4, 4),    # non-numeric: malformed field
    ])
    config = Config({"CLASS_NAMES": ["cat"], "NUM_CLASSES": 2})
    dataset = load_voc(str(tmp_path), config=config)
    counts = dataset.report.counts
    assert counts == {"box_outside_image": 1, "zero_area_box": 1, "invalid_coordinates": 2,
                      "unknown_class": 1, "malformed_annotation": 1}
    np.testing.assert_array_equal(dataset.records[0].boxes, [[0, 0, 10, 10], [29, 49, 40, 60], [0, 0, 4, 4]])
    example = dataset.report.examples["unknown_class"][0]
    assert example.file.endswith("a.xml") and example.field == "object[5].name" and "bird" in example.detail


def test_missing_image_empty_and_malformed_files_are_skipped_and_counted(tmp_path):
    write_voc(tmp_path, "ok", [("cat", 1, 1, 5, 5)])
    write_voc(tmp_path, "noimage", [("cat", 1, 1, 5, 5)], image_ext=None)
    (tmp_path / "empty.xml").write_text("  \n")
    (tmp_path / "broken.xml").write_text("<annotation>\n  <object><name>cat</name>\n</annotation>")
    dataset = load_voc(str(tmp_path))
    assert [r.path.rsplit("/", 1)[1] for r in dataset.records] == ["ok.jpg"]
    counts = dataset.report.counts
    assert counts["missing_image"] == 1 and counts["empty_annotation"] == 1 and counts["malformed_annotation"] == 1
    malformed = dataset.report.examples["malformed_annotation"][0]
    assert malformed.file.endswith("broken.xml") and "line 3, column 3" in malformed.detail


def test_split_naming_an_unknown_stem_is_counted(tmp_path):
    write_voc(tmp_path, "a", [("cat", 1, 1, 5, 5)])
    (tmp_path / "split.txt").write_text("a\nghost\n")
    dataset = load_voc(str(tmp_path), split=str(tmp_path / "split.txt"))
    assert len(dataset) == 1 and dataset.report.counts["missing_annotation"] == 1


def test_strict_turns_the_first_problem_into_an_error_naming_file_and_field(tmp_path):
    write_voc(tmp_path, "a", [("cat", 1, 1, 5, 5), ("cat", 7, 7, 7, 9)])
    with pytest.raises(DataError, match=r"a\.xml: object\[1\]\.bndbox: zero-area box"):
        load_voc(str(tmp_path), strict=True)


def test_images_without_boxes_are_kept_or_dropped_and_counted(tmp_path):
    write_voc(tmp_path, "a", [("cat", 1, 1, 5, 5)])
    write_voc(tmp_path, "empty", [])
    kept = load_voc(str(tmp_path))
    assert len(kept) == 2 and kept.report.num_empty_images == 1
    assert "1 images without boxes" in kept.report.summary(file=None)
    dropped = load_voc(str(tmp_path), config=Config({"KEEP_EMPTY_IMAGES": False}))
    assert len(dropped) == 1 and dropped.report.counts["empty_image_dropped"] == 1


def test_more_boxes_than_max_gt_instances_are_kept_and_counted_or_an_error_when_strict(tmp_path):
    write_voc(tmp_path, "a", [("cat", 1, 1, 5 + i, 5) for i in range(5)])
    config = Config({"MAX_GT_INSTANCES": 3})
    dataset = load_voc(str(tmp_path), config=config)
    assert dataset.records[0].num_boxes == 5 and dataset.report.counts["too_many_boxes"] == 1
    with pytest.raises(DataError, match="MAX_GT_INSTANCES 3"):
        load_voc(str(tmp_path), config=config, strict=True)


def test_raccoon_free_layout():
    root = shared_dataset("raccoon")
    everything = load_voc(str(root / "annotations"), str(root / "images"))
    assert len(everything) == 200 and everything.report.num_boxes == 217
    assert everything.class_names == ["raccoon"] and everything.report.num_problems == 0
    train = load_voc(str(root / "annotations"), str(root / "images"), str(root / "splits" / "train.txt"))
    test = load_voc(str(root / "annotations"), str(root / "images"), str(root / "splits" / "test.txt"))
    assert (len(train), len(test)) == (160, 40)
    # raccoon-1.xml: xmin 81, ymin 88, xmax 522, ymax 408 in a 650 x 417 image.
    first = next(r for r in everything.records if r.path.endswith("/raccoon-1.jpg"))
    np.testing.assert_array_equal(first.boxes, [[87, 80, 408, 522]])
    assert (first.height, first.width) == (417, 650)


def test_bccd_standard_layout_reports_its_two_zero_area_boxes():
    dataset = load_voc(str(shared_dataset("bccd")))
    assert len(dataset) == 364 and dataset.class_names == ["Platelets", "RBC", "WBC"]
    assert dataset.report.num_boxes == 4888 - 2 and dataset.report.counts == {"zero_area_box": 2}
    files = sorted(p.file.rsplit("/", 1)[1] for p in dataset.report.examples["zero_area_box"])
    assert files == ["BloodImage_00338.xml", "BloodImage_00343.xml"]
