"""fold_batch_norms: the folded model computes what the model computes in inference mode."""
import keras
import numpy as np
import pytest

from detection.modeling.folding import fold_batch_norms
from tests.model_fixtures import tiny_config


def randomize_batch_norms(model, seed=0):
    """Gives every BatchNormalization statistics far from the identity, so a fold that drops or
    misplaces any term of y = (x - mean) / sqrt(var + eps) * gamma + beta shows."""
    rng = np.random.default_rng(seed)
    count = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.moving_mean.shape[-1]
            layer.set_weights([rng.uniform(0.5, 1.5, n), rng.normal(0, 0.5, n), rng.normal(0, 0.5, n),
                               rng.uniform(0.3, 3.0, n)])
            count += 1
    return count


def batch_norm_count(model):
    return sum(isinstance(layer, keras.layers.BatchNormalization) for layer in model.layers)


def assert_same_outputs(model, folded, x, tolerance=1e-5):
    """Every output of ``folded`` within ``tolerance`` x the largest |value| of the model's."""
    expected = keras.tree.flatten(model(x, training=False))
    got = keras.tree.flatten(folded(x, training=False))
    assert len(expected) == len(got)
    for e, g in zip(expected, got):
        e, g = np.asarray(e), np.asarray(g)
        assert e.shape == g.shape
        np.testing.assert_allclose(g, e, atol=tolerance * np.abs(e).max())


def test_folds_conv_with_and_without_bias_and_depthwise_conv():
    x = keras.Input((12, 12, 3))
    a = keras.layers.Conv2D(4, 3, padding="same", use_bias=False, name="a_conv")(x)
    a = keras.layers.BatchNormalization(name="a_bn")(a)
    a = keras.layers.ReLU()(a)
    b = keras.layers.Conv2D(4, 1, name="b_conv")(x)
    b = keras.layers.BatchNormalization(name="b_bn")(b)
    residual = keras.layers.Add()([a, b])
    d = keras.layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same", name="d_conv")(residual)
    d = keras.layers.BatchNormalization(epsilon=1e-2, name="d_bn")(d)
    model = keras.Model(x, [residual, d])
    randomize_batch_norms(model)
    images = np.random.default_rng(1).normal(size=(2, 12, 12, 3)).astype("float32")
    before = [np.asarray(t) for t in model(images, training=False)]

    folded, count = fold_batch_norms(model)

    assert count == 3 and batch_norm_count(folded) == 0
    assert folded.get_layer("a_conv").use_bias and folded.get_layer("a_conv") is not model.get_layer("a_conv")
    assert_same_outputs(model, folded, images)
    # The original model and its weights are untouched.
    for b4, now in zip(before, model(images, training=False)):
        np.testing.assert_array_equal(np.asarray(now), b4)
    assert not model.get_layer("a_conv").use_bias


def test_leaves_batch_norms_it_cannot_fold():
    x = keras.Input((8, 8, 3))
    activated = keras.layers.Conv2D(4, 3, activation="relu", name="relu_conv")(x)  # BN after the ReLU
    activated = keras.layers.BatchNormalization(name="after_relu_bn")(activated)
    shared = keras.layers.Conv2D(4, 1, name="shared_conv")(x)  # its raw output is also a model output
    normalized = keras.layers.BatchNormalization(name="shared_bn")(shared)
    rows = keras.layers.Conv2D(8, 1, name="rows_conv")(x)
    rows = keras.layers.BatchNormalization(axis=1, name="rows_bn")(rows)  # normalises rows, not channels
    model = keras.Model(x, [activated, shared, normalized, rows])
    randomize_batch_norms(model)

    folded, count = fold_batch_norms(model)

    assert count == 0 and batch_norm_count(folded) == 3
    assert_same_outputs(model, folded, np.random.default_rng(2).normal(size=(1, 8, 8, 3)).astype("float32"))


@pytest.mark.parametrize("application, expected", [("ResNet50", 53), ("MobileNetV2", 52)])
def test_folds_every_batch_norm_of_the_keras_backbones(application, expected):
    model = getattr(keras.applications, application)(include_top=False, weights=None, input_shape=(64, 64, 3))
    assert randomize_batch_norms(model) == expected
    folded, count = fold_batch_norms(model)
    assert count == expected and batch_norm_count(folded) == 0
    images = np.random.default_rng(3).uniform(-1, 1, (1, 64, 64, 3)).astype("float32")
    assert_same_outputs(model, folded, images, tolerance=1e-4)


def test_folds_the_detector_backbone_and_keeps_its_heads():
    """The tiny detector from its input to the FPN maps and RPN outputs: every BN folded, the
    heads reused (the same layers), the outputs unchanged."""
    from detection.modeling.detector import Detector

    detector = Detector(tiny_config(TRAIN_BN=True), batch_size=1, training=False)
    model = keras.Model(detector.inputs["image"],
                        list(detector.feature_maps) + [detector.rpn_probs, detector.rpn_deltas])
    bns = randomize_batch_norms(model)
    assert bns > 0
    folded, count = fold_batch_norms(model)
    assert count == bns and batch_norm_count(folded) == 0
    assert folded.get_layer("rpn_conv_shared") is detector.rpn_head.conv
    images = np.random.default_rng(4).uniform(0, 255, (1, 64, 64, 3)).astype("float32")
    assert_same_outputs(model, folded, images, tolerance=1e-4)


def test_folds_a_mixed_bfloat16_model_into_float32_weights():
    """Under mixed precision the weights stay float32 (computed in float64) and the folded
    convolution keeps the layer's policy: outputs agree to bfloat16 rounding."""
    policy = "mixed_bfloat16"
    x = keras.Input((16, 16, 3))
    y = keras.layers.Conv2D(8, 3, padding="same", use_bias=False, dtype=policy, name="conv")(x)
    y = keras.layers.BatchNormalization(dtype=policy, name="bn")(y)
    model = keras.Model(x, keras.layers.Activation("linear", dtype="float32")(y))
    randomize_batch_norms(model)
    folded, count = fold_batch_norms(model)
    conv = folded.get_layer("conv")
    assert count == 1 and conv.dtype_policy.name == policy and conv.kernel.dtype == "float32"
    assert_same_outputs(model, folded, np.random.default_rng(5).normal(size=(2, 16, 16, 3)).astype("float32"),
                        tolerance=3e-2)
