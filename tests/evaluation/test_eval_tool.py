"""tools/eval_coco.py as a user runs it: exit status, one-line errors, --json output."""

import json
import os
import subprocess
import sys

import pytest
from conftest import REPO

from .helpers import PERFECT, SMALL_GT

TOOL = REPO / "tools" / "eval_coco.py"


def run(*args):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run([sys.executable, str(TOOL), *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=120)


@pytest.fixture
def gt_file(tmp_path):
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(SMALL_GT))
    return path


def test_results_mode_writes_metrics_json(tmp_path):
    from conftest import shared_dataset

    data = shared_dataset("coco_eval")
    out = tmp_path / "metrics.json"
    done = run("--annotations", data / "instances_val2014_100.json",
               "--results", data / "instances_val2014_fakebbox100_results.json", "--json", out)
    assert done.returncode == 0, done.stderr
    metrics = json.loads(out.read_text())
    assert list(metrics) == ["bbox"]  # box-only results: no segm
    assert round(metrics["bbox"]["AP"], 3) == 0.505 and len(metrics["bbox"]["per_category"]) == 80
    assert " Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.505" in done.stdout


def test_malformed_json_is_one_line_and_exit_2(tmp_path, gt_file):
    bad = tmp_path / "dt.json"
    bad.write_text('[{"image_id": 1, "category_id": 5, "bbox": [1, 2, 3, 4], "score": 0.5},\n {"image_id": }]')
    done = run("--annotations", gt_file, "--results", bad)
    assert done.returncode == 2
    assert done.stderr == f"error: {bad}: not valid JSON at line 2, column 15: Expecting value\n"


def test_unknown_image_id_is_one_line_and_exit_2(tmp_path, gt_file):
    results = tmp_path / "dt.json"
    results.write_text(json.dumps(PERFECT + [dict(PERFECT[0], image_id=77)]))
    done = run("--annotations", gt_file, "--results", results, "--backend", "pycocotools")
    assert done.returncode == 2
    assert done.stderr == (f"error: {results}: 1 record(s) name image_ids not among the GT images "
                           "(first: record 3, image_id 77)\n")


def test_empty_results_warn_and_succeed(tmp_path, gt_file):
    results = tmp_path / "dt.json"
    results.write_text("[]")
    done = run("--annotations", gt_file, "--results", results, "--iou-type", "both", "--json", tmp_path / "m.json")
    assert done.returncode == 0, done.stderr
    assert done.stderr.startswith("warning: ") and "no detections" in done.stderr
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert list(metrics) == ["bbox", "segm"] and metrics["segm"]["AP"] == 0.0 and metrics["segm"]["APs"] == -1.0


def test_wrong_mode_flags_exit_2(gt_file):
    done = run("--annotations", gt_file)
    assert done.returncode == 2 and "give either --results" in done.stderr


def load_tool():
    import importlib.util

    spec = importlib.util.spec_from_file_location("eval_coco_tool", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("metric", ["coco", "voc"])
def test_model_mode_plumbing(tmp_path, monkeypatch, metric):
    """Model mode with stand-ins for the dataset loader and the predictor (both written
    elsewhere): the config gets the flags, --limit reaches the predictor, files are written."""
    import types

    from .test_detector_eval import DATASET, ReplayPredictor

    seen = {}

    def load_dataset(config, subset):
        seen["config"], seen["subset"] = config, subset
        return DATASET

    def from_weights(config, weights_path, batch_size=None, score_threshold=None, exclude=()):
        seen["weights"], seen["batch_size"], seen["score_threshold"] = weights_path, batch_size, score_threshold
        seen["predictor"] = ReplayPredictor()
        return seen["predictor"]

    monkeypatch.setattr("detection.data.datasets.load_dataset", load_dataset)
    monkeypatch.setitem(sys.modules, "detection.engine.predictor",
                        types.SimpleNamespace(Predictor=types.SimpleNamespace(from_weights=from_weights)))
    config = tmp_path / "c.yaml"
    # A multi-GPU run's config (GPU_COUNT 4) evaluates on one device, in batches of --batch-size.
    config.write_text("DATASET_FORMAT: voc\nIMAGES_PER_GPU: 3\nGPU_COUNT: 4\n")
    status = load_tool().main([str(a) for a in [
        "--config", config, "--weights", "w.weights.h5", "--annotations", "Annotations", "--images", "JPEGImages",
        "--split", "val.txt", "--limit", "1", "--metric", metric, "--output", tmp_path / "dt.json",
        "--json", tmp_path / "m.json", "--batch-size", "5"]])
    assert status == 0
    c = seen["config"]
    assert (c.VAL_ANNOTATIONS, c.VAL_IMAGES, c.VAL_SPLIT, c.KEEP_EMPTY_IMAGES) == ("Annotations", "JPEGImages",
                                                                                    "val.txt", True)
    assert seen["subset"] == "val" and seen["weights"] == "w.weights.h5"
    assert seen["predictor"].calls == [[10]]  # --limit 1
    # The evaluation threshold (EVAL_MIN_CONFIDENCE's default), not DETECTION_MIN_CONFIDENCE's 0.7.
    assert seen["batch_size"] == 5 and seen["score_threshold"] == 0.05
    results = json.loads((tmp_path / "dt.json").read_text())
    assert [r["category_id"] for r in results] == [4, 9] and results[0]["bbox"] == [20.0, 10.0, 60.0, 40.0]
    metrics = json.loads((tmp_path / "m.json").read_text())
    if metric == "voc":
        assert metrics["voc"]["per_class"] == {"cat": 1.0, "dog": -1.0}
    else:
        assert list(metrics) == ["bbox"] and metrics["bbox"]["AP"] == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("flags", [["--limit", "5"], ["--batch-size", "2"], ["--output", "dt.json"],
                                   ["--metric", "voc"], ["--voc07"], ["--set", "EVAL_MIN_CONFIDENCE=0"],
                                   ["--images", "val/"], ["--format", "coco"], ["--split", "val.txt"],
                                   ["--strict"], ["--exclude", "mrcnn_mask"]])
def test_results_mode_refuses_model_mode_flags(gt_file, tmp_path, flags):
    (tmp_path / "dt.json").write_text(json.dumps(PERFECT))
    done = run("--annotations", gt_file, "--results", tmp_path / "dt.json", *flags)
    last = done.stderr.strip().splitlines()[-1]  # argparse's usage, then the one-line error
    assert done.returncode == 2 and f"error: {flags[0]}: model-mode flag(s), not used with --results" in last
