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
