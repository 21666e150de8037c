import argparse

import pytest
from conftest import shared_dataset

from detection.config import Config
from detection.data.cli import add_dataset_flags, config_with_dataset_flags
from detection.data.datasets import load_dataset
from detection.data.validation import DataError


def parse(*argv):
    return add_dataset_flags(argparse.ArgumentParser()).parse_args(list(argv))


def test_flags_override_the_keys_of_the_subset_only():
    args = parse("--format", "voc", "--images", "imgs", "--annotations", "xml", "--split", "s.txt", "--strict")
    config = config_with_dataset_flags(Config({"VAL_IMAGES": "old"}), args, "train")
    assert ((config.DATASET_FORMAT, config.TRAIN_IMAGES, config.TRAIN_ANNOTATIONS, config.TRAIN_SPLIT)
            == ("voc", "imgs", "xml", "s.txt"))
    assert config.VAL_IMAGES == "old" and config.STRICT_DATA is True
    val = config_with_dataset_flags(Config(), args, "val")
    assert (val.VAL_IMAGES, val.TRAIN_IMAGES) == ("imgs", None)


def test_another_datasets_folders_without_split_use_all_its_images():
    config = Config({"TRAIN_IMAGES": "voc/JPEGImages", "TRAIN_SPLIT": "voc/train.txt", "VAL_SPLIT": "voc/val.txt"})
    assert config_with_dataset_flags(config, parse("--images", "mine"), "train").TRAIN_SPLIT is None
    assert config_with_dataset_flags(config, parse("--annotations", "xml"), "val").VAL_SPLIT is None
    assert config_with_dataset_flags(config, parse("--images", "mine"), "val").TRAIN_SPLIT == "voc/train.txt"
    assert config_with_dataset_flags(config, parse("--strict"), "train").TRAIN_SPLIT == "voc/train.txt"
    kept = config_with_dataset_flags(config, parse("--images", "mine", "--split", "s.txt"), "train")
    assert kept.TRAIN_SPLIT == "s.txt"


def test_absent_flags_leave_the_config_alone():
    config = Config({"TRAIN_IMAGES": "x", "STRICT_DATA": False})
    assert config_with_dataset_flags(config, parse(), "train") == config
    with pytest.raises(SystemExit):
        parse("--format", "yolo")


def test_load_dataset_dispatches_on_format_and_subset():
    shapes = load_dataset(Config({"SHAPES_TRAIN_COUNT": 3, "SHAPES_VAL_COUNT": 2}), "val")
    assert len(shapes) == 2 and shapes.name == "shapes/val"
    with pytest.raises(DataError, match="VAL_ANNOTATIONS is not set"):
        load_dataset(Config({"DATASET_FORMAT": "coco"}), "val")
    root = shared_dataset("bccd")
    args = parse("--format", "voc", "--annotations", str(root), "--split", str(root / "ImageSets/Main/val.txt"))
    dataset = load_dataset(config_with_dataset_flags(Config(), args, "val"), "val")
    assert len(dataset) == 87 and dataset.report.counts == {"zero_area_box": 1}


def test_train_tool_validates_on_the_val_flags_or_says_it_uses_the_training_data():
    from tests.tools import load_tool

    train = load_tool("train")
    base = ["--config", "configs/voc_r50_fpn.yaml", "--format", "voc", "--images", "imgs", "--annotations", "xml"]
    val, note = train.validation_flags(train.parse_args(base + ["--split", "train.txt", "--val-split", "val.txt"]))
    assert (val.images, val.annotations, val.split, note) == ("imgs", "xml", "val.txt", None)
    val, note = train.validation_flags(train.parse_args(base + ["--val-images", "vimgs", "--val-annotations", "vxml"]))
    assert (val.images, val.annotations, val.split, note) == ("vimgs", "vxml", None, None)
    val, note = train.validation_flags(train.parse_args(base + ["--split", "train.txt"]))
    assert (val.images, val.split) == ("imgs", "train.txt") and "training data" in note
    val, note = train.validation_flags(train.parse_args(["--config", "c.yaml"]))
    assert (val.images, val.annotations, val.split, note) == (None, None, None, None)
