"""The printed report, the JSON and the per-GT CSV carry the summary's values."""
import csv
import json

import numpy as np

from detection.analysis.anchor_match import AnchorSpec
from detection.analysis.anchor_stats import ImageBoxes, match_dataset, summarize
from detection.analysis.report import PER_GT_COLUMNS, format_report, write_json, write_per_gt_csv
from detection.config import Config


def matched():
    config = Config({"IMAGE_RESIZE_MODE": "none"})
    boxes = np.float32([[12, 28, 76, 92], [100, 100, 110, 110], [0, 0, 200, 200]])
    table, counts = match_dataset([ImageBoxes("img_1", 256, 256, boxes, np.zeros(3, bool))], config)
    return summarize(table, counts, config), table, AnchorSpec.from_config(config)


def test_json_round_trip(tmp_path):
    summary, _, _ = matched()
    write_json(summary, tmp_path / "s.json")
    assert json.loads((tmp_path / "s.json").read_text()) == summary


def test_per_gt_csv_has_one_row_per_box_in_the_input_frame(tmp_path):
    _, table, spec = matched()
    write_per_gt_csv(table, spec, tmp_path / "gt.csv")
    rows = list(csv.reader(open(tmp_path / "gt.csv")))
    assert tuple(rows[0]) == PER_GT_COLUMNS and len(rows) == 4
    # The box is a P3 anchor (IoU 1); its 4 neighbours, shifted 8 px, overlap 56 x 64: IoU 0.778.
    assert rows[1][:8] == ["img_1", "12.00", "28.00", "76.00", "92.00", "1.000000", "5", "P3"]
    assert [float(r[5]) for r in rows[1:]] == [round(float(v), 6) for v in table.best_iou]


def test_report_shows_the_counts_and_the_overall_row():
    summary, table, _ = matched()
    text = format_report(summary)
    assert "GT boxes 3 (excluded: 0 crowd" in text
    all_row = next(line for line in text.splitlines() if line.startswith("all "))
    assert all_row.split()[1] == "3" and all_row.split()[2] == f"{table.best_iou.min():.3f}"
    assert "Worst matched boxes" in text and "img_1" in text


def test_every_level_report_and_csv_name_the_best_anchors_scale(tmp_path):
    config = Config({"IMAGE_RESIZE_MODE": "none", "RPN_ANCHOR_SCALES": [16, 64], "ANCHOR_SCALES_ON_EVERY_LEVEL": True,
                     "BACKBONE_STRIDES": [8, 16], "RPN_ANCHOR_RATIOS": [1.0]})
    # Centres (k + 0.5) x stride. 16 x 16 at (40, 40): only the stride-16 level (P4) has an anchor
    # centred there, of scale 16 (IoU 1) -- one scale per level would have named P4's 64. 16 x 16
    # at (12, 12): P3's scale 16.
    boxes = np.float32([[32, 32, 48, 48], [4, 4, 20, 20]])
    table, counts = match_dataset([ImageBoxes("a", 128, 128, boxes, np.zeros(2, bool))], config)
    summary = summarize(table, counts, config)
    assert table.scale.tolist() == [16.0, 16.0] and table.best_iou.tolist() == [1.0, 1.0]
    text = format_report(summary)
    assert "scales [16, 64] each on every level" in text
    assert "Best anchor's level: P3 1, P4 1" in text and "Best anchor's scale: 16 2, 64 0" in text
    write_per_gt_csv(table, AnchorSpec.from_config(config), tmp_path / "gt.csv")
    rows = list(csv.DictReader(open(tmp_path / "gt.csv")))
    assert [(r["level"], r["scale"]) for r in rows] == [("P4", "16"), ("P3", "16")]
