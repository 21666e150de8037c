"""stat_gt's second stage end to end: proposals of a trained model reach every GT box."""
import json
import pathlib

from tests.tools import load_tool


def test_proposal_recall_of_a_trained_model(trained_shapes, tmp_path):
    config, weights, dataset = trained_shapes
    config_path = pathlib.Path(weights).parent / "config.yaml"
    out = tmp_path / "stat.json"
    # tools/stat_gt.py's main in this process: no second TensorFlow start-up.
    assert load_tool("stat_gt").main(["--config", str(config_path), "--subset", "train", "--weights", str(weights),
                                      "--json", str(out)]) == 0
    proposals = json.loads(out.read_text())["proposals"]
    assert proposals["images"] == len(dataset.records)
    assert proposals["gt_num"] == sum(r.num_boxes for r in dataset.records)
    # The fixture model finds every box at IoU >= 0.87, so its RPN reaches every box at 0.5.
    assert proposals["recall"]["100"]["0.5"] == 1.0
    assert proposals["rcnn_miss_match_gt_num"] == 0
