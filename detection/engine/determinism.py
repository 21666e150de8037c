"""TensorFlow op determinism during training (config DETERMINISTIC_OPS).

Why it matters on CPUs: ``tf.image.crop_and_resize``'s CPU gradient adds the crops of one
image from several threads without locking (tensorflow/tensorflow#42033), so where RoIs
overlap, which they always do in a detector, it sometimes drops contributions to the feature
maps' gradient. Under op determinism TF runs that gradient serially and it is exact; the train
step of the benchmark detector did not get measurably slower (docs/BENCHMARKS.md).

On GPUs TF has no deterministic crop_and_resize gradient and raises under op determinism
(tensorflow/tensorflow#48905), so there determinism needs ROI_ALIGN_MODE gather.

Modes: "cpu" (default) turns it on when no GPU is visible; "always"; "never".
"""

import tensorflow as tf
from tensorflow.python.framework import config as tf_config  # is/disable_op_determinism: not exported

from detection.layers.roi_align import roi_align_mode


def wants_op_determinism(config, has_gpu):
    """Whether training under ``config`` runs with op determinism on a machine with or without
    GPUs; raises ValueError for a combination TF cannot run."""
    mode = config.DETERMINISTIC_OPS
    if mode == "always" and has_gpu and not roi_align_mode(config.ROI_ALIGN_MODE).deterministic_gpu_gradient:
        raise ValueError(f"DETERMINISTIC_OPS always on a GPU needs ROI_ALIGN_MODE gather: TensorFlow has no "
                         f"deterministic GPU gradient for {config.ROI_ALIGN_MODE} (tensorflow/tensorflow#48905)")
    return mode == "always" or (mode == "cpu" and not has_gpu)


class OpDeterminism:
    """Context manager: op determinism on (when ``enabled``) inside, the previous state after,
    so that one training run in a process does not change the next.

    Random ops then need a seed: the trainer sets the global one (keras.utils.set_random_seed)."""

    def __init__(self, enabled):
        self.enabled = enabled

    def __enter__(self):
        self.previous = tf_config.is_op_determinism_enabled()
        if self.enabled and not self.previous:
            tf.config.experimental.enable_op_determinism()
        return self

    def __exit__(self, *exc):
        if self.enabled and not self.previous:
            tf_config.disable_op_determinism()
