"""Run by test_distributed_equivalence.py in its own process: the CPU is split into 2 logical
devices before TensorFlow initialises, which pytest's process (TF already running) cannot do.

Prints one line "RESULT <json>" with what the test asserts.
"""
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from detection.engine.distribute import make_strategy  # noqa: E402

two, info = make_strategy(cpu_replicas=2)  # first, before any TF op

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from engine_toy import build_toy_model, toy_arrays, toy_dataset  # noqa: E402

from detection.config import Config  # noqa: E402
from detection.engine.optimizer import make_optimizer  # noqa: E402

one = tf.distribute.OneDeviceStrategy("/cpu:0")
GLOBAL_BATCH = 4
# Clipping small enough to act on every step, and weight decay, so both paths are exercised.
CONFIG = Config({"LEARNING_MOMENTUM": 0.9, "GRADIENT_CLIP_NORM": 0.01, "WEIGHT_DECAY": 0.01})


class Snapshots(keras.callbacks.Callback):
    """Weights before training and after the first step."""

    def on_train_begin(self, logs=None):
        self.initial = [np.asarray(w) for w in self.model.weights]

    def on_train_batch_end(self, batch, logs=None):
        if not hasattr(self, "first_step"):
            self.first_step = [np.asarray(w) for w in self.model.weights]


def run(strategy, make_opt, steps, epochs, dataset=None):
    """Returns final weights, history, the model and its Snapshots."""
    keras.utils.set_random_seed(3)  # same initial weights in every run
    with strategy.scope():
        model = build_toy_model(track_batch=True)
        model.compile(make_opt())
    data = dataset if dataset is not None else toy_dataset(24, GLOBAL_BATCH)
    snaps = Snapshots()
    history = model.fit(data, steps_per_epoch=steps, epochs=epochs, verbose=0, shuffle=False, callbacks=[snaps]).history
    return [np.asarray(w) for w in model.weights], history, model, snaps


def max_diff(a, b):
    return float(max(np.abs(x - y).max() for x, y in zip(a, b)))


def engine_opt():
    return make_optimizer(CONFIG, 0.1)


def keras_opt():
    return keras.optimizers.SGD(0.1, momentum=0.9, global_clipnorm=0.01)


result = {"replicas": info.replicas, "devices": list(info.devices)}

w1, h1, _, s1 = run(one, engine_opt, steps=3, epochs=2)
w2, h2, _, s2 = run(two, engine_opt, steps=3, epochs=2)
result["initial_diff"] = max_diff(s1.initial, s2.initial)
result["one_step_diff"] = max_diff(s1.first_step, s2.first_step)
result["one_step_moved"] = max_diff(s1.first_step, s1.initial)
result["six_step_diff"] = max_diff(w1, w2)
result["history_one"], result["history_two"] = h1, h2

k1 = run(one, keras_opt, steps=1, epochs=1)[0]
k2 = run(two, keras_opt, steps=1, epochs=1)[0]
result["keras_clip_diff"] = max_diff(k1, k2)

# float16 loss scaling: the second replica's half of the batch overflows in the backward pass.
fp16 = CONFIG.replace(MIXED_PRECISION="float16", GRADIENT_CLIP_NORM=0.0, WEIGHT_DECAY=0.0)
arrays = toy_arrays(GLOBAL_BATCH)
arrays["image"][GLOBAL_BATCH // 2:] *= 1e5
overflow = tf.data.Dataset.from_tensors(arrays).repeat()
keras.config.set_dtype_policy("mixed_float16")
try:
    after, _, model, snaps = run(two, lambda: make_optimizer(fp16, 0.1), steps=1, epochs=1, dataset=overflow)
finally:
    keras.config.set_dtype_policy("float32")
scale = model.optimizer.dynamic_scale.value
result["fp16_optimizer"] = type(model.optimizer).__module__ + "." + type(model.optimizer).__name__
result["fp16_weights_finite"] = bool(all(np.isfinite(w).all() for w in after))
result["fp16_weights_changed"] = max_diff(snaps.initial, after)
result["fp16_scale_per_replica"] = [float(v) for v in two.experimental_local_results(scale)]
result["fp16_iterations"] = int(model.optimizer.iterations.numpy())

print("RESULT " + json.dumps(result))
