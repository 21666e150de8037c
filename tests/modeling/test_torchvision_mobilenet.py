"""torchvision's fasterrcnn_mobilenet_v3_large_fpn as our Detector (configs/torchvision_fasterrcnn_
mobilenet_v3_large_fpn.yaml): its backbone's layers and weight mapping, its three maps, anchors and
RoI levels, the RPN score threshold, the file torchvision's own torch.save(model.state_dict())
wrote, and a fine-tuning run from it.

The detections themselves are checked against torchvision in test_torchvision_oracle.py."""

import csv
import json

import keras
import numpy as np
import pytest
import tensorflow as tf
import torchvision_oracle as oracle

from detection.config import Config, ConfigError
from detection.core.anchors import AnchorSpec, torchvision_base_anchors
from detection.layers.proposals import PROPOSAL_SELECTIONS
from detection.layers.roi_align import pool_by_torchvision
from detection.modeling.torchvision_mobilenet import make_divisible
from detection.modeling.torchvision_weights import expected_keys, load_state_dict
from detection.modeling.weights import WeightsError
from tests.conftest import REPO
from tests.modeling.test_torchvision_finetune import FINE_TUNE
from tests.tools import load_tool

NAME = "fasterrcnn_mobilenet_v3_large_fpn"
CONFIG = REPO / "configs" / oracle.MODELS[NAME]
FIXTURE = REPO / "tests" / "fixtures" / "torchvision_oracle"
MANIFEST = json.loads((FIXTURE / f"manifest_{NAME}.json").read_text())


@pytest.fixture(scope="module")
def model():
    return oracle.our_model(NAME, FIXTURE)


