"""Which datasets train_detector loads: a val set that names the training files is not loaded
(and held) a second time."""
import json

import pytest

from detection.config import Config
from detection.data.datasets import same_files
from detection.engine import detector_training
from tests.data.helpers import write_image


def coco_config(tmp_path, **changes):
    write_image(tmp_path / "a.jpg")
    data = {"images": [{"id": 1, "file_name": "a.jpg", "height": 40, "width": 60}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 5, "bbox": [1, 2, 10, 8]}],
            "categories": [{"id": 5, "name": "cat"}]}
    (tmp_path / "train.json").write_text(json.dumps(data))
    (tmp_path / "val.json").write_text(json.dumps(data))
    values = dict(DATASET_FORMAT="coco", NUM_CLASSES=2, TRAIN_IMAGES=str(tmp_path), VAL_IMAGES=str(tmp_path),
                  TRAIN_ANNOTATIONS=str(tmp_path / "train.json"), VAL_ANNOTATIONS=str(tmp_path / "train.json"))
    values.update(changes)
    return Config(values)


@pytest.mark.parametrize("val, loads", [("train.json", ["train"]), ("val.json", ["train", "val"])])
def test_a_val_set_of_the_training_files_is_loaded_once(tmp_path, monkeypatch, val, loads):
    config = coco_config(tmp_path, VAL_ANNOTATIONS=str(tmp_path / val))
    calls, sets = [], {}
    load = detector_training.load_dataset

    def counting_load(config, subset, strict=None):
        calls.append(subset)
        return load(config, subset, strict=strict)

    def no_training(build, config, train_input, val_input, *args, **kwargs):
        sets["val"] = val_input
        return "trained"

    monkeypatch.setattr(detector_training, "load_dataset", counting_load)
    monkeypatch.setattr(detector_training, "train", no_training)
    assert detector_training.train_detector(config, str(tmp_path / "run")) == "trained"
    assert calls == loads and sets["val"] is not None


def test_same_files_needs_a_file_format_and_equal_paths(tmp_path):
    config = coco_config(tmp_path)
    assert same_files(config)
    assert not same_files(config.replace(VAL_ANNOTATIONS=str(tmp_path / "val.json")))
    assert not same_files(Config({"DATASET_FORMAT": "shapes"}))
