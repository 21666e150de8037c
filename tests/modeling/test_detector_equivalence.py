"""A step of the detector on 2 replicas equals a step on one device over the same global batch."""
import json
import pathlib
import subprocess
import sys

import numpy as np

SCRIPT = pathlib.Path(__file__).with_name("detector_equivalence_script.py")


def test_two_replicas_equal_one_device_for_the_detector():
    done = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=600)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, done.stderr[-3000:]
    result = json.loads(lines[-1][len("RESULT "):])
    assert result["replicas"] == 2
    assert result["initial_diff"] == 0.0
    assert result["moved"] > 1e-4
    assert result["step_diff"] < 1e-5, result["step_diff"]
    one, two = result["logs_one"], result["logs_two"]
    for key in ("rpn_class_loss", "rpn_bbox_loss", "rcnn_class_loss", "rcnn_bbox_loss", "mask_loss", "loss",
                "gt_num", "positive_anchor_num", "positive_roi_num"):
        np.testing.assert_allclose(two[key], one[key], rtol=1e-4, err_msg=key)
