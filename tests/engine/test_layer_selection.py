import keras
import numpy as np
import pytest
from engine_toy import build_toy_model, toy_dataset

from detection.config import Config
from detection.engine.layer_selection import Stage, plan_stages, set_trainable, stage_variables

HEADS = ["fpn_p5", "rpn_dense", "mask_dense", "rcnn_out"]
BACKBONE = ["conv1_conv", "conv2_block1_conv", "conv3_block1_conv", "conv4_block1_conv", "conv5_block1_conv"]


@pytest.fixture(scope="module")
def model():
    return build_toy_model()


@pytest.mark.parametrize("layers,expected", [
    ("heads", HEADS),
    ("5+", BACKBONE[4:] + HEADS),
    ("4+", BACKBONE[3:] + HEADS),
    ("3+", BACKBONE[2:] + HEADS),
    ("all", BACKBONE + HEADS),  # conv1_bn was built frozen and stays so
    (r"conv2_.*|rcnn_.*", ["conv2_block1_conv", "rcnn_out"]),
])
def test_selection_names(model, layers, expected):
    assert set_trainable(model, layers) == expected
    assert len(model.trainable_variables) == 2 * len(expected)  # kernel and bias each
    assert not model.get_layer("conv1_bn").trainable


def test_torchvision_mobilenet_stages_by_stride():
    """torchvision's MobileNetV3 (backbone torchvision_mobilenet_v3_large) names its blocks
    features[i]: 3+, 4+, 5+ select them by stride (4: 2..3, 8: 4..6, 16: 7..12, 32: 13..16)."""
    from detection.engine.layer_selection import layer_regex

    stride_of = {0: 2, 1: 2, 2: 4, 3: 4, 4: 8, 6: 8, 7: 16, 10: 16, 12: 16, 13: 32, 15: 32, 16: 32}
    for selection, lowest in (("5+", 32), ("4+", 16), ("3+", 8), ("heads", None)):
        regex = layer_regex(selection)
        selected = {i for i in stride_of if regex.fullmatch(f"backbone.body.{i}.block.0.0")}
        assert selected == {i for i, s in stride_of.items() if lowest and s >= lowest}, selection
        assert regex.fullmatch("backbone.fpn.layer_blocks.0.0") and regex.fullmatch("rpn.head.cls_logits")


def test_bad_selections_are_clear_errors(model):
    with pytest.raises(ValueError, match="nor a valid regular expression"):
        set_trainable(model, "conv[")
    with pytest.raises(ValueError, match="matches no layer with weights"):
        set_trainable(model, "backbone_.*")


def test_trainable_batchnorm_follows_selection_unless_frozen_by_config():
    model = build_toy_model(trainable_bn=True)
    assert "conv1_bn" in set_trainable(model, "all")
    assert "conv1_bn" not in set_trainable(model, "heads")
    assert "conv1_bn" in set_trainable(model, "all")  # a frozen-by-selection BN comes back
    model.get_layer("conv1_bn").frozen_by_config = True  # detection.modeling.normalization's mark
    assert "conv1_bn" not in set_trainable(model, "all")


def test_nested_backbone_model():
    image = keras.Input((4, 4, 3))
    backbone_in = keras.Input((4, 4, 3))
    x = keras.layers.Conv2D(2, 1, name="conv2_block1_1_conv")(backbone_in)
    x = keras.layers.BatchNormalization(name="conv2_block1_1_bn", trainable=False)(x)
    backbone = keras.Model(backbone_in, x, name="resnet")
    y = keras.layers.Dense(2, name="rpn_class")(backbone(image))
    model = keras.Model(image, y)
    backbone.trainable = False  # e.g. frozen whole by hand before
    assert set_trainable(model, "all") == ["conv2_block1_1_conv", "rpn_class"]
    assert not backbone.get_layer("conv2_block1_1_bn").trainable
    assert set_trainable(model, "heads") == ["rpn_class"]


def test_plan_stages():
    assert plan_stages(Config({"TRAIN_LAYERS": "4+", "EPOCHS": 7})) == [Stage("4+", 0, 7)]
    config = Config({"TRAIN_STAGES": [{"layers": "heads", "epochs": 2}, {"layers": "all", "epochs": 3}]})
    assert plan_stages(config) == [Stage("heads", 0, 2), Stage("all", 2, 5)]


def test_keras_refuses_new_variables_so_optimizer_is_built_over_all_stages():
    data = toy_dataset(8, 4)
    # Plain Keras: an optimizer built while only heads trained rejects the backbone later.
    model = build_toy_model()
    set_trainable(model, "heads")
    opt = keras.optimizers.SGD(0.1, momentum=0.9)
    model.compile(opt)
    model.fit(data, steps_per_epoch=1, epochs=1, verbose=0, shuffle=False)
    set_trainable(model, "all")
    model.compile(opt)
    with pytest.raises(ValueError, match="Unknown variable"):
        model.fit(data, steps_per_epoch=1, epochs=1, verbose=0, shuffle=False)

    # Built over the union of the stages, the same optimizer carries its state across.
    model = build_toy_model()
    plan = [Stage("heads", 0, 1), Stage("all", 1, 2)]
    opt = keras.optimizers.SGD(0.1, momentum=0.9)
    opt.build(stage_variables(model, plan))
    assert len(opt.momentums) == 2 * 9
    set_trainable(model, "heads")
    model.compile(opt)
    model.fit(data, steps_per_epoch=2, epochs=1, verbose=0, shuffle=False)
    head_kernel, conv_kernel = model.get_layer("rcnn_out").kernel, model.get_layer("conv3_block1_conv").kernel
    head_momentum = opt.momentums[opt._get_variable_index(head_kernel)]
    conv_momentum = opt.momentums[opt._get_variable_index(conv_kernel)]
    after_heads = np.asarray(head_momentum).copy()
    assert np.abs(after_heads).max() > 0 and np.abs(np.asarray(conv_momentum)).max() == 0

    set_trainable(model, "all")
    model.compile(opt)  # same optimizer object: recompiling keeps its variables
    np.testing.assert_array_equal(np.asarray(head_momentum), after_heads)
    assert int(opt.iterations.numpy()) == 2
    model.fit(data, steps_per_epoch=1, epochs=1, verbose=0, shuffle=False)
    assert int(opt.iterations.numpy()) == 3
    assert np.abs(np.asarray(conv_momentum)).max() > 0
