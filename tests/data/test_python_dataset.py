"""DATASET_FORMAT python:MODULE:CLASS: CustomDataset subclasses (tests/data/custom_datasets.py)."""
import argparse
import csv
import json
import pathlib
import re
import sys

import numpy as np
import pytest

from detection.config import Config, ConfigError
from detection.data.cli import add_dataset_flags
from detection.data.custom_dataset import CustomDataset
from detection.data.datasets import load_dataset
from detection.data.example import load_example
from detection.data.masks import decode_segmentation
from detection.data.python_format import load_python_dataset
from detection.data.validation import DataError
from tests.tools import load_tool

from .helpers import PerfectPredictor, small_config, write_image

HERE = pathlib.Path(__file__).resolve().parent
MODULE = HERE / "custom_datasets.py"


def spec(name):
    return f"python:{MODULE}:{name}"


def test_custom_dataset_keeps_matterports_bookkeeping():
    dataset = CustomDataset()
    dataset.add_class("coco", 18, "dog")
    dataset.add_class("coco", 18, "dog again")  # the same (source, id): ignored, as matterport does
    dataset.add_class("voc", 3, "cat")
    dataset.add_image("coco", 1000, "a.jpg", height=4, width=5)
    dataset.prepare()
    assert dataset.class_names == ["BG", "dog", "cat"] and dataset.num_classes == 3
    assert dataset.map_source_class_id("voc.3") == 2 and dataset.image_ids == [0] and dataset.num_images == 1
    assert dataset.image_info == [{"id": 1000, "source": "coco", "path": "a.jpg", "height": 4, "width": 5}]
    assert dataset.image_reference(0) == "a.jpg"
    with pytest.raises(ValueError, match="cannot contain a dot"):
        dataset.add_class("a.b", 1, "x")


def test_records_boxes_are_the_masks_extents_and_masks_are_kept():
    config = Config({"DATASET_FORMAT": spec("Squares"), "NUM_CLASSES": 3})
    dataset = load_dataset(config, "val")
    assert dataset.name == "Squares/val" and dataset.class_names == ["light", "dark"]
    assert dataset.category_ids == [1, 2] and len(dataset) == 4 and dataset.report.num_problems == 0
    record = dataset.records[1]
    assert record.image_id == 1 and record.path is None and (record.height, record.width) == (64, 64)
    np.testing.assert_array_equal(record.boxes, [[30, 10, 46, 26], [4, 36, 28, 60]])  # pixel edges
    np.testing.assert_array_equal(record.class_ids, [2, 1])
    expected = np.zeros((64, 64), np.uint8)
    expected[30:46, 10:26] = 1
    np.testing.assert_array_equal(decode_segmentation(record.segmentations[0], 64, 64), expected)
    assert str(record.image_loader) == "Squares image 1 (val_1)"


def test_the_pipeline_reads_the_image_through_load_image():
    dataset = load_python_dataset(spec("Squares"), "train", small_config(NUM_CLASSES=3))
    example = load_example(dataset.records[0], small_config(NUM_CLASSES=3), dataset.report)
    assert example["image"][10, 10].tolist() == [230, 230, 230] and example["image"][40, 40].tolist() == [100] * 3
    np.testing.assert_array_equal(example["gt_boxes"][0], [8, 8, 28, 28])
    assert example["gt_masks"][0].all()


def test_empty_masks_and_unknown_class_ids_are_counted_naming_class_image_and_field():
    dataset = load_python_dataset(spec("Flawed"), "train", Config({"NUM_CLASSES": 3}))
    assert dataset.report.counts == {"empty_mask": 1, "unknown_class": 2}
    np.testing.assert_array_equal(dataset.records[0].class_ids, [1])
    (empty,) = dataset.report.examples["empty_mask"]
    assert (empty.file, empty.field) == ("Flawed image 0 (train_0)", "masks[..., 1]")
    unknown = dataset.report.examples["unknown_class"]
    assert [p.field for p in unknown] == ["load_mask class_ids[2] (masks[..., 2])",
                                          "load_mask class_ids[3] (masks[..., 3])"]
    assert "7 is not a class id 1..2" in unknown[0].detail
    with pytest.raises(DataError, match=re.escape("Flawed image 0 (train_0): load_mask class_ids[2]")):
        load_python_dataset(spec("Flawed"), "train", Config({"NUM_CLASSES": 3}), strict=True)


