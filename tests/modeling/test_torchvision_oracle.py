"""Our Detector with torchvision's conventions (configs/torchvision_*.yaml), run through the
Predictor, reproduces torchvision's recorded detections (tests/fixtures/torchvision_oracle).

The weights are rebuilt here with NumPy from the recorded manifest (bench/torchvision_oracle.py,
oracle_state_dict), so nothing is skipped and torch is not needed: boxes within 1 px, same
classes, scores within 0.01, mask IoU > 0.95, for every recorded detection.
"""

import json

import numpy as np
import pytest
import torchvision_oracle as oracle

from tests.conftest import REPO

FIXTURE = REPO / "tests" / "fixtures" / "torchvision_oracle"
RECORDED = json.loads((FIXTURE / "detections.json").read_text())
IMAGES = dict(oracle.oracle_images())


@pytest.fixture(scope="module", params=sorted(RECORDED["models"]))
def model_and_entries(request):
    return oracle.our_model(request.param, FIXTURE), RECORDED["models"][request.param]


def test_recorded_outputs_reproduced(model_and_entries):
    model, entries = model_and_entries
    found = model.detect_all([IMAGES[entry["image"]] for entry in entries])
    assert len(found) == len(entries) == len(oracle.IMAGE_SIZES)
    assert model.predictor._forward.experimental_get_tracing_count() == 1  # four input sizes, one trace
    for entry, ours in zip(entries, found):
        result = oracle.match(entry, ours, model.config.DETECTION_MAX_INSTANCES)
        assert result["oracle"] == RECORDED["detections"], entry["image"]  # the fixture holds detections
        assert result["unmatched"] == 0 and result["extra"] == 0, (entry["image"], result)
        assert result["matched"] >= result["oracle"] - 2, (entry["image"], result)
        assert result["box_diff"] <= oracle.BOX_TOLERANCE, (entry["image"], result)
        assert result["score_diff"] <= oracle.SCORE_TOLERANCE, (entry["image"], result)
        assert result["mask_iou"] > oracle.MASK_IOU, (entry["image"], result)
        if model.use_mask:
            assert ours["masks"].shape[1:] == IMAGES[entry["image"]].shape[:2]
        # boxes in original-image pixels, [y1, x1, y2, x2]
        height, width = IMAGES[entry["image"]].shape[:2]
        assert np.all(ours["boxes"][:, 2] <= height) and np.all(ours["boxes"][:, 3] <= width)


def test_match_detects_a_difference():
    """The comparison itself fails on a shifted box, another class, a lower score."""
    entry = RECORDED["models"]["fasterrcnn_resnet50_fpn"][0]
    boxes = np.asarray(entry["boxes_xyxy"], np.float32)[:, [1, 0, 3, 2]]
    ours = {"boxes": boxes.copy(), "class_ids": np.asarray(entry["labels"]), "scores": np.asarray(entry["scores"])}
    assert oracle.passes(oracle.match(entry, ours, RECORDED["detections"]))
    shifted = dict(ours, boxes=boxes + np.float32(1.5))
    assert oracle.match(entry, shifted, RECORDED["detections"])["box_diff"] > 1.0
    relabelled = dict(ours, class_ids=ours["class_ids"] % (oracle.NUM_CLASSES - 1) + 1)
    assert not oracle.passes(oracle.match(entry, relabelled, RECORDED["detections"]))
    lower = dict(ours, scores=ours["scores"] - 0.02)
    assert not oracle.passes(oracle.match(entry, lower, RECORDED["detections"]))
