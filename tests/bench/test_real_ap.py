"""bench/real_ap.py: its plumbing on raccoon with a step limit, a tiny model and a few images,
its data-root rewriting and per-dataset overrides, a dataset of the user's own, and missing
configs or data in one line."""
import json
import math
import xml.etree.ElementTree as ET

import real_ap

from detection.config import Config
from tests.conftest import REPO, shared_dataset

# A model small enough that 3 steps and 4 test images take seconds; the values a real run
# uses stay in configs/raccoon.yaml.
TINY = ["IMAGE_MIN_DIM=128", "IMAGE_MAX_DIM=128", "TINY_BACKBONE_WIDTH=8", "TOP_DOWN_PYRAMID_SIZE=16",
        "FPN_CLASSIF_FC_LAYERS_SIZE=32", "IMAGES_PER_GPU=2", "RPN_ANCHOR_SCALES=[16,32,48,64,96]",
        "PRE_NMS_LIMIT=300", "POST_NMS_ROIS_TRAINING=64", "POST_NMS_ROIS_INFERENCE=64",
        "TRAIN_ROIS_PER_IMAGE=16", "RPN_TRAIN_ANCHORS_PER_IMAGE=64", "LR_WARMUP_STEPS=2", "STEPS_PER_EPOCH=2"]


def boxes_in(annotations, stems):
    """Objects in the VOC files of ``stems``, counted without the project's loader."""
    return sum(len(ET.parse(annotations / f"{stem}.xml").getroot().findall("object")) for stem in stems)


def test_a_step_limited_run_on_raccoon_writes_its_metrics_and_counts(tmp_path, capsys):
    data = shared_dataset("raccoon").parent
    out = tmp_path / "real_ap.json"
    status = real_ap.main(["--datasets", "raccoon", "--data", str(data), "--minutes", "30", "--max-steps", "3",
                           "--train-images", "8", "--test-images", "4", "--quiet", "--json", str(out),
                           "--set", *TINY, "raccoon:SEED=7", "bccd:SEED=1"])
    assert status == 0
    output = json.loads(out.read_text())
    (result,) = output["results"]
    assert result["dataset"] == "raccoon"
    # The step limit, not the 30-minute budget, ended training.
    assert result["steps"] == 3 and result["images_seen"] == 3 * 2
    assert result["train_images"] == 8 and result["test_images"] == 4
    test_stems = (data / "raccoon" / "splits" / "test.txt").read_text().split()[:4]
    assert result["test_boxes"] == boxes_in(data / "raccoon" / "annotations", test_stems)
    assert result["test_split"].endswith("splits/test.txt") and result["train_split"].endswith("splits/train.txt")
    for key in ("bbox_AP", "bbox_AP50", "bbox_AP75"):
        assert math.isfinite(result[key]) and 0.0 <= result[key] <= 1.0, (key, result[key])
    assert result["score_threshold"] == 0.05  # EVAL_MIN_CONFIDENCE, not DETECTION_MIN_CONFIDENCE
    assert result["config"]["IMAGE_MAX_DIM"] == 128 and result["config"]["SEED"] == 7
    assert "bccd:SEED=1" not in result["overrides"]
    assert "raccoon" in capsys.readouterr().out  # the printed table


def test_data_paths_of_the_configs_move_to_the_data_root():
    config = Config.from_yaml(str(REPO / "configs" / "bccd.yaml"),
                              overrides=["VAL_SPLIT=/elsewhere/test.txt"])
    moved = real_ap.with_data_root(config, "/data/root")
    assert moved.TRAIN_SPLIT == "/data/root/bccd/ImageSets/Main/trainval.txt"
    assert moved.VAL_ANNOTATIONS == "/data/root/bccd/Annotations"
    assert moved.VAL_SPLIT == "/elsewhere/test.txt"  # an absolute path is the user's own


def test_overrides_go_to_every_dataset_or_to_the_one_named():
    items = ["LEARNING_RATE=0.01", "bccd:IMAGE_MAX_DIM=512", "raccoon:SEED=3"]
    assert real_ap.overrides_for("bccd", items) == ["LEARNING_RATE=0.01", "IMAGE_MAX_DIM=512"]
    assert real_ap.overrides_for("raccoon", items) == ["LEARNING_RATE=0.01", "SEED=3"]


def test_a_dataset_of_ones_own_runs_from_its_config_folder(tmp_path):
    # Another name, absolute paths, train and test from two folders' split files: what a user
    # writes for their own data (the raccoon files stand in for it).
    data = shared_dataset("raccoon")
    configs = tmp_path / "configs"
    configs.mkdir()
    (configs / "critters.yaml").write_text(
        f"_BASE_: {REPO / 'configs' / 'voc_small_scratch.yaml'}\nNAME: critters\nNUM_CLASSES: 2\n"
        + "".join(f"{split}_IMAGES: {data / 'images'}\n{split}_ANNOTATIONS: {data / 'annotations'}\n"
                  for split in ("TRAIN", "VAL"))
        + f"TRAIN_SPLIT: {data / 'splits' / 'train.txt'}\nVAL_SPLIT: {data / 'splits' / 'test.txt'}\n")
    out = tmp_path / "critters.json"
    status = real_ap.main(["--datasets", "critters", "--config-dir", str(configs), "--data", str(tmp_path / "unused"),
                           "--max-steps", "2", "--train-images", "4", "--test-images", "3", "--quiet",
                           "--json", str(out), "--set", *TINY, "critters:IMAGES_PER_GPU=1", "critters:SEED=5",
                           "raccoon:SEED=9"])
    assert status == 0
    (result,) = json.loads(out.read_text())["results"]
    assert result["dataset"] == "critters" and result["steps"] == 2 and result["test_images"] == 3
    assert result["per_category_AP"].keys() == {"raccoon"}
    assert result["config"]["SEED"] == 5 and result["overrides"][-1] == "SEED=5"


def test_a_missing_data_folder_is_one_line(tmp_path, capsys):
    assert real_ap.main(["--datasets", "bccd", "--data", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "TRAIN_IMAGES" in err and "nowhere/bccd/JPEGImages: not found" in err


def test_a_dataset_without_a_config_is_one_line(tmp_path, capsys):
    assert real_ap.main(["--datasets", "pets", "--config-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pets.yaml: no config for dataset 'pets'" in err