def test_a_box_only_dataset_with_files_keeps_its_class_ids_and_counts_problems(tmp_path):
    write_image(tmp_path / "a.png", 40, 60)
    config = Config({"NUM_CLASSES": 3, "TRAIN_IMAGES": str(tmp_path)})
    dataset = load_python_dataset(spec("BoxesOnly"), "train", config)
    assert dataset.category_ids == [10, 20] and len(dataset) == 1
    record = dataset.records[0]
    assert record.path == f"{tmp_path}/a.png" and record.image_loader is None and record.segmentations is None
    np.testing.assert_array_equal(record.boxes, [[1, 2, 10, 20], [30, 50, 40, 60]])  # clipped to 40 x 60
    assert dataset.report.counts == {"missing_image": 1, "box_outside_image": 1}
    assert dataset.report.examples["box_outside_image"][0].field == "boxes[1]"


def test_matterports_empty_answer_gives_images_without_boxes_of_the_size_add_image_gave():
    dataset = load_python_dataset(spec("NoInstances"), "train", Config({"NUM_CLASSES": 3}))
    assert len(dataset) == 4 and dataset.report.num_empty_images == 4 and dataset.report.num_problems == 0
    assert {(r.height, r.width, r.num_boxes) for r in dataset.records} == {(64, 64, 0)}


@pytest.mark.parametrize("name, message", [
    ("Broken", r"^Broken\.load_mask\(image 0: train_0\): KeyError: 'polygons' \(custom_datasets\.py, line \d+\)$"),
    ("BadImage", r"^BadImage\.load_image\(image 0: train_0\): returned float64 of shape \[64, 64, 3\]; "
                 r"expected \[H, W, 3\] uint8 RGB$"),
    ("WrongMaskShape", r"^WrongMaskShape\.load_mask\(image 0: train_0\): returned masks of shape \[64, 64\] "),
    ("MisSized", r"^MisSized image 0 \(train_0\): load_image gives 64x64 but the annotation \(masks or "
                 r"height/width\) says 64x48$"),
    ("NotADataset", r"NotADataset is not a subclass of detection\.data\.custom_dataset\.CustomDataset$"),
    ("Missing", r"custom_datasets\.py has no class Missing \(CustomDataset subclasses there: Squares, Flawed, "),
])
def test_errors_in_user_code_are_one_line_naming_class_and_image(name, message):
    with pytest.raises(DataError) as error:
        load_python_dataset(spec(name), "train", Config({"NUM_CLASSES": 3}))
    assert re.search(message, str(error.value)) and "\n" not in str(error.value)


