"""torchvision state_dicts onto the Detector's torchvision-named layers: names, conversions,
report, bad files."""

import json

import numpy as np
import pytest

from detection.config import Config
from detection.modeling.detector import Detector
from detection.modeling.torchvision_weights import expected_keys, load_state_dict, torch_layers
from detection.modeling.weights import WeightsError
from tests.conftest import REPO

FIXTURE = REPO / "tests" / "fixtures" / "torchvision_oracle"


def manifest(name):
    """{key: shape} of torchvision's own state_dict (5 classes), recorded by bench/torchvision_oracle.py."""
    return json.loads((FIXTURE / f"manifest_{name}.json").read_text())["shapes"]


def random_state_dict(shapes, seed=0):
    rng = np.random.default_rng(seed)
    return {k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}


class Built:
    """A Detector's inference model with what the tests read: its layers by torch module name."""

    def __init__(self, config):
        self.config = config
        self.model = Detector(config, batch_size=1, training=False).inference_model
        self.modules = torch_layers(self.model)

    def load(self, state, name):
        return load_state_dict(self.model, state, name, self.config.NUM_CLASSES)


def _config(yaml, num_classes):
    return Config.from_yaml(REPO / "configs" / yaml, overrides=[
        f"NUM_CLASSES={num_classes}", "CLASS_NAMES=null", "CATEGORY_IDS=null", "IMAGES_PER_GPU=1"])


def build(name, num_classes):
    return Built(_config(f"torchvision_{name}_r50_fpn.yaml", num_classes))


@pytest.fixture(scope="module")
def maskrcnn():
    return build("maskrcnn", 5)


@pytest.fixture(scope="module")
def fasterrcnn_3():
    return build("fasterrcnn", 3)


def test_keys_and_shapes_are_torchvisions(maskrcnn):
    shapes = manifest("maskrcnn_resnet50_fpn")
    assert set(expected_keys(maskrcnn.model)) == set(shapes)
    state = random_state_dict(shapes)
    state["backbone.body.bn1.num_batches_tracked"] = np.array(7)  # BatchNorm2d's counter: read, ignored
    report = maskrcnn.load(state, "maskrcnn.pth")
    assert report.summary().splitlines()[0] == f"loaded {len(shapes)} of {len(shapes)} arrays from maskrcnn.pth " \
                                               f"({len(maskrcnn.modules)} layers)"
    layer = maskrcnn.modules["backbone.body.layer2.0.conv2"]
    np.testing.assert_array_equal(layer.kernel.numpy(),
                                  state["backbone.body.layer2.0.conv2.weight"].transpose(2, 3, 1, 0))
    assert layer.strides == (2, 2)  # torchvision's ResNet: the stride is in the 3x3 conv
    bn = maskrcnn.modules["backbone.body.layer2.0.bn2"]
    np.testing.assert_array_equal(bn.moving_variance.numpy(), state["backbone.body.layer2.0.bn2.running_var"])
    assert not bn.trainable and bn.epsilon == 1e-5
    fc6 = maskrcnn.modules["roi_heads.box_head.fc6"]
    weight = state["roi_heads.box_head.fc6.weight"]  # [1024, 256 * 7 * 7] over (C, H, W)
    c, y, x = 5, 2, 3
    np.testing.assert_array_equal(fc6.kernel.numpy()[(y * 7 + x) * 256 + c], weight[:, c * 49 + y * 7 + x])
    # torchvision's deltas (dx, dy, dw, dh) become ours (dy, dx, dh, dw), per anchor and per class
    rpn = maskrcnn.modules["rpn.head.bbox_pred"]
    torch_rpn = state["rpn.head.bbox_pred.weight"]  # [4 A, 256, 1, 1]
    np.testing.assert_array_equal(rpn.kernel.numpy()[0, 0, :, 4 + 0], torch_rpn[4 + 1, :, 0, 0])  # anchor 1: dy
    np.testing.assert_array_equal(rpn.bias.numpy()[4 + 3], state["rpn.head.bbox_pred.bias"][4 + 2])  # dw
    bbox = maskrcnn.modules["roi_heads.box_predictor.bbox_pred"]
    np.testing.assert_array_equal(bbox.kernel.numpy()[:, 8 + 1], state["roi_heads.box_predictor.bbox_pred.weight"][8])


@pytest.mark.parametrize("name", ["fasterrcnn_resnet50_fpn_v2", "maskrcnn_resnet50_fpn_v2"])
def test_v2_keys_and_shapes_are_torchvisions(name):
    model = Built(_config(f"torchvision_{name.split('_')[0]}_r50_fpn_v2.yaml", 5))
    shapes = manifest(name)
    assert set(expected_keys(model.model)) == set(shapes)
    report = model.load(random_state_dict(shapes), f"{name}.pth")
    assert report.loaded_arrays == len(shapes)
    bn = model.modules["roi_heads.box_head.2.1"]  # v2's box head: conv + BatchNorm, frozen (TRAIN_BN false)
    assert bn.epsilon == 1e-5 and not bn.trainable


def test_other_class_count_leaves_class_layers_initialised(fasterrcnn_3):
    shapes = manifest("fasterrcnn_resnet50_fpn")  # 5 classes
    state = random_state_dict(shapes, seed=1)
    cls_score = fasterrcnn_3.modules["roi_heads.box_predictor.cls_score"]
    before = cls_score.kernel.numpy().copy()
    report = fasterrcnn_3.load(state, "coco.pth")
    class_arrays = 4  # cls_score and bbox_pred, weight and bias
    assert report.loaded_arrays == len(shapes) - class_arrays
    assert report.class_specific == ["roi_heads.box_predictor.cls_score", "roi_heads.box_predictor.bbox_pred"]
    assert "left initialised, trained for 5 classes, not 3" in report.summary()
    np.testing.assert_array_equal(cls_score.kernel.numpy(), before)
    fc7 = fasterrcnn_3.modules["roi_heads.box_head.fc7"]
    np.testing.assert_array_equal(fc7.kernel.numpy(), state["roi_heads.box_head.fc7.weight"].T)


def test_bad_state_dicts_one_line_naming_file_and_key(fasterrcnn_3):
    mask_shapes = manifest("maskrcnn_resnet50_fpn")
    with pytest.raises(WeightsError, match=r"^maskrcnn\.pth: key roi_heads\.mask_head\.0\.0\.bias is not in the "
                                           r"model \(12 such keys\): a file of another architecture"):
        fasterrcnn_3.load(random_state_dict(mask_shapes), "maskrcnn.pth")
    state = random_state_dict(manifest("fasterrcnn_resnet50_fpn"))
    del state["backbone.fpn.layer_blocks.2.0.bias"]
    with pytest.raises(WeightsError, match=r"^cut\.pth: key backbone\.fpn\.layer_blocks\.2\.0\.bias "
                                           r"is missing from the file \(1 missing"):
        fasterrcnn_3.load(state, "cut.pth")
    state = random_state_dict(manifest("fasterrcnn_resnet50_fpn"))
    state["backbone.body.layer3.0.conv1.weight"] = state["backbone.body.layer3.0.conv1.weight"][:128]
    with pytest.raises(WeightsError) as error:
        fasterrcnn_3.load(state, "other.pth")
    assert str(error.value).startswith("other.pth: key backbone.body.layer3.0.conv1.weight does not fit")
    assert "\n" not in str(error.value)
