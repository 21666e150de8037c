"""bench/flops.py counts 2 x multiply-adds per weighted call, only of the model it is given."""

import flops
import keras
import pytest


def test_call_flops_of_each_layer_kind():
    x = keras.Input((8, 8, 16))
    conv = keras.layers.Conv2D(32, 3, padding="same", name="conv_a")
    deconv = keras.layers.Conv2DTranspose(4, 2, strides=2, name="mask_deconv")
    dense = keras.layers.Dense(10, name="rcnn_fc")
    y = dense(deconv(conv(x)))
    model = keras.Model(x, y)
    per_part = flops.model_flops(model)
    assert per_part["backbone"] == 2 * 8 * 8 * 3 * 3 * 16 * 32       # every output pixel: 3x3x16 MACs x 32
    assert per_part["mask_head"] == 2 * 8 * 8 * 2 * 2 * 4 * 32       # every input pixel spreads to 2x2x4
    assert per_part["box_head"] == 2 * 16 * 16 * 4 * 10


def test_shared_layer_counts_only_the_calls_of_the_given_model():
    conv = keras.layers.Conv2D(4, 1, name="rpn_conv")
    small, large = keras.Input((4, 4, 2)), keras.Input((8, 8, 2))
    model_small = keras.Model(small, conv(small))
    keras.Model(large, conv(large))
    assert flops.model_flops(model_small)["rpn"] == 2 * 4 * 4 * 2 * 4


def test_resnet50_backbone_matches_its_published_cost():
    # ResNet-50's convolutions: 3.86 G multiply-adds at 224 x 224 (4.1 G with the classifier).
    model = keras.applications.ResNet50(include_top=False, weights=None, input_shape=(224, 224, 3))
    gflops = flops.model_flops(model)["backbone"] / 1e9
    assert gflops == pytest.approx(2 * 3.86, rel=0.02)
