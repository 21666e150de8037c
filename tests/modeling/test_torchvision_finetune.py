"""Fine-tuning from a torchvision .pth with another class count (issue 25 item 4): tools/train.py
--weights model.pth on the shapes data (4 classes; the file has torchvision's 5), heads then all,
the losses fall, FrozenBatchNorm stays frozen (also under "all"), the new class layers start
from torchvision's initialisation, and the run's weights give detections."""

import csv
import json

import numpy as np
import torchvision_oracle as oracle

from tests.conftest import REPO
from tests.modeling.pth_writer import write_pth
from tests.tools import load_tool

FIXTURE = REPO / "tests" / "fixtures" / "torchvision_oracle"
LOSSES = ("rpn_class_loss", "rpn_bbox_loss", "rcnn_class_loss", "rcnn_bbox_loss", "mask_loss")
FINE_TUNE = """
NUM_CLASSES: 4
CLASS_NAMES: [square, circle, triangle]
CATEGORY_IDS: null
DATASET_FORMAT: shapes
SHAPES_TRAIN_COUNT: 16
SHAPES_VAL_COUNT: 2
SHAPES_IMAGE_SIZE: 128
IMAGE_MIN_DIM: 128
IMAGE_MAX_DIM: 128
IMAGES_PER_GPU: 1
POST_NMS_ROIS_TRAINING: 300
POST_NMS_ROIS_INFERENCE: 300
TRAIN_ROIS_PER_IMAGE: 32
MAX_GT_INSTANCES: 8
STEPS_PER_EPOCH: 3
VALIDATION_STEPS: 0
LEARNING_RATE: 0.01
LR_WARMUP_STEPS: 0
SEED: 3
TRAIN_STAGES: [{layers: heads, epochs: 2}, {layers: all, epochs: 2}]
"""


def test_fine_tuning_a_torchvision_pth_heads_then_all(tmp_path, capsys):
    from detection.config import Config
    from detection.engine import checkpoints
    from detection.modeling.detector import Detector

    manifest = json.loads((FIXTURE / "manifest_maskrcnn_resnet50_fpn_v2.json").read_text())
    state = oracle.oracle_state_dict(manifest)  # seeded, 5 classes
    state["backbone.body.bn1.num_batches_tracked"] = np.array(0, np.int64)
    pth = tmp_path / "maskrcnn_v2.pth"
    write_pth(pth, state)
    config_path = tmp_path / "c.yaml"
    config_path.write_text(f"_BASE_: {REPO / 'configs' / 'torchvision_maskrcnn_r50_fpn_v2.yaml'}\n" + FINE_TUNE)
    run = tmp_path / "run"
    assert load_tool("train").main(["--config", str(config_path), "--weights", str(pth), "--output", str(run)]) == 0
    out = capsys.readouterr().out
    assert (f"loaded {len(state) - 1 - 6} of {len(state) - 1} arrays from maskrcnn_v2.pth" in out), out
    assert ("left initialised, trained for 5 classes, not 4: roi_heads.box_predictor.cls_score, "
            "roi_heads.box_predictor.bbox_pred, roi_heads.mask_predictor.mask_fcn_logits") in out

    rows = list(csv.DictReader(open(run / "log.csv")))
    assert len(rows) == 4
    losses = {name: [float(row[name]) for row in rows] for name in LOSSES}
    for name, values in losses.items():
        assert all(np.isfinite(values)), name
    total = [sum(losses[name][epoch] for name in LOSSES) for epoch in range(4)]
    assert total[1] < total[0] and total[3] < total[0], losses  # heads, then all: lower than the first epoch
    assert losses["rcnn_class_loss"][-1] < losses["rcnn_class_loss"][0], losses
    assert losses["rpn_class_loss"][-1] < losses["rpn_class_loss"][0], losses

    config = Config.from_yaml(run / "config.yaml")
    detector = Detector(config)
    detector.load_weights(pth, log=None)
    model = detector.training_model

    def snapshot():
        return {n: model.get_layer(n).get_weights()[0].copy()
                for n in ("backbone.body.layer3.0.conv1", "backbone.body.layer3.0.bn1", "backbone.fpn.layer_blocks.0.1",
                          "rpn.head.conv.0.0", "roi_heads.mask_head.0.0", "roi_heads.box_head.0.1")}

    states = [snapshot()]
    for path in checkpoints.list_checkpoints(run):
        checkpoints.load_model_weights(model, path)
        states.append(snapshot())
    assert len(states) == 5  # before, after each epoch

    def changed(name, epoch):
        return not np.array_equal(states[epoch][name], states[epoch - 1][name])

    assert changed("rpn.head.conv.0.0", 1) and changed("roi_heads.mask_head.0.0", 1)  # heads
    assert not changed("backbone.body.layer3.0.conv1", 1)
    assert changed("backbone.body.layer3.0.conv1", 3)  # all
    for frozen in ("backbone.body.layer3.0.bn1", "backbone.fpn.layer_blocks.0.1", "roi_heads.box_head.0.1"):
        assert not any(changed(frozen, epoch) for epoch in range(1, 5)), frozen  # FrozenBatchNorm, TRAIN_BN false


def test_new_class_layers_start_from_torchvisions_initialisation():
    from detection.config import Config
    from detection.modeling.detector import Detector

    config = Config.from_yaml(REPO / "configs" / "torchvision_fasterrcnn_r50_fpn.yaml",
                              overrides=["NUM_CLASSES=3", "CLASS_NAMES=null", "CATEGORY_IDS=null", "IMAGES_PER_GPU=1"])
    model = Detector(config, training=False).inference_model
    logits = model.get_layer("roi_heads.box_predictor.cls_score").kernel.numpy()
    deltas = model.get_layer("roi_heads.box_predictor.bbox_pred").kernel.numpy()
    assert 0.008 < logits.std() < 0.012 and 0.0008 < deltas.std() < 0.0012  # not glorot's 0.044 on 1024 inputs
