"""tools/stat_gt.py end to end: the shapes dataset always, the shared real datasets when present."""
import csv
import importlib.util
import json

import pytest
from conftest import REPO, shared_dataset

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
STANDARD_PLOTS = ("best_iou_hist.png", "gt_shapes.png", "matched_by_size.png")


@pytest.fixture(scope="module")
def stat_gt():
    spec = importlib.util.spec_from_file_location("stat_gt_tool", REPO / "tools" / "stat_gt.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def run(stat_gt, tmp_path, *args):
    out = tmp_path / "out"
    code = stat_gt([*args, "--output", str(out), "--json", str(tmp_path / "s.json"),
                    "--per-gt", str(tmp_path / "gt.csv")])
    assert code == 0
    summary = json.loads((tmp_path / "s.json").read_text())
    rows = list(csv.DictReader(open(tmp_path / "gt.csv")))
    assert len(rows) == summary["gt_num"]
    for name in STANDARD_PLOTS:
        assert (out / name).read_bytes()[:8] == PNG_MAGIC
    return summary, rows, out


def test_shapes_dataset_with_suggestion(stat_gt, tmp_path):
    summary, rows, out = run(stat_gt, tmp_path, "--config", str(REPO / "configs" / "shapes.yaml"),
                             "--suggest", "--suggest-sample", "300", "--set", "SHAPES_TRAIN_COUNT=30")
    assert summary["image_num"] == 30 and summary["gt_num"] > 0
    assert summary["gt_num"] == sum(g["gt_num"] for g in summary["by_size"].values())
    assert summary["anchor_num"] == 3 * (32 * 32 + 16 * 16 + 8 * 8 + 4 * 4 + 2 * 2)  # 128 x 128, 3 ratios
    assert summary["suggestion"]["after"]["matched_fraction"] >= summary["suggestion"]["before"]["matched_fraction"]
    assert summary["suggestion"]["before"]["matched_fraction"] == summary["matched_fraction"]["0.7"]
    assert (out / "suggest.png").read_bytes()[:8] == PNG_MAGIC
    lowest = float(min(rows, key=lambda r: float(r["best_iou"]))["best_iou"])
    assert lowest == pytest.approx(summary["best_iou"]["min"], abs=1e-6)


def test_bad_config_key_is_one_line_and_status_2(stat_gt, tmp_path, capsys):
    assert stat_gt(["--config", str(REPO / "configs" / "shapes.yaml"), "--set", "RPN_ANCHOR_SCALE=[1,2,3,4,5]"]) == 2
    assert "did you mean RPN_ANCHOR_SCALES" in capsys.readouterr().err


def test_raccoon_voc_free_layout(stat_gt, tmp_path):
    root = shared_dataset("raccoon")
    summary, _, _ = run(stat_gt, tmp_path, "--config", str(REPO / "configs" / "base.yaml"), "--format", "voc",
                        "--annotations", str(root / "annotations"), "--images", str(root / "images"))
    assert (summary["image_num"], summary["gt_num"], summary["crowd_num"]) == (200, 217, 0)
    # Raccoons fill the frame: in a 1024 square input every box is "large".
    assert summary["by_size"]["large"]["gt_num"] == 217


def test_bccd_voc_standard_layout_without_its_zero_area_boxes(stat_gt, tmp_path):
    root = shared_dataset("bccd")
    summary, _, _ = run(stat_gt, tmp_path, "--config", str(REPO / "configs" / "base.yaml"), "--format", "voc",
                        "--annotations", str(root))
    # BloodImage_00338 and _00343 each hold one zero-area box, which the loader drops and reports.
    assert summary["data"]["problems"].get("zero_area_box") == 2
    assert (summary["image_num"], summary["gt_num"]) == (364, 4888 - 2)


def test_coco_tiny_train_excludes_crowd(stat_gt, tmp_path):
    root = shared_dataset("coco_tiny")
    annotations = root / "annotations" / "instances_train2017.json"
    summary, _, _ = run(stat_gt, tmp_path, "--config", str(REPO / "configs" / "coco_r50_fpn.yaml"),
                        "--annotations", str(annotations), "--images", str(root / "train2017"))
    raw = json.loads(annotations.read_text())["annotations"]
    crowd = sum(a.get("iscrowd", 0) for a in raw)
    assert summary["image_num"] == 80 and summary["crowd_num"] == crowd > 0
    assert summary["gt_num"] + summary["crowd_num"] + summary["degenerate_num"] == len(raw) == 705


@pytest.mark.parametrize("args, message", [
    (["--proposal-images", "5"], "--proposal-images needs --weights"),
    (["--suggest-sample", "100"], "--suggest-sample needs --suggest"),
    (["--suggest-objective", "overall"], "--suggest-objective needs --suggest"),
    (["--exclude", "mrcnn_mask"], "--exclude needs --weights"),
])
def test_a_flag_that_needs_another_is_refused_alone(stat_gt, args, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        stat_gt(["--config", str(REPO / "configs" / "shapes.yaml"), *args])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


MOBILE = str(REPO / "configs" / "torchvision_fasterrcnn_mobilenet_v3_large_fpn.yaml")
# A user's own one-class data on the mobile config: its COCO class list replaced by the dataset's.
MOBILE_OWN_DATA = ("--set", "NUM_CLASSES=2", "--set", "CLASS_NAMES=null", "--set", "CATEGORY_IDS=null")


def test_raccoon_on_the_mobile_config_every_scale_on_every_level(stat_gt, tmp_path, capsys):
    root = shared_dataset("raccoon")
    summary, rows, _ = run(stat_gt, tmp_path, "--config", MOBILE, *MOBILE_OWN_DATA, "--set", "IMAGE_MIN_DIM=256",
                           "--set", "IMAGE_MAX_DIM=416", "--format", "voc", "--annotations", str(root / "annotations"),
                           "--images", str(root / "images"), "--suggest")
    assert summary["gt_num"] == 217 and summary["config"]["ANCHOR_SCALES_ON_EVERY_LEVEL"]
    assert sum(summary["best_scale"].values()) == 217 == sum(summary["best_level"].values())
    # Raccoons fill the frame (median shorter side about 130 px at 256): the best anchors are large.
    assert summary["best_scale"]["128"] + summary["best_scale"]["256"] > 0.9 * 217
    assert {r["scale"] for r in rows} <= {"32", "64", "128", "256", "512"}
    assert "suggestion" not in summary and "ANCHOR_SCALES_ON_EVERY_LEVEL" in summary["suggestion_not_made"]
    out = capsys.readouterr().out
    assert "Best anchor's scale: " in out and "No anchor suggestion: " in out


def test_an_anchor_layout_that_cannot_be_is_one_line(stat_gt, tmp_path, capsys):
    assert stat_gt(["--config", MOBILE, *MOBILE_OWN_DATA, "--set", "RPN_ANCHOR_STRIDE=2",
                    "--format", "voc", "--annotations", str(shared_dataset("raccoon") / "annotations"),
                    "--images", str(shared_dataset("raccoon") / "images")]) == 2
    err = capsys.readouterr().err  # the config's own check, as every tool reports it
    assert err.startswith(f"stat_gt: {MOBILE}: invalid value for RPN_ANCHOR_STRIDE\n") and err.count("\n") == 2
    assert "RPN_ANCHOR_STRIDE=2: expected 1 with ANCHOR_GENERATOR torchvision (it puts anchors on every cell)" in err
