import keras
import numpy as np
import pytest
from engine_toy import build_toy_model, toy_dataset

from detection.config import Config
from detection.engine import optimizer as engine_optimizer
from detection.engine.optimizer import make_optimizer

BASE = Config({"LEARNING_MOMENTUM": 0.9, "WEIGHT_DECAY": 0.01, "GRADIENT_CLIP_NORM": 0.0})


def dense_and_bn():
    dense = keras.layers.Dense(2, name="rcnn_fc", bias_initializer="ones")
    dense.build((None, 3))
    bn = keras.layers.BatchNormalization(name="conv2_block1_bn", gamma_initializer=keras.initializers.Constant(2.0))
    bn.build((None, 2))
    return dense, bn


def test_weight_decay_is_coupled_l2_and_skips_bias_and_batchnorm():
    dense, bn = dense_and_bn()
    variables = [dense.kernel, dense.bias, bn.gamma, bn.beta]
    before = [np.asarray(v).copy() for v in variables]
    opt = make_optimizer(BASE, learning_rate=0.1)
    zeros = [np.zeros(v.shape, np.float32) for v in variables]
    opt.apply(zeros, variables)
    opt.apply(zeros, variables)
    # Only decay moves the kernel. torch-style coupled L2 with momentum, by hand:
    # v1 = -0.1 x 0.01 w0; w1 = 0.999 w0; v2 = 0.9 v1 - 0.1 x 0.01 w1; w2 = w1 + v2 = 0.997101 w0.
    # Keras' decoupled weight_decay would give (1 - 0.001)^2 = 0.998001 w0.
    np.testing.assert_allclose(np.asarray(dense.kernel), 0.997101 * before[0], rtol=1e-6)
    for v, b in zip(variables[1:], before[1:]):
        np.testing.assert_array_equal(np.asarray(v), b)  # bias, gamma, beta: not decayed
    assert before[2].tolist() == [2.0, 2.0] and before[1].tolist() == [1.0, 1.0]


def test_global_norm_clipping_and_zero_means_off():
    var = keras.Variable(np.zeros(2, np.float32), name="kernel")
    grad = [np.array([3.0, 4.0], np.float32)]  # norm 5
    clipped = make_optimizer(BASE.replace(LEARNING_MOMENTUM=0.0, WEIGHT_DECAY=0.0, GRADIENT_CLIP_NORM=1.0), 1.0)
    clipped.apply(grad, [var])
    np.testing.assert_allclose(np.asarray(var), [-0.6, -0.8], rtol=1e-6)
    var.assign([0.0, 0.0])
    unclipped = make_optimizer(BASE.replace(LEARNING_MOMENTUM=0.0, WEIGHT_DECAY=0.0, GRADIENT_CLIP_NORM=0.0), 1.0)
    assert unclipped.global_clipnorm is None
    unclipped.apply(grad, [var])
    np.testing.assert_allclose(np.asarray(var), [-3.0, -4.0])


def test_precision_choices_pick_optimizer_and_policy():
    assert type(make_optimizer(BASE, 0.1)) is engine_optimizer.SGD
    assert type(make_optimizer(BASE.replace(MIXED_PRECISION="bfloat16"), 0.1)) is engine_optimizer.SGD
    fp16 = make_optimizer(BASE.replace(MIXED_PRECISION="float16"), 0.1)
    assert type(fp16) is engine_optimizer.LossScaleOptimizer
    assert type(fp16.inner_optimizer) is engine_optimizer.SGD
    assert [engine_optimizer.dtype_policy_name(m) for m in ("none", "float16", "bfloat16")] == [
        "float32", "mixed_float16", "mixed_bfloat16"]


@pytest.fixture
def policy():
    def set_policy(name):
        keras.config.set_dtype_policy(name)
    yield set_policy
    keras.config.set_dtype_policy("float32")


def test_keras_compile_wraps_plain_optimizer_but_keeps_ours(policy):
    # Keras 3 compile adds its own LossScaleOptimizer under mixed_float16; ours (a subclass,
    # with the cross-replica finite check) is kept as given.
    policy("mixed_float16")
    model = build_toy_model()
    model.compile(keras.optimizers.SGD(0.1))
    assert type(model.optimizer) is keras.optimizers.LossScaleOptimizer
    ours = make_optimizer(BASE.replace(MIXED_PRECISION="float16"), 0.1)
    model.compile(ours)
    assert model.optimizer is ours


@pytest.mark.parametrize("precision,compute", [("float16", "float16"), ("bfloat16", "bfloat16")])
def test_mixed_precision_trains_with_finite_loss(policy, precision, compute):
    config = BASE.replace(MIXED_PRECISION=precision)
    policy(engine_optimizer.dtype_policy_name(config.MIXED_PRECISION))
    keras.utils.set_random_seed(0)
    model = build_toy_model()
    conv = model.get_layer("conv2_block1_conv")
    assert (conv.compute_dtype, conv.variable_dtype) == (compute, "float32")
    assert model.get_layer("rcnn_loss").compute_dtype == "float32"
    before = np.asarray(conv.kernel).copy()
    model.compile(make_optimizer(config, 0.05))
    history = model.fit(toy_dataset(8, 4), steps_per_epoch=2, epochs=1, verbose=0, shuffle=False).history
    assert np.isfinite(history["loss"][0]) and 0 < history["loss"][0] < 1
    assert np.abs(np.asarray(conv.kernel) - before).max() > 0  # the steps were applied, not skipped
    if precision == "float16":
        assert int(model.optimizer.iterations.numpy()) == 2