def test_keys_shapes_and_layers_are_torchvisions(model):
    inference = model.predictor.detector.inference_model
    # every key of torchvision's own state_dict (recorded), with its shape, and nothing else
    assert set(expected_keys(inference)) == set(MANIFEST["shapes"])
    state = oracle.oracle_state_dict(MANIFEST)
    depthwise = inference.get_layer("backbone.body.4.block.1.0")  # 5x5 depthwise, stride 2
    assert isinstance(depthwise, keras.layers.DepthwiseConv2D)
    assert depthwise.strides == (2, 2) and depthwise.kernel_size == (5, 5)
    weight = state["backbone.body.4.block.1.0.weight"]  # [72, 1, 5, 5]
    c, y, x = 70, 1, 4
    assert depthwise.kernel.numpy()[y, x, c, 0] == weight[c, 0, y, x]
    se = inference.get_layer("backbone.body.4.block.2.fc1")  # SqueezeExcitation of 72 channels: 24
    assert se.filters == make_divisible(72 // 4) == 24 and se.use_bias
    bn = inference.get_layer("backbone.body.16.1")
    # the detection builder's norm_layer: torch's default eps, not mobilenet_v3_large's own 0.001
    assert bn.epsilon == 1e-5 and not bn.trainable and bn.frozen_by_config
    np.testing.assert_array_equal(bn.moving_variance.numpy(), state["backbone.body.16.1.running_var"])
    assert inference.get_layer("backbone.fpn.inner_blocks.0.0").kernel.shape == (1, 1, 160, 256)  # features[13]
    assert inference.get_layer("backbone.fpn.inner_blocks.1.0").kernel.shape == (1, 1, 960, 256)  # features[16]
    assert inference.get_layer("rpn.head.cls_logits").filters == 15  # 5 sizes x 3 ratios per location


def test_make_divisible_is_torchvisions():
    # _make_divisible(v, 8): nearest multiple of 8, at least 8, never below 90 % of v
    assert [make_divisible(v) for v in (4, 16, 18, 30, 60, 168, 240)] == [8, 16, 24, 32, 64, 168, 240]
    assert make_divisible(11) == 16  # 8 would be below 90 % of 11


def test_three_maps_two_at_stride_32(model):
    detector = model.predictor.detector
    maps = keras.Model(detector.inputs, detector.feature_maps)
    meta = np.zeros((1, model.config.IMAGE_META_SIZE), np.float32)
    out = maps({"image": np.zeros((1, 256, 352, 3), np.float32), "image_meta": meta})
    assert [tuple(f.shape) for f in out] == [(1, 8, 11, 256), (1, 8, 11, 256), (1, 4, 6, 256)]
    # the RPN's anchors: 15 per location of each map, at strides 32, 32 and 64
    assert detector.anchors.strides == (32, 32, 64) and detector.anchors.anchors_per_location == 15
    assert detector.anchors.anchor_count((256, 352)) == (88 + 88 + 24) * 15
    assert len(detector.anchors.anchors((256, 352))) == (88 + 88 + 24) * 15


def test_backbone_strides_must_be_the_fpns(tmp_path):
    from detection.modeling.detector import Detector

    config = Config.from_yaml(CONFIG, overrides=["BACKBONE_STRIDES=[4, 8, 16, 32, 64]",
                                                 "ANCHOR_SCALES_ON_EVERY_LEVEL=false"])
    with pytest.raises(ConfigError, match=r"^BACKBONE_STRIDES \[4, 8, 16, 32, 64\]: FPN torchvision_mobilenet outputs "
                                          r"maps at strides \[32, 32, 64\]"):
        Detector(config, training=False)


def test_anchors_of_several_sizes_per_level_in_torchvisions_order():
    # AnchorGenerator.generate_anchors: ratio-major, then size (ours [y1, x1, y2, x2], ratios w / h)
    anchors = torchvision_base_anchors((32, 64), (2.0, 1.0))
    np.testing.assert_array_equal(anchors, [[-11, -23, 11, 23], [-23, -45, 23, 45],
                                            [-16, -16, 16, 16], [-32, -32, 32, 32]])
    np.testing.assert_array_equal(torchvision_base_anchors(32, (2.0, 1.0)), anchors[[0, 2]])  # one size: as before
    spec = AnchorSpec((32.0, 64.0), (2.0, 1.0), (32,), offset=0.0, generator="torchvision", every_level=True)
    assert spec.anchors_per_location == 4
    grid = spec.anchors((32, 64))  # a 1 x 2 map at stride 32; order (y, x, anchor)
    np.testing.assert_array_equal(grid[4:], anchors + [0, 32, 0, 32])
    np.testing.assert_array_equal(spec.anchors(tf.constant([32, 64])).numpy(), grid)  # in-graph alike
    # ours with every scale on each level: scale-major, ratio fastest, A = 4 per location
    standard = AnchorSpec((32.0, 64.0), (2.0, 1.0), (32, 64), every_level=True)
    assert len(standard.anchors((64, 64))) == standard.anchor_count((64, 64)) == (4 + 1) * 4


def test_every_roi_is_pooled_from_the_first_map_at_stride_32():
    """MobileNetV3-FPN's two RoI maps are both stride 32: torchvision's mapper clips every box to level 5."""
    rng = np.random.default_rng(0)
    first = tf.constant(rng.standard_normal((1, 8, 8, 4)), tf.float32)
    second = tf.constant(rng.standard_normal((1, 8, 8, 4)), tf.float32)
    boxes = tf.constant([[[10, 10, 30, 30], [0, 0, 250, 250]]], tf.float32)  # levels 2 and 5 by their size
    pooled = pool_by_torchvision(boxes, [first, second], (32, 32), 2)
    np.testing.assert_array_equal(pooled.numpy(), pool_by_torchvision(boxes, [first], (32,), 2).numpy())
    # at ResNet-50-FPN's strides the small box reads the stride-4 map
    resnet = pool_by_torchvision(boxes[:, :1], [second, first, first, first], (4, 8, 16, 32), 2)
    assert not np.allclose(resnet.numpy(), pooled[:, :1].numpy())


@pytest.mark.parametrize("selection", sorted(PROPOSAL_SELECTIONS))
def test_rpn_score_threshold_drops_proposals_before_the_nms(selection):
    anchors = tf.constant([[0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50]], tf.float32)
    scores = tf.constant([0.9, 0.04, 0.06])
    select = PROPOSAL_SELECTIONS[selection]
    args = (scores, tf.zeros((3, 4)), anchors, tf.constant([0.0, 0.0, 64.0, 64.0]), 3, 3, 0.7, [1.0] * 4,
            tf.constant([3]))
    kept = select(*args, score_threshold=0.05).numpy()
    np.testing.assert_array_equal(kept, [[0, 0, 10, 10], [40, 40, 50, 50], [0, 0, 0, 0]])
    assert np.count_nonzero(select(*args).numpy().any(axis=1)) == 3  # 0 (the default) drops none


def test_the_config_selects_the_entries():
    mobile = Config.from_yaml(CONFIG)
    resnet = Config.from_yaml(REPO / "configs" / "torchvision_fasterrcnn_r50_fpn.yaml")
    assert mobile.RPN_SCORE_THRESHOLD == 0.05 and resnet.RPN_SCORE_THRESHOLD == 0.0
    assert (mobile.IMAGE_MIN_DIM, mobile.IMAGE_MAX_DIM) == (800, 1333)
    assert (mobile.BACKBONE, mobile.FPN) == ("torchvision_mobilenet_v3_large", "torchvision_mobilenet")
    with pytest.raises(ConfigError, match="config key TORCHVISION_MODEL was removed"):
        Config.from_yaml(CONFIG, overrides=[f"TORCHVISION_MODEL={NAME}"])


@pytest.fixture(scope="module")
def torch_saved(tmp_path_factory):
    """torchvision's own torch.save(model.state_dict()) (its zip and pickle, recorded without the
    75 MB of storages, which are regenerated from the seeds)."""
    path = tmp_path_factory.mktemp("mobile") / f"{NAME}.pth"
    oracle.with_data(FIXTURE / oracle.WITHOUT_DATA[NAME], MANIFEST, path)
    return path


def test_torch_saved_state_dict_loads_and_reproduces_torchvision(model, torch_saved):
    """The file loads through --weights (Detector.load_weights) and gives torchvision's detections."""
    detector = model.predictor.detector
    lines = []
    report = detector.load_weights(torch_saved, log=lines.append)
    keys = len(MANIFEST["shapes"])
    assert lines[0] == f"loaded {keys} of {keys} arrays from {torch_saved.name} ({len(report.loaded_layers)} layers)"
    assert report.loaded_arrays == keys and len(MANIFEST["storages"]) > keys  # num_batches_tracked read, ignored
    recorded = json.loads((FIXTURE / "detections.json").read_text())["models"][NAME]
    images = dict(oracle.oracle_images())
    entry = recorded[3]  # 180 x 400
    result = oracle.match(entry, model.detect(images[entry["image"]]), oracle.DETECTIONS)
    assert oracle.passes(result) and result["matched"] == oracle.DETECTIONS, result


def test_a_resnet_file_is_refused_naming_the_key(model):
    shapes = json.loads((FIXTURE / "manifest_fasterrcnn_resnet50_fpn.json").read_text())["shapes"]
    state = {k: np.zeros(s, np.float32) for k, s in shapes.items()}
    with pytest.raises(WeightsError, match=r"^r50\.pth: key backbone\.body\.bn1\.bias is not in the model "
                                           r"\(273 such keys\)"):
        load_state_dict(model.predictor.detector.inference_model, state, "r50.pth")


def test_fine_tuning_from_the_torch_saved_file(torch_saved, tmp_path, capsys):
    """tools/train.py --weights the .pth with 4 classes (the file has 5): the class layers left
    initialised, the losses finite, heads then 4+ train what they select, FrozenBatchNorm stays."""
    from detection.engine import checkpoints
    from detection.modeling.detector import Detector

    config_path = tmp_path / "c.yaml"
    config_path.write_text(f"_BASE_: {CONFIG}\n" + FINE_TUNE)  # the shapes at 128 px, 4 classes
    run = tmp_path / "run"
    assert load_tool("train").main(["--config", str(config_path), "--weights", str(torch_saved),
                                    "--output", str(run), "--set", "STEPS_PER_EPOCH=1", "--set",
                                    "TRAIN_STAGES=[{layers: heads, epochs: 1}, {layers: 4+, epochs: 1}]"]) == 0
    out = capsys.readouterr().out
    keys = len(MANIFEST["shapes"])
    assert f"loaded {keys - 4} of {keys} arrays from {torch_saved.name}" in out, out
    assert ("left initialised, trained for 5 classes, not 4: roi_heads.box_predictor.cls_score, "
            "roi_heads.box_predictor.bbox_pred") in out
    rows = list(csv.DictReader(open(run / "log.csv")))
    assert len(rows) == 2 and all(np.isfinite(float(row["loss"])) for row in rows)

    detector = Detector(Config.from_yaml(run / "config.yaml"))
    detector.load_weights(torch_saved, log=None)
    model = detector.training_model
    names = ("backbone.body.4.block.0.0", "backbone.body.8.block.0.0", "backbone.body.8.block.0.1",
             "backbone.fpn.layer_blocks.0.0", "rpn.head.cls_logits", "roi_heads.box_head.fc6")
    states = [{n: model.get_layer(n).get_weights()[0].copy() for n in names}]
    for path in checkpoints.list_checkpoints(run):
        checkpoints.load_model_weights(model, path)
        states.append({n: model.get_layer(n).get_weights()[0].copy() for n in names})
    assert len(states) == 3  # before, after each epoch

    def changed(name, epoch):
        return not np.array_equal(states[epoch][name], states[epoch - 1][name])

    for name in ("backbone.fpn.layer_blocks.0.0", "rpn.head.cls_logits", "roi_heads.box_head.fc6"):
        assert changed(name, 1), name  # heads
    assert not changed("backbone.body.8.block.0.0", 1) and changed("backbone.body.8.block.0.0", 2)  # stride 16: 4+
    assert not changed("backbone.body.4.block.0.0", 2)  # stride 8: not 4+
    assert not changed("backbone.body.8.block.0.1", 1) and not changed("backbone.body.8.block.0.1", 2)  # frozen BN
