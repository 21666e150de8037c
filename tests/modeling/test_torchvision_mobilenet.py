"""torchvision's fasterrcnn_mobilenet_v3_large_fpn: its backbone's layers and weight mapping,
its anchors and RoI levels, and the file torchvision's own torch.save(model.state_dict()) wrote.

The detections themselves are checked against torchvision in test_torchvision_oracle.py."""

import json

import numpy as np
import pytest
import tensorflow as tf
import torchvision_oracle as oracle

from detection.config import Config
from detection.core import torchvision_boxes as tvb
from detection.layers.torchvision_roi_align import multiscale_roi_align
from detection.modeling.torchvision_mobilenet import make_divisible
from detection.modeling.torchvision_rcnn import TorchvisionRCNN
from detection.modeling.torchvision_rcnn_weights import expected_keys, load_state_dict
from detection.modeling.weights import WeightsError
from tests.conftest import REPO

NAME = "fasterrcnn_mobilenet_v3_large_fpn"
FIXTURE = REPO / "tests" / "fixtures" / "torchvision_oracle"
MANIFEST = json.loads((FIXTURE / f"manifest_{NAME}.json").read_text())


@pytest.fixture(scope="module")
def model():
    return oracle.our_model(NAME, FIXTURE)


def test_keys_shapes_and_layers_are_torchvisions(model):
    # every key of torchvision's own state_dict (recorded), with its shape, and nothing else
    assert set(expected_keys(model)) == set(MANIFEST["shapes"])
    state = oracle.oracle_state_dict(MANIFEST)
    depthwise, kind = model.modules["backbone.body.4.block.1.0"]  # 5x5 depthwise, stride 2
    assert kind == "depthwise" and depthwise.strides == (2, 2) and depthwise.kernel_size == (5, 5)
    weight = state["backbone.body.4.block.1.0.weight"]  # [72, 1, 5, 5]
    c, y, x = 70, 1, 4
    assert depthwise.kernel.numpy()[y, x, c, 0] == weight[c, 0, y, x]
    se, _ = model.modules["backbone.body.4.block.2.fc1"]  # SqueezeExcitation of 72 channels: 24
    assert se.filters == make_divisible(72 // 4) == 24 and se.use_bias
    bn, _ = model.modules["backbone.body.16.1"]
    # the detection builder's norm_layer: torch's default eps, not mobilenet_v3_large's own 0.001
    assert bn.epsilon == 1e-5 and not bn.trainable
    np.testing.assert_array_equal(bn.moving_variance.numpy(), state["backbone.body.16.1.running_var"])
    assert model.modules["backbone.fpn.inner_blocks.0.0"][0].kernel.shape == (1, 1, 160, 256)  # features[13]
    assert model.modules["backbone.fpn.inner_blocks.1.0"][0].kernel.shape == (1, 1, 960, 256)  # features[16]
    assert model.modules["rpn.head.cls_logits"][0].filters == 15  # 5 sizes x 3 ratios per location


def test_make_divisible_is_torchvisions():
    # _make_divisible(v, 8): nearest multiple of 8, at least 8, never below 90 % of v
    assert [make_divisible(v) for v in (4, 16, 18, 30, 60, 168, 240)] == [8, 16, 24, 32, 64, 168, 240]
    assert make_divisible(11) == 16  # 8 would be below 90 % of 11


def test_feature_maps_strides(model):
    out = model.features(np.zeros((1, 256, 352, 3), np.float32), training=False)
    assert [tuple(f.shape) for f in out["features"]] == [(1, 8, 11, 256), (1, 8, 11, 256), (1, 4, 6, 256)]
    assert [tuple(f.shape) for f in out["rpn_logits"]] == [(1, 8, 11, 15), (1, 8, 11, 15), (1, 4, 6, 15)]


def test_anchors_of_several_sizes_per_level_in_torchvisions_order():
    # AnchorGenerator.generate_anchors: ratio-major, then size; ratios h / w
    anchors = tvb.base_anchors((32, 64), (0.5, 1.0))
    np.testing.assert_array_equal(anchors, [[-23, -11, 23, 11], [-45, -23, 45, 23],
                                            [-16, -16, 16, 16], [-32, -32, 32, 32]])
    np.testing.assert_array_equal(tvb.base_anchors(32, (0.5, 1.0)), anchors[[0, 2]])  # one size: as before
    grid = tvb.grid_anchors((1, 2), (32, 64), (32, 64), (0.5, 1.0))  # stride 32; order (y, x, anchor)
    np.testing.assert_array_equal(grid[4:], anchors + [32, 0, 32, 0])


def test_every_roi_is_pooled_from_the_first_map_at_levels_5_to_5():
    """MobileNetV3-FPN's two RoI maps are both stride 32: the mapper clamps every box to level 5."""
    rng = np.random.default_rng(0)
    first = tf.constant(rng.standard_normal((8, 8, 4)), tf.float32)
    second = tf.constant(rng.standard_normal((8, 8, 4)), tf.float32)
    boxes = tf.constant([[10, 10, 30, 30], [0, 0, 250, 250]], tf.float32)  # levels 2 and 5 by their size
    pooled = multiscale_roi_align([first, second], boxes, 2, 2, levels=(5, 5))
    for i in range(2):
        expected = multiscale_roi_align([first], boxes[i:i + 1], 2, 2, levels=(5,))
        np.testing.assert_array_equal(pooled[i:i + 1].numpy(), expected.numpy())
    # and at ResNet-50-FPN's levels the small box would read the stride-4 map
    resnet = multiscale_roi_align([second, first, first, first], boxes[:1], 2, 2)
    assert not np.allclose(resnet.numpy(), pooled[:1].numpy())


def test_rpn_score_threshold_is_the_mobile_models_only():
    mobile = Config.from_yaml(REPO / "configs" / "torchvision_fasterrcnn_mobilenet_v3_large_fpn.yaml")
    resnet = Config.from_yaml(REPO / "configs" / "torchvision_fasterrcnn_r50_fpn.yaml")
    assert mobile.TORCHVISION_RPN_SCORE_THRESHOLD == 0.05 and resnet.TORCHVISION_RPN_SCORE_THRESHOLD == 0.0
    assert mobile.TORCHVISION_MIN_SIZE == 800 and mobile.TORCHVISION_MAX_SIZE == 1333


def test_torch_saved_state_dict_loads_and_reproduces_torchvision(model, tmp_path):
    """torchvision's own torch.save(model.state_dict()) (its zip and pickle, recorded without
    the 75 MB of storages, which are regenerated from the seeds) loads through --weights and
    gives torchvision's detections."""
    path = tmp_path / f"{NAME}.pth"
    oracle.with_data(FIXTURE / oracle.WITHOUT_DATA[NAME], MANIFEST, path)
    config = Config.from_yaml(REPO / "configs" / oracle.MODELS[NAME], overrides=[
        f"NUM_CLASSES={oracle.NUM_CLASSES}", "CLASS_NAMES=null", "CATEGORY_IDS=null",
        f"TORCHVISION_MIN_SIZE={oracle.MIN_SIZE}", f"TORCHVISION_MAX_SIZE={oracle.MAX_SIZE}",
        f"DETECTION_MAX_INSTANCES={oracle.DETECTIONS}"])
    loaded = TorchvisionRCNN(config)
    lines = []
    report = loaded.load_weights(path, log=lines.append)
    keys = len(MANIFEST["shapes"])
    assert lines[0] == f"loaded {keys} of {keys} arrays from {path.name} ({len(loaded.modules)} layers)"
    assert report.loaded_arrays == keys and len(MANIFEST["storages"]) > keys  # num_batches_tracked read, ignored
    recorded = json.loads((FIXTURE / "detections.json").read_text())["models"][NAME]
    images = dict(oracle.oracle_images())
    entry = recorded[3]  # 180 x 400
    result = oracle.match(entry, loaded.detect(images[entry["image"]]), oracle.DETECTIONS)
    assert oracle.passes(result) and result["matched"] == oracle.DETECTIONS, result


def test_a_resnet_file_is_refused_naming_the_key(model):
    shapes = json.loads((FIXTURE / "manifest_fasterrcnn_resnet50_fpn.json").read_text())["shapes"]
    state = {k: np.zeros(s, np.float32) for k, s in shapes.items()}
    with pytest.raises(WeightsError, match=r"^r50\.pth: key backbone\.body\.bn1\.bias is not in the model "
                                           r"fasterrcnn_mobilenet_v3_large_fpn \(273 such keys"):
        load_state_dict(model, state, "r50.pth")