def test_a_dotted_module_from_the_current_folder_and_import_errors(tmp_path, monkeypatch):
    (tmp_path / "my_cells.py").write_text(
        "from detection.data.custom_dataset import CustomDataset\n"
        "class Cells(CustomDataset):\n"
        "    def load_subset(self, subset, config):\n"
        "        self.add_class('c', 1, 'cell')\n")
    (tmp_path / "typo.py").write_text("import numpy as np\nx = np.zeroes(3)\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    dataset = load_python_dataset("python:my_cells:Cells", "train", Config({"NUM_CLASSES": 2}))
    assert dataset.class_names == ["cell"] and len(dataset) == 0
    with pytest.raises(DataError, match=r"cannot import nowhere: No module named 'nowhere' \(run from the folder"):
        load_python_dataset("python:nowhere:Cells", "train", Config())
    with pytest.raises(DataError, match=r"importing typo failed: AttributeError: .*zeroes.* \(typo\.py, line 2\)$"):
        load_python_dataset("python:typo:Cells", "train", Config())
    with pytest.raises(DataError, match=r"differ from CLASS_NAMES \['dog'\]"):
        load_python_dataset("python:my_cells:Cells", "train", Config({"NUM_CLASSES": 2, "CLASS_NAMES": ["dog"]}))


def test_format_values_are_checked_in_the_config_and_on_the_command_line(capsys):
    assert Config({"DATASET_FORMAT": "python:C:\\data\\my.py:My"}).DATASET_FORMAT == "python:C:\\data\\my.py:My"
    for bad in ("python:my_module", "python:my_module:not-a-class", "yolo"):
        with pytest.raises(ConfigError, match="'python:MODULE:CLASS'"):
            Config({"DATASET_FORMAT": bad})
    parser = add_dataset_flags(argparse.ArgumentParser())
    assert parser.parse_args(["--format", "labelme"]).format == "labelme"
    with pytest.raises(SystemExit):
        parser.parse_args(["--format", "yolo"])
    (line,) = capsys.readouterr().err.strip().splitlines()[-1:]
    assert line.endswith("argument --format: 'yolo': expected one of 'shapes', 'coco', 'voc', 'via', 'labelme', "
                         "or 'python:MODULE:CLASS'")


TINY = """BACKBONE: resnet_tiny
TINY_BACKBONE_WIDTH: 8
TOP_DOWN_PYRAMID_SIZE: 16
FPN_CLASSIF_FC_LAYERS_SIZE: 32
NUM_CLASSES: 3
IMAGE_MIN_DIM: 64
IMAGE_MAX_DIM: 64
IMAGES_PER_GPU: 1
RPN_ANCHOR_SCALES: [8, 16, 32, 64, 128]
RPN_TRAIN_ANCHORS_PER_IMAGE: 64
PRE_NMS_LIMIT: 200
POST_NMS_ROIS_TRAINING: 64
POST_NMS_ROIS_INFERENCE: 32
TRAIN_ROIS_PER_IMAGE: 16
MAX_GT_INSTANCES: 4
MINI_MASK_SHAPE: [16, 16]
VALIDATION_STEPS: 0
"""


def run_tool(capsys, name, *argv):
    """tools/NAME.py's main(argv) in this process (no second TensorFlow start-up): its stdout."""
    status = load_tool(name).main([str(a) for a in argv])
    captured = capsys.readouterr()
    assert status == 0, captured.out[-2000:] + captured.err[-3000:]
    return captured.out


def test_train_py_trains_two_steps_on_a_python_dataset_and_eval_coco_evaluates_the_run(tmp_path, capsys):
    (tmp_path / "tiny.yaml").write_text(TINY)
    run = tmp_path / "run"
    out = run_tool(capsys, "train", "--config", tmp_path / "tiny.yaml", "--format", spec("Squares"),
                   "--steps-per-epoch", "2", "--epochs", "1", "--output", run)
    assert "Dataset Squares/train: 4 images, 5 boxes" in out
    (row,) = list(csv.DictReader(open(run / "log.csv")))
    assert np.isfinite(float(row["loss"])) and (run / "final.weights.h5").exists()
    saved = Config.from_yaml(run / "config.yaml")
    assert saved.DATASET_FORMAT == spec("Squares") and saved.CLASS_NAMES == ["light", "dark"]
    # The run's config names the dataset: eval_coco's model mode finds it there.
    run_tool(capsys, "eval_coco", "--config", run / "config.yaml", "--weights", run / "final.weights.h5",
             "--set", "DETECTION_MIN_CONFIDENCE=0", "--json", tmp_path / "coco.json")  # detections, so masks
    assert set(json.loads((tmp_path / "coco.json").read_text())) == {"bbox", "segm"}


def test_evaluation_of_a_python_dataset_uses_its_category_ids_and_mask_gt():
    from detection.evaluation.detector_eval import evaluate_predictor

    dataset = load_python_dataset(spec("SquaresWithSourceIds"), "val", Config({"NUM_CLASSES": 3}))
    assert dataset.category_ids == [18, 44] and [r.image_id for r in dataset.records] == [0, 1, 2, 3]
    metrics, results = evaluate_predictor(PerfectPredictor(), dataset, log=None)
    assert metrics["bbox"]["AP"] == pytest.approx(1.0) and metrics["segm"]["AP"] == pytest.approx(1.0)
    assert sorted({r["category_id"] for r in results}) == [18, 44]
