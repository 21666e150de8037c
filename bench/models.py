"""The models and inputs the speed benchmarks time (bench/run.py), at the issue's settings:

ResNet-50-FPN P2-P6, random initialisation, float32, 91 classes, 2-FC 1024 box head,
RPN 2000 pre-NMS / 1000 proposals per image in training, 512 sampled RoIs per image,
2 x 512 x 512 training batches, 8 GT boxes per image.

  detector_training   the real training model (targets, proposals, NMS, sampling, losses)
  backbone_training   ResNet-50 alone, loss = mean of C5: the backbone's own cost
  conv_only_training  backbone + FPN + RPN head + RoIAlign and box head on fixed RoIs, loss =
                      mean squares of the head outputs: every convolution and FC of the
                      detector, none of its targets, proposals, NMS or sampling
  backbone_fpn        forward of backbone + FPN (the floor of inference)

The inference models are timed with their BatchNormalizations folded into the convolutions
(detection.modeling.folding), as Predictor.from_weights and the export run them.

Every training model is compiled with SGD (momentum 0.9) and stepped through ``fit`` like
tools/train.py does, so the harness overhead is the same for all of them.
"""

import os
import time

import keras
import numpy as np
import tensorflow as tf
from timing import time_calls  # bench/timing.py (this folder is on sys.path wherever models is)

from detection.config import Config
from detection.core.image_meta import compose_image_meta
from detection.modeling.backbones import build_backbone, input_convention
from detection.modeling.detector import Detector
from detection.modeling.folding import fold_batch_norms
from detection.modeling.fpn import build_fpn
from detection.modeling.heads import BOX_HEADS, RPN_HEADS
from detection.modeling.normalization import NormalizeImage

GT_PER_IMAGE = 8
CONFIGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "configs")


def bench_config(mask=False, batch_size=2, size=512, **overrides):
    """Config of the benchmark detector: ``size`` x ``size`` square inputs, or with size None
    pad64 inputs of any shape (the 800 x 1333 case, padded to 832 x 1344 by the caller)."""
    resize = ({"IMAGE_RESIZE_MODE": "square", "IMAGE_MIN_DIM": size, "IMAGE_MAX_DIM": size} if size
              else {"IMAGE_RESIZE_MODE": "pad64", "IMAGE_MIN_DIM": 800, "IMAGE_MAX_DIM": 1344})
    return Config.from_yaml(os.path.join(CONFIGS, "base.yaml")).replace(
        BACKBONE="resnet50", BACKBONE_WEIGHTS="none", NUM_CLASSES=91, USE_MASK=mask,
        IMAGES_PER_GPU=batch_size, PRE_NMS_LIMIT=2000, POST_NMS_ROIS_TRAINING=1000,
        TRAIN_ROIS_PER_IMAGE=512, FPN_CLASSIF_FC_LAYERS_SIZE=1024, **resize, **overrides)


def synthetic_batch(config, height, width, batch_size=None, seed=0):
    """Training inputs dict for ``batch_size`` random height x width images (all input pixels),
    GT_PER_IMAGE random boxes of 20..200 px and full mini masks per image."""
    b, m = batch_size or config.IMAGES_PER_GPU, config.MAX_GT_INSTANCES
    rng = np.random.default_rng(seed)
    meta = np.stack([compose_image_meta(i, (height, width, 3), (height, width, 3), (0, 0, height, width), 1.0)
                     for i in range(b)]).astype(np.float32)
    class_ids = np.zeros((b, m), np.int32)
    boxes = np.zeros((b, m, 4), np.float32)
    sides = rng.uniform(20, 200, (b, GT_PER_IMAGE, 2))
    corners = rng.uniform(0, 1, (b, GT_PER_IMAGE, 2)) * (np.array([height, width]) - sides)
    boxes[:, :GT_PER_IMAGE] = np.concatenate([corners, corners + sides], axis=-1)
    class_ids[:, :GT_PER_IMAGE] = rng.integers(1, config.NUM_CLASSES, (b, GT_PER_IMAGE))
    masks = np.zeros((b, m) + tuple(config.MINI_MASK_SHAPE), np.float32)
    masks[:, :GT_PER_IMAGE] = 1.0
    return {"image": rng.uniform(0, 255, (b, height, width, 3)).astype(np.float32), "image_meta": meta,
            "gt_class_ids": class_ids, "gt_boxes": boxes, "gt_masks": masks}


@keras.saving.register_keras_serializable(package="bench")
class MeanSquareLoss(keras.layers.Layer):
    """Adds mean(x^2) of each input with add_loss: a loss that needs no targets."""

    def call(self, *inputs):
        loss = tf.add_n([tf.reduce_mean(tf.square(tf.cast(x, tf.float32))) for x in inputs])
        self.add_loss(loss)
        return loss

    def compute_output_spec(self, *inputs):
        return keras.KerasTensor((), "float32")


def _image_inputs(config, batch_size):
    shape = config.IMAGE_SHAPE
    image = keras.Input(batch_shape=(batch_size, shape[0], shape[1], 3), name="image")
    convention = input_convention(config)
    normalized = NormalizeImage(convention.mean, convention.std, to_bgr=convention.to_bgr)(image)
    return image, normalized


def _compiled(model):
    """``model`` compiled with the optimizer every benchmark uses (SGD, momentum 0.9)."""
    model.compile(keras.optimizers.SGD(0.001, momentum=0.9))
    return model


def detector_training(config):
    """The detector's training model, compiled."""
    return _compiled(Detector(config).training_model)


