"""The whole path on real COCO images (../shared/data/coco_tiny) with category ids that are
nothing like 1..K: train, infer, evaluate both ways, export. Every output must carry the
dataset's own ids, and COCO AP of infer's results file must equal model-mode evaluation."""
import json

import numpy as np
import pytest

from tests.conftest import shared_dataset
from tests.model_fixtures import TINY_128_YAML
from tests.tools import load_tool as tool

TINY = """
NAME: coco_tiny_test
DATASET_FORMAT: coco
NUM_CLASSES: 81
IMAGES_PER_GPU: 1
MINI_MASK_SHAPE: [14, 14]
VALIDATION_STEPS: 0
""" + TINY_128_YAML


def remap(source, target, images=None):
    """The COCO file with every category id c replaced by 1000 + 7 c (distinct, far from 1..K);
    images: keep only that many of its images (the first), with their annotations."""
    data = json.loads(source.read_text())
    if images is not None:
        data["images"] = data["images"][:images]
        kept = {i["id"] for i in data["images"]}
        data["annotations"] = [a for a in data["annotations"] if a["image_id"] in kept]
    for category in data["categories"]:
        category["id"] = 1000 + 7 * category["id"]
    for annotation in data["annotations"]:
        annotation["category_id"] = 1000 + 7 * annotation["category_id"]
    target.write_text(json.dumps(data))
    return {c["id"] for c in data["categories"]}, {i["id"] for i in data["images"]}


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A 2-step run on coco_tiny/train with remapped ids: (run folder, val annotations, ids)."""
    data = shared_dataset("coco_tiny")
    tmp = tmp_path_factory.mktemp("coco_tiny_run")
    ids, _ = remap(data / "annotations" / "instances_train2017.json", tmp / "train.json")
    # 20 of the 80 val images: infer and evaluation paste and compare every detection's mask.
    val_ids, val_images = remap(data / "annotations" / "instances_val2017.json", tmp / "val.json", images=20)
    assert ids == val_ids
    (tmp / "tiny.yaml").write_text(TINY)
    status = tool("train").main(["--config", str(tmp / "tiny.yaml"), "--format", "coco", "--annotations",
                                 str(tmp / "train.json"), "--images", str(data / "train2017"), "--steps-per-epoch",
                                 "2", "--epochs", "1", "--output", str(tmp / "run")])
    assert status == 0
    return tmp / "run", tmp / "val.json", data / "val2017", ids, val_images


@pytest.fixture(scope="module")
def inferred(trained_run, tmp_path_factory):
    """tools/infer.py of the run on coco_tiny/val at score threshold 0: its detections.json."""
    run, val_json, val_images_dir, _, _ = trained_run
    out = tmp_path_factory.mktemp("coco_tiny_infer")
    status = tool("infer").main(["--config", str(run / "config.yaml"), "--weights", str(run / "final.weights.h5"),
                                 "--output", str(out), "--format", "coco", "--annotations", str(val_json),
                                 "--images", str(val_images_dir), "--score-threshold", "0", "--no-pictures"])
    assert status == 0
    return out / "detections.json"


def test_the_run_records_the_dataset_ids_and_infer_writes_them(trained_run, inferred):
    import yaml

    run, val_json, _, ids, val_images = trained_run
    saved = yaml.safe_load((run / "config.yaml").read_text())
    categories = json.loads(val_json.read_text())["categories"]
    assert saved["CATEGORY_IDS"] == sorted(ids) and saved["CLASS_NAMES"][0] == categories[0]["name"]
    results = json.loads(inferred.read_text())
    assert len(results) > 100  # a 2-step model detects plenty at threshold 0
    assert {r["category_id"] for r in results} <= ids
    assert {r["image_id"] for r in results} <= val_images  # the dataset's own image ids


def test_results_mode_on_infer_output_equals_model_mode(trained_run, inferred, tmp_path):
    run, val_json, val_images_dir, _, _ = trained_run
    common = ["--config", str(run / "config.yaml"), "--weights", str(run / "final.weights.h5")]
    data = ["--format", "coco", "--annotations", str(val_json), "--images", str(val_images_dir)]
    assert tool("eval_coco").main(["--annotations", str(val_json), "--results", str(inferred),
                                   "--json", str(tmp_path / "results_mode.json")]) == 0
    assert tool("eval_coco").main(common + data + ["--set", "EVAL_MIN_CONFIDENCE=0",
                                                   "--output", str(tmp_path / "model_mode_dt.json"),
                                                   "--json", str(tmp_path / "model_mode.json")]) == 0
    results_mode = json.loads((tmp_path / "results_mode.json").read_text())
    model_mode = json.loads((tmp_path / "model_mode.json").read_text())
    assert set(results_mode) == set(model_mode) == {"bbox", "segm"}
    for iou_type in ("bbox", "segm"):
        for name in ("AP", "AP50", "AP75", "AR1", "AR100"):
            assert results_mode[iou_type][name] == pytest.approx(model_mode[iou_type][name],
                                                                 abs=1e-12), (iou_type, name)
    # A 2-step model's AP is about 0 either way, so the equality above says little alone: the
    # two paths must also have made the same detections.
    key = lambda r: (r["image_id"], -r["score"], r["category_id"], r["bbox"])  # noqa: E731
    detections = sorted(json.loads(inferred.read_text()), key=key)
    evaluated = sorted(json.loads((tmp_path / "model_mode_dt.json").read_text()), key=key)
    assert len(detections) == len(evaluated) > 100
    for a, b in zip(detections, evaluated):
        assert (a["image_id"], a["category_id"]) == (b["image_id"], b["category_id"])
        np.testing.assert_allclose(a["bbox"], b["bbox"], atol=1e-3)
        assert a["score"] == pytest.approx(b["score"], abs=1e-5) and a["segmentation"] == b["segmentation"]


def test_the_saved_model_reports_the_dataset_ids(trained_run, tmp_path):
    from detection.data.images import read_image
    from detection.export import load_serving

    run, _, val_images_dir, ids, _ = trained_run
    out = tmp_path / "export"
    assert tool("export").main(["--config", str(run / "config.yaml"), "--weights", str(run / "final.weights.h5"),
                                "--output", str(out), "--set", "DETECTION_MIN_CONFIDENCE=0"]) == 0
    assert json.loads((out / "assets.extra" / "classes.json").read_text())["category_ids"] == sorted(ids)
    image = read_image(sorted(val_images_dir.iterdir())[0])
    served = load_serving(out)(image[None])
    n = int(served["num_detections"][0])
    assert n > 0 and set(served["class_ids"][0, :n].tolist()) <= ids and np.all(served["class_ids"][0, n:] == 0)


def test_any_batch_size_and_a_multi_gpu_config_evaluate_on_one_device(trained_run, tmp_path):
    import yaml

    run, val_json, val_images_dir, _, _ = trained_run
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["GPU_COUNT"] = 4  # as tools/train.py --gpus 4 writes it
    (tmp_path / "multi_gpu.yaml").write_text(yaml.safe_dump(config))
    common = ["--config", str(tmp_path / "multi_gpu.yaml"), "--weights", str(run / "final.weights.h5")]
    data = ["--format", "coco", "--annotations", str(val_json), "--images", str(val_images_dir)]
    for batch_size in ("3", "2"):  # neither the config's IMAGES_PER_GPU (1) nor BATCH_SIZE (4)
        assert tool("eval_coco").main(common + data + ["--limit", "5", "--batch-size", batch_size]) == 0
    assert tool("infer").main(common + ["--output", str(tmp_path / "out"), "--batch-size", "3",
                                        str(sorted(val_images_dir.iterdir())[0])]) == 0
