"""stat_gt's second stage end to end: proposals of a trained model reach every GT box."""
import json
import pathlib
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[2]


def test_proposal_recall_of_a_trained_model(trained_shapes, tmp_path):
    config, weights, dataset = trained_shapes
    config_path = pathlib.Path(weights).parent / "config.yaml"
    out = tmp_path / "stat.json"
    done = subprocess.run([sys.executable, "tools/stat_gt.py", "--config", str(config_path), "--subset", "train",
                           "--weights", str(weights), "--json", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    proposals = json.loads(out.read_text())["proposals"]
    assert proposals["images"] == len(dataset.records)
    assert proposals["gt_num"] == sum(r.num_boxes for r in dataset.records)
    # The fixture model finds every box at IoU >= 0.87, so its RPN reaches every box at 0.5.
    assert proposals["recall"]["100"]["0.5"] == 1.0
    assert proposals["rcnn_miss_match_gt_num"] == 0
