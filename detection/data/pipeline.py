"""The tf.data input pipeline: records -> batches of model inputs.

``make_dataset`` yields, per batch of B = config.BATCH_SIZE images, a dict of inputs (the
model computes its losses itself, so there are no labels):

  image:        [B, H, W, 3] float32 RGB 0..255, resized and zero-padded (not normalised).
  image_meta:   [B, 12] float32, see detection/core/image_meta.py.
  gt_class_ids: [B, M] int32, M = MAX_GT_INSTANCES; 0 = padding; crowd boxes carry the
                negative of their class id (matterport's convention).
  gt_boxes:     [B, M, 4] float32 [y1, x1, y2, x2] model-input pixels; padding rows zero.
  gt_masks:     [B, M, mh, mw] float32 in {0, 1}: each mask cropped to its box and resized
                to MINI_MASK_SHAPE (mini masks); zeros for datasets without masks. With
                USE_MASK false the masks are [B, M, 1, 1] zeros, to save memory.

Shapes: IMAGE_RESIZE_MODE square gives a static H = W = IMAGE_MAX_DIM. With pad64 / none the
images of a batch differ in size: they are zero-padded (bottom, right) to the largest of the
batch (``padded_batch``) and image_meta's input shape is set to that padded size; H, W are
then None in the static shape. The batch size is static (drop_remainder=True), as
``batch_slice`` in the model needs.

Order and randomness: the per-image work (decode, augment, resize, pad, mini masks; see
detection/data/example.py) runs in ``tf.numpy_function`` inside a parallel ``map``
(AUTOTUNE, deterministic order). Training shuffles the record order every epoch with
``seed`` and seeds each read's augmentation with (seed, position in the stream), so the same
seed gives the same batches however the threads are scheduled. Unreadable images are skipped
(filtered out) and counted in ``dataset.report``, as are truncated JPEGs (decoded as far as
they go, see detection/data/images.py), GT rows truncated to M and boxes dropped by
augmentation.
"""

import atexit
import dataclasses
import threading
import time

import numpy as np
import tensorflow as tf

from detection.core.image_meta import IMAGE_META_SIZE, with_input_shape
from detection.data.augment import Augmenter
from detection.data.example import gt_mask_shape, load_example
from detection.data.resize import geometry_from_config, resize_method
from detection.data.validation import ValidationReport

INPUT_KEYS = ("image", "image_meta", "gt_class_ids", "gt_boxes", "gt_masks")

_exiting = threading.Event()


@atexit.register
def _quiesce_readers_at_exit():
    """Stops the pipeline's Python readers before the interpreter finalises.

    An iterator still alive at exit (a script's global) is destroyed during finalisation,
    and TF waits there for reader threads that need the GIL the finalising thread holds: a
    hang or ``terminate called without an active exception``. From here on every read fails
    at once, so the readers fill their buffers with errors and park without Python.
    """
    _exiting.set()
    if _readers_made.is_set():
        time.sleep(0.2)  # let reads already inside Python finish


_readers_made = threading.Event()


def _refuse_when_exiting():
    _readers_made.set()
    if _exiting.is_set():
        raise RuntimeError("interpreter exiting: input pipeline stopped")


