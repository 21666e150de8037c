"""A tiny shapes detector trained once per test session, for end-to-end tests of the tools.

    def test_something(trained_shapes):  # tests/conftest.py makes the fixture available
        config, weights_path, dataset = trained_shapes

The model OVERFITS the 4 fixed images of ``dataset`` (64 px shapes, SEED 42; the train
subset of ``config``): one batch of all 4, no augmentation, 300 SGD steps at lr 0.02 with
momentum 0.9 and global-norm clipping 5. On those images its detections are right: every GT
box has a detection of its class at IoU >= 0.7 (0.87 on the worst box when written; 200
steps left one at 0.70), scores above 0.99, no extra detection. Not a model of shapes in
general: on other images it is poor.

Files in the session's tmp folder: ``weights_path`` (``tiny_shapes.weights.h5``) and, beside
it, ``config.yaml`` (the resolved config, for tools that take ``--config``; its train subset
is ``dataset``). Deterministic on one machine: keras.utils.set_random_seed(config.SEED) before
building and TensorFlow's op determinism while training (other CPUs may pick other kernels).
About 55 s (imports and tracing included) on 2 CPU cores; up to 3 minutes when they are busy.
"""

import contextlib
import fcntl
import os
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]

STEPS = 300
LEARNING_RATE = 0.02

# configs/shapes.yaml at half the size: 64 px images, anchors halved, narrow layers.
OVERRIDES = [
    "SHAPES_IMAGE_SIZE=64", "IMAGE_MIN_DIM=64", "IMAGE_MAX_DIM=64",
    "SHAPES_TRAIN_COUNT=4", "SHAPES_VAL_COUNT=4", "IMAGES_PER_GPU=4",
    "TINY_BACKBONE_WIDTH=8", "TOP_DOWN_PYRAMID_SIZE=32", "FPN_CLASSIF_FC_LAYERS_SIZE=64",
    "RPN_ANCHOR_SCALES=[11.4,16.4,23.6,32,64]", "RPN_TRAIN_ANCHORS_PER_IMAGE=64",
    "PRE_NMS_LIMIT=300", "POST_NMS_ROIS_TRAINING=100", "POST_NMS_ROIS_INFERENCE=50",
    "TRAIN_ROIS_PER_IMAGE=32", "MINI_MASK_SHAPE=[28,28]", "MAX_GT_INSTANCES=8",
    "DETECTION_MAX_INSTANCES=10", "LR_WARMUP_STEPS=0", f"LEARNING_RATE={LEARNING_RATE}",
]


def train_tiny_shapes(directory, steps=STEPS):
    """Trains the tiny shapes model into ``directory``; returns (config, weights_path, dataset).

    weights_path: a pathlib.Path to a ``.weights.h5`` file (Detector.save_weights).
    dataset: the 4 training images (a detection.data.records.Dataset, boxes in original pixels).
    """
    import keras
    import tensorflow as tf

    from detection.config import Config
    from detection.data.datasets import load_dataset
    from detection.data.pipeline import make_dataset
    from detection.modeling.detector import Detector

    config = Config.from_yaml(REPO / "configs" / "shapes.yaml", overrides=OVERRIDES)
    keras.utils.set_random_seed(config.SEED)
    dataset = load_dataset(config, "train")
    # The 4 images are exactly one batch: take it once and feed the same tensors every step.
    batch = next(iter(make_dataset(dataset, config, training=False, repeat=False)))
    detector = Detector(config)
    optimizer = keras.optimizers.SGD(config.LEARNING_RATE, momentum=config.LEARNING_MOMENTUM,
                                     global_clipnorm=config.GRADIENT_CLIP_NORM)
    detector.compile(optimizer)
    with _op_determinism():
        detector.training_model.fit(tf.data.Dataset.from_tensors(batch).repeat(), steps_per_epoch=steps,
                                    epochs=1, verbose=0, shuffle=False)
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    weights_path = directory / "tiny_shapes.weights.h5"
    detector.save_weights(weights_path)
    config.dump(directory / "config.yaml")
    return config, weights_path, dataset


@contextlib.contextmanager
def _op_determinism():
    """TensorFlow's deterministic kernels for the block, then the previous setting back (it is
    process-wide). Without them two runs of 300 steps ended on different weights (multi-
    threaded float reductions differ in the last bit, and SGD amplifies it); 20 steps did not."""
    from tensorflow.python.framework import config as tf_config

    was_enabled = tf_config.is_op_determinism_enabled()
    tf_config.enable_op_determinism()
    try:
        yield
    finally:
        if not was_enabled:
            tf_config.disable_op_determinism()


@pytest.fixture(scope="session")
def trained_shapes(tmp_path_factory):
    """(config, weights_path, dataset) of the tiny overfitted shapes model (see module docstring).

    Trained once per run: under pytest-xdist the workers share one folder beside their own
    temporary folders, and the first to take its lock trains while the others wait, then load."""
    folder = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        folder = folder.parent  # the run's folder, shared by every worker
    folder = folder / "trained_shapes"
    folder.mkdir(exist_ok=True)
    with open(folder / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not (folder / "done").exists():
                result = train_tiny_shapes(folder)
                (folder / "done").touch()
                return result
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return _trained_tiny_shapes(folder)


def _trained_tiny_shapes(folder):
    """What train_tiny_shapes(folder) returned, from the files it wrote there."""
    from detection.config import Config
    from detection.data.datasets import load_dataset

    config = Config.from_yaml(folder / "config.yaml")
    return config, folder / "tiny_shapes.weights.h5", load_dataset(config, "train")
