"""Run by test_detector_equivalence.py in its own process (the CPU must be split into 2 logical
devices before TensorFlow starts): one SGD step of the real detector on a global batch of 4
images, on one device (IMAGES_PER_GPU 4) and on 2 replicas (IMAGES_PER_GPU 2).

Sampling takes every candidate anchor and RoI (counts above what exists, fractions 1), so the
random samplers choose the same sets in both runs; BatchNorm is frozen (per-replica batch
statistics would differ by design). Prints "RESULT <json>".
"""
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from detection.engine.distribute import make_strategy  # noqa: E402

two, info = make_strategy(cpu_replicas=2)  # first, before any TF op

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from detection.modeling.detector import Detector  # noqa: E402
from tests.model_fixtures import batch, tiny_config  # noqa: E402

TAKE_ALL = dict(RPN_TRAIN_ANCHORS_PER_IMAGE=4096, RPN_POSITIVE_FRACTION=1.0, POST_NMS_ROIS_TRAINING=64,
                TRAIN_ROIS_PER_IMAGE=96, ROI_POSITIVE_RATIO=1.0, TRAIN_BN=False)
BOXES = [[], [[8, 8, 40, 30]], [[20, 20, 60, 50], [4, 30, 24, 60]], [[30, 2, 62, 40]]]


def one_step(strategy, images_per_replica):
    config = tiny_config(IMAGES_PER_GPU=images_per_replica, **TAKE_ALL)
    inputs = batch(config, BOXES, [[], [1], [2, 1], [2]])
    keras.utils.set_random_seed(5)
    with strategy.scope():
        detector = Detector(config)
        detector.training_model.compile(keras.optimizers.SGD(0.01))
    initial = [np.asarray(w) for w in detector.training_model.trainable_weights]
    history = detector.training_model.fit(tf.data.Dataset.from_tensors(inputs), epochs=1, verbose=0,
                                          shuffle=False).history
    after = [np.asarray(w) for w in detector.training_model.trainable_weights]
    return initial, after, {k: float(v[-1]) for k, v in history.items()}


i1, w1, h1 = one_step(tf.distribute.OneDeviceStrategy("/cpu:0"), 4)
i2, w2, h2 = one_step(two, 2)
result = {
    "replicas": info.replicas,
    "initial_diff": float(max(np.abs(a - b).max() for a, b in zip(i1, i2))),
    "moved": float(max(np.abs(a - b).max() for a, b in zip(w1, i1))),
    "step_diff": float(max(np.abs(a - b).max() for a, b in zip(w1, w2))),
    "logs_one": h1, "logs_two": h2,
}
print("RESULT " + json.dumps(result))