def backbone_training(config):
    """ResNet-50 alone on the same input, loss = mean(C5^2), compiled."""
    image, normalized = _image_inputs(config, config.IMAGES_PER_GPU)
    c5 = build_backbone(normalized, config)[-1]
    return _compiled(keras.Model({"image": image}, MeanSquareLoss()(c5), name="backbone_training"))


def conv_only_training(config):
    """Backbone + FPN + RPN head + box head (RoIAlign and 2 FC) on fixed random RoIs, compiled.

    Input "rois" [B, TRAIN_ROIS_PER_IMAGE, 4]: see ``fixed_rois``."""
    b = config.IMAGES_PER_GPU
    image, normalized = _image_inputs(config, b)
    rois = keras.Input(batch_shape=(b, config.TRAIN_ROIS_PER_IMAGE, 4), name="rois")
    maps = build_fpn(*build_backbone(normalized, config), config.TOP_DOWN_PYRAMID_SIZE)
    rpn_logits, _, rpn_deltas = RPN_HEADS[config.RPN_HEAD](config)(maps)
    class_logits, _, deltas = BOX_HEADS[config.BOX_HEAD](config)(rois, maps[:4], prefix="conv_only")
    loss = MeanSquareLoss()(rpn_logits, rpn_deltas, class_logits, deltas)
    return _compiled(keras.Model({"image": image, "rois": rois}, loss, name="conv_only_training"))


def fixed_rois(config, height, width, seed=0):
    """[B, TRAIN_ROIS_PER_IMAGE, 4] random boxes of 16..256 px inside the image (all FPN levels)."""
    rng = np.random.default_rng(seed)
    shape = (config.IMAGES_PER_GPU, config.TRAIN_ROIS_PER_IMAGE, 2)
    sides = np.exp(rng.uniform(np.log(16), np.log(256), shape))
    corners = rng.uniform(0, 1, shape) * (np.array([height, width]) - sides)
    return np.concatenate([corners, corners + sides], axis=-1).astype(np.float32)


def backbone_fpn(config, fold=True):
    """Forward model image [1, H, W, 3] -> P2..P6 (inference), BatchNormalizations folded
    into the convolutions as in detector_inference unless ``fold`` is False."""
    image, normalized = _image_inputs(config, 1)
    maps = build_fpn(*build_backbone(normalized, config), config.TOP_DOWN_PYRAMID_SIZE)
    model = keras.Model({"image": image}, maps, name="backbone_fpn")
    return fold_batch_norms(model)[0] if fold else model


class _StepTimer(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.seconds = []

    def on_train_batch_begin(self, batch, logs=None):
        self.start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.seconds.append(time.perf_counter() - self.start)


def time_train_steps(model, inputs, runs, warmup):
    """[seconds of each of ``runs`` fit steps] on a repeated fixed batch, after ``warmup`` steps
    (the first traces the step function)."""
    data = tf.data.Dataset.from_tensors(inputs).repeat()
    if warmup:  # fit with 0 steps would run the endless dataset
        model.fit(data, epochs=1, steps_per_epoch=warmup, shuffle=False, verbose=0)
    timer = _StepTimer()
    model.fit(data, epochs=1, steps_per_epoch=runs, shuffle=False, verbose=0, callbacks=[timer])
    return timer.seconds


def fetch(structure):
    """Copies every tensor of ``structure`` to numpy: a timed call ends when its results exist."""
    return tf.nest.map_structure(lambda t: t.numpy(), structure)


def forward_call(model, inputs):
    """A zero-argument function: one tf.function forward of ``model`` (training=False) on
    ``inputs`` (dict of arrays), results fetched."""
    forward = tf.function(lambda x: model(x, training=False))
    inputs = {k: tf.constant(v) for k, v in inputs.items()}
    return lambda: fetch(forward(inputs))


def time_forward(model, inputs, runs, warmup):
    """[seconds of each of ``runs`` forward calls (``forward_call``)] after ``warmup`` calls."""
    return time_calls(forward_call(model, inputs), runs, warmup)


def matterport_config(size):
    """configs/matterport_coco.yaml at size x size, batch 1: matterport's COCO model."""
    return Config.from_yaml(os.path.join(CONFIGS, "matterport_coco.yaml")).replace(
        IMAGE_MIN_DIM=size, IMAGE_MAX_DIM=size, IMAGES_PER_GPU=1)


def r101_coco_config(size):
    """Ours at matterport_config's settings: keras.applications ResNet-101, 2-FC box head,
    81 classes with masks, 6000 / 1000 proposals, batch 1."""
    return bench_config(mask=True, batch_size=1, size=size).replace(
        BACKBONE="resnet101", NUM_CLASSES=81, PRE_NMS_LIMIT=6000, POST_NMS_ROIS_INFERENCE=1000)


def inference_config(height, width, mask=False):
    """Batch-1 config for height x width inputs: square resize when square, else pad64."""
    return bench_config(mask=mask, batch_size=1, size=height if height == width else None)


def detector_inference(config, height, width, fold=True):
    """(the detector's inference model, its inputs for one synthetic height x width image).

    fold: fold the BatchNormalizations into their convolutions, as Predictor.from_weights
    and the export do (the model users run); False times the model as built."""
    batch = synthetic_batch(config, height, width, batch_size=1)
    model = Detector(config, batch_size=1, training=False).inference_model
    if fold:
        model, _ = fold_batch_norms(model)
    return model, {"image": batch["image"], "image_meta": batch["image_meta"]}