def make_dataset(dataset, config, training, seed=None, repeat=None, drop_remainder=True, batch_size=None,
                 start=0):
    """A tf.data.Dataset of input batches (see the module docstring) for ``dataset``.

    dataset: a detection.data.records.Dataset; config: the Config.
    training: shuffle every epoch and augment (config.AUGMENTATION); else the records in order.
    seed: shuffle and augmentation seed, default config.SEED.
    repeat: loop forever (default: when training), for ``fit(steps_per_epoch=...)``; pass e
        over the records is then shuffled by (seed, e), whichever iterator reads it. A training
        dataset that does not repeat reshuffles at each new iteration, but its augmentation
        seeds restart with the positions (0, 1, ...) of each pass.
    drop_remainder: keep the batch size static (the model needs it); a partial last batch of
        a finite dataset is dropped. For every image use make_inference_batches.
    batch_size: images per batch, default config.BATCH_SIZE (the global batch); one replica's
        IMAGES_PER_GPU when each replica gets batches of its own (engine.distribute.ShardedInput).
    start: a repeating training stream's first position (images already read by earlier
        steps): it yields what the stream from 0 yields from there on, same records, same
        augmentation (exactly so while no image was skipped as unreadable: each one skipped
        before ``start`` shifts the stream by one image). Positions are skipped, not read.
    """
    seed = config.SEED if seed is None else int(seed)
    repeat = training if repeat is None else repeat
    if start and not (training and repeat):
        raise ValueError(f"make_dataset: start={start} needs a repeating training stream")
    batch_size = batch_size or config.BATCH_SIZE
    records = dataset.records
    if drop_remainder and len(records) < batch_size:
        raise ValueError(f"dataset {dataset.name} has {len(records)} images, fewer than "
                         f"BATCH_SIZE {batch_size}: no full batch can be made")
    augmenter = Augmenter(config.AUGMENTATION, config.MIN_BOX_VISIBILITY) if training and config.AUGMENTATION else None
    report = dataset.report

    def load(position, index):
        _refuse_when_exiting()
        example = load_example(records[int(index)], config, report, augmenter,
                               seed=_read_seed(seed, int(position)))
        return _as_outputs(example, config, with_gt=True)

    indices = _record_order(len(records), training, repeat, seed, start)
    examples = indices.enumerate(start=start).map(
        lambda position, index: _numpy_map(load, [position, index], config, with_gt=True),
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    examples = _skip_unreadable(examples)
    batches = _batch(examples, config, batch_size, drop_remainder)
    if repeat:
        # The filter above hides that the stream never ends; said here, tf.distribute keeps the
        # static batch size on several workers (else it allows a partial last batch: shape None).
        batches = batches.apply(tf.data.experimental.assert_cardinality(tf.data.INFINITE_CARDINALITY))
    return batches.prefetch(tf.data.AUTOTUNE)


@dataclasses.dataclass
class InferenceBatch:
    """One batch for evaluation or inference.

    inputs: {"image": [B, H, W, 3] float32, "image_meta": [B, 12] float32}; rows past
        ``num_real`` are zero padding (the last batch is padded to the static batch size).
    records: the Records of the real rows, in order.
    """

    inputs: dict
    records: list

    @property
    def num_real(self):
        return len(self.records)


def make_inference_batches(records, config, batch_size=None, report=None):
    """Yields InferenceBatch objects over ``records`` (a list of Record, or a Dataset), in order,
    every readable image exactly once; a batch not full is padded with zero rows.

    A batch holds images of one model-input size only (a run of consecutive records of one
    size; IMAGE_RESIZE_MODE square gives one size to all): an image is never padded to a
    neighbour's larger size, so its detections do not depend on what it is batched with (in
    the normalized box frame the input size is every box's scale), and a batch is what
    matterport's detect() accepts. The decoding runs in parallel in tf.data, in order.

    batch_size: default config.BATCH_SIZE. report: where unreadable images are counted
    (default the Dataset's report, or a fresh one for a plain list).
    """
    if hasattr(records, "records"):
        report = report or records.report
        records = records.records
    report = report or ValidationReport("inference")
    batch_size = batch_size or config.BATCH_SIZE
    sizes = [geometry_from_config(r.height, r.width, config).padded_shape for r in records]

    def load(index):
        _refuse_when_exiting()
        return _as_outputs(load_example(records[int(index)], config, report, with_gt=False),
                           config, with_gt=False, index=int(index))

    examples = tf.data.Dataset.range(len(records)).map(
        lambda index: _numpy_map(load, [index], config, with_gt=False),
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    examples = _skip_unreadable(examples).prefetch(tf.data.AUTOTUNE)
    pending = []
    for example in examples.as_numpy_iterator():
        index = int(example["index"])
        if pending and (len(pending) == batch_size or sizes[int(pending[0]["index"])] != sizes[index]):
            yield _inference_batch(pending, records, batch_size)
            pending = []
        pending.append(example)
    if pending:
        yield _inference_batch(pending, records, batch_size)


def _inference_batch(examples, records, batch_size):
    """Examples of one input size -> an InferenceBatch, zero rows to ``batch_size``."""
    inputs = {key: _pad_rows(np.stack([e[key] for e in examples]), batch_size) for key in ("image", "image_meta")}
    inputs["image"] = inputs["image"].astype(np.float32)
    return InferenceBatch(inputs, [records[int(e["index"])] for e in examples])


def _skip_unreadable(examples):
    """(ok, example) elements -> the examples whose image was readable."""
    return examples.filter(_is_readable).map(_example_only)


def _is_readable(ok, example):
    return ok


def _example_only(ok, example):
    return example


def _record_order(count, training, repeat, seed, start=0):
    """Record indices in reading order: 0..count-1 (forever when ``repeat``), shuffled when training;
    from position ``start`` of that order (training and repeating only).

    Training and repeating: pass e is the permutation seeded by (seed, e), the same in every
    iterator of the dataset. Keras fit under a tf.distribute strategy iterates a dataset once to
    build the model before training, so a shuffle that changes with each new iterator would make
    one device and several replicas train on different orders.
    """
    if training and repeat:
        first_pass, offset = divmod(int(start), count) if count else (0, 0)
        return tf.data.Dataset.range(first_pass, tf.int64.max).flat_map(
            lambda epoch: tf.data.Dataset.from_tensor_slices(tf.random.experimental.stateless_shuffle(
                tf.range(count, dtype=tf.int64), seed=tf.stack([tf.constant(seed, tf.int64), epoch])))).skip(offset)
    indices = tf.data.Dataset.range(count)
    if training:
        indices = indices.shuffle(count, seed=seed, reshuffle_each_iteration=True)
    return indices.repeat() if repeat else indices


def shard_seed(seed, index):
    """The seed of shard ``index`` of the records (a worker's share): ``seed`` itself for shard 0
    (one device reads as it always did), an independent one for each other shard, so that two
    workers' shuffles and augmentations do not repeat each other."""
    return seed if index == 0 else int(np.random.SeedSequence([seed, 1 << 32, index]).generate_state(1)[0])


def _read_seed(seed, position):
    """A 32-bit seed for the read at ``position`` of the stream, independent across positions."""
    return int(np.random.SeedSequence([seed, position]).generate_state(1)[0])


def _as_outputs(example, config, with_gt, index=0):
    """load_example's dict -> the flat tuple _numpy_map declares: (ok, arrays...)."""
    if example is None:
        example = _placeholder(config, with_gt)
        ok = False
    else:
        ok = True
    arrays = [example["image"], example["image_meta"]]
    if with_gt:
        arrays += [example["gt_class_ids"], example["gt_boxes"], example["gt_masks"]]
    else:
        arrays.append(np.int64(index))
    return (np.bool_(ok), *arrays)


def _placeholder(config, with_gt):
    """Zero arrays for a skipped image (filtered out later), of the shapes _numpy_map's
    ensure_shape checks before the filter sees them: [IMAGE_MAX_DIM, IMAGE_MAX_DIM, 3] in
    square mode (any other size stops the pipeline), [1, 1, 3] where the size is free."""
    m = config.MAX_GT_INSTANCES
    image_shape = [d or 1 for d in _image_shape(config)]
    example = {"image": np.zeros(image_shape, _pixel_dtype(config)),
               "image_meta": np.zeros(IMAGE_META_SIZE, np.float32)}
    if with_gt:
        example.update(gt_class_ids=np.zeros(m, np.int32), gt_boxes=np.zeros((m, 4), np.float32),
                       gt_masks=np.zeros((m,) + gt_mask_shape(config), np.uint8))
    return example


def _numpy_map(fn, args, config, with_gt):
    """Runs ``fn`` in tf.numpy_function and gives the results their static shapes.

    Returns (ok: bool scalar, example: dict of tensors).
    """
    m = config.MAX_GT_INSTANCES
    specs = {"image": (tf.as_dtype(_pixel_dtype(config)), _image_shape(config)),
             "image_meta": (tf.float32, [IMAGE_META_SIZE])}
    if with_gt:
        specs.update(gt_class_ids=(tf.int32, [m]), gt_boxes=(tf.float32, [m, 4]),
                     gt_masks=(tf.uint8, [m, *gt_mask_shape(config)]))
    else:
        specs["index"] = (tf.int64, [])
    outputs = tf.numpy_function(fn, args, [tf.bool] + [dtype for dtype, _ in specs.values()], stateful=False)
    ok = tf.ensure_shape(outputs[0], [])
    example = {name: tf.ensure_shape(t, shape) for (name, (_, shape)), t in zip(specs.items(), outputs[1:])}
    return ok, example


def _pixel_dtype(config):
    """The dtype of a resized image: uint8, or float32 for a resize method that keeps the
    interpolated values (ResizeMethod.pixel_dtype)."""
    return resize_method(config.IMAGE_RESIZE_METHOD).pixel_dtype


def _image_shape(config):
    """Static shape of one example's image: [D, D, 3] in a fixed-size mode (square), [None, None, 3] otherwise."""
    return list(config.IMAGE_SHAPE)


def _batch(examples, config, batch_size, drop_remainder):
    """Batches (padding image sizes for pad64 / none) and converts image and masks to float32."""
    if config.IMAGE_SHAPE[0] is not None:  # every image has the fixed size
        batches = examples.batch(batch_size, drop_remainder=drop_remainder)
    else:
        batches = examples.padded_batch(batch_size, drop_remainder=drop_remainder)
    return batches.map(_to_model_dtypes, num_parallel_calls=tf.data.AUTOTUNE)


def _to_model_dtypes(batch):
    """uint8 image and masks -> float32 (after batching: fewer, larger casts); image_meta's
    input shape set to the batch's padded size (it differs from the per-image one only with
    padded_batch)."""
    batch = dict(batch)
    batch["image"] = tf.cast(batch["image"], tf.float32)
    if "gt_masks" in batch:
        batch["gt_masks"] = tf.cast(batch["gt_masks"], tf.float32)
    shape = tf.shape(batch["image"])
    batch["image_meta"] = with_input_shape(batch["image_meta"], shape[1], shape[2])
    return batch


def _pad_rows(array, rows):
    """Zero-pads ``array`` [n, ...] to [rows, ...]."""
    if len(array) == rows:
        return array
    padded = np.zeros((rows,) + array.shape[1:], array.dtype)
    padded[: len(array)] = array
    return padded
