"""Batched prediction on images or records, with outputs in original-image pixels.

From Python, as matterport's ``model.detect``::

    predictor = Predictor.from_weights(config, "runs/shapes/final.weights.h5")
    results = predictor.detect([image_a, image_b])   # numpy RGB uint8 images, any sizes
    r = results[0]
    r["rois"]         # [N, 4] float32 [y1, x1, y2, x2] in image_a's pixels
    r["class_ids"]    # [N] int the dataset's own category ids (CATEGORY_IDS; 1..K by default)
    r["class_names"]  # [N] str
    r["scores"]       # [N] float32, descending, each >= the score threshold
    r["masks"]        # [H, W, N] bool full-image masks (Mask R-CNN), matterport's layout

On a dataset's records (what evaluation and stat_gt use)::

    for det in predictor.predict_records(dataset, progress=True):
        det["boxes"]      # [N, 4] float32 [y1, x1, y2, x2], original-image pixels
        det["class_ids"]  # [N] int32 contiguous 1..K (Dataset.category_ids maps them back)
        det["scores"]     # [N] float32, descending
        det["masks"]      # None, or [N, H, W] uint8 {0, 1} at the original image size
        det["proposals"]  # [P, 4] float32 RPN proposals, original-image pixels, by score

Any number of images: they run in batches of ``batch_size`` (the model's batch is static; the
last batch is padded and the padding dropped). Every image is decoded once, at full size.

Precision: a Predictor built from a config (``from_weights``, or without ``detector``) runs in
the config's inference precision: bfloat16 convolutions and dense layers when MIXED_PRECISION
is bfloat16, float32 otherwise (detection/engine/precision.py says what stays float32).

Score threshold: detections scoring below ``score_threshold`` (default DETECTION_MIN_CONFIDENCE)
are dropped here; the model itself keeps everything down to ``min(DETECTION_MIN_CONFIDENCE,
EVAL_MIN_CONFIDENCE)``, so one model serves pictures at 0.7 and COCO evaluation at 0.05 (a
lower threshold never changes which detections pass a higher one: the NMS only lets a box
suppress lower-scoring ones).
"""

import dataclasses

import cv2
import numpy as np
import tensorflow as tf
from tqdm import tqdm

from detection.categories import model_categories
from detection.choices import lookup
from detection.core.image_meta import boxes_to_original
from detection.data.example import load_example
from detection.data.images import resize_bilinear_zero_border
from detection.data.pipeline import InferenceBatch, make_inference_batches
from detection.data.records import Record
from detection.data.threads import thread_map
from detection.data.validation import ValidationReport
from detection.engine.precision import dtype_policy, inference_precision, policy_name
from detection.modeling.detector import Detector, model_min_confidence
from detection.modeling.folding import fold_batch_norms
from detection.modeling.torchvision_masks import paste_masks as paste_masks_in_image


def inference_detector(config, **kwargs):
    """An inference-only Detector (``Detector(config, training=False, **kwargs)``) built in the
    config's inference precision (detection.engine.precision: bfloat16 when MIXED_PRECISION
    is bfloat16, else float32)."""
    with dtype_policy(policy_name(inference_precision(config))):
        return Detector(config, training=False, **kwargs)


def inference_config(config):
    """The config a model runs inference with: on one device (a multi-GPU run's config.yaml
    has GPU_COUNT = its replicas, which inference does not use)."""
    return config.replace(GPU_COUNT=1) if config.GPU_COUNT != 1 else config


class Predictor:
    """Runs an inference-only Detector of a fixed batch size (default config.IMAGES_PER_GPU)."""

    def __init__(self, config, detector=None, batch_size=None, score_threshold=None, mask_threshold=0.5,
                 fold_batch_norm=False):
        """detector: a Detector to run (default: a new one, random weights until loaded, in the
        config's inference precision, see inference_detector).

        score_threshold: detections below it are dropped (default DETECTION_MIN_CONFIDENCE);
        at least the model's own (``model_min_confidence``), which it cannot go below.
        fold_batch_norm: fold the BatchNormalizations into their convolutions now (see
        detection.modeling.folding): on ResNet-50-FPN at 832 x 1344, 26 % less op time per
        image on CPU, the same outputs within float32 rounding. The fold copies the weights it
        touches as they are now, so use it only when the detector's weights will not change
        (not during training, where the AP callback shares the training weights).
        """
        self.config = inference_config(config)
        self.batch_size = batch_size or self.config.IMAGES_PER_GPU
        threshold = self.config.DETECTION_MIN_CONFIDENCE if score_threshold is None else float(score_threshold)
        self.detector = detector or inference_detector(
            self.config, batch_size=self.batch_size, min_confidence=min(threshold, model_min_confidence(self.config)))
        if threshold < self.detector.min_confidence:
            raise ValueError(f"score threshold {threshold} is below the model's own, "
                             f"{self.detector.min_confidence}: build the Detector with min_confidence={threshold}")
        self.score_threshold = threshold
        self.mask_threshold = mask_threshold
        model = self.detector.inference_model
        if fold_batch_norm:
            model, _ = fold_batch_norms(model)
        self.model = model  # what predict_batch runs
        signature = None
        if self.config.IMAGE_SHAPE[0] is None:
            # Images of several sizes: one trace for all of them, where reduce_retracing alone
            # traces the first size, then again with height and width left free.
            signature = [{"image": tf.TensorSpec([self.batch_size, None, None, 3], tf.float32),
                          "image_meta": tf.TensorSpec([self.batch_size, self.config.IMAGE_META_SIZE], tf.float32)}]
        self._forward = tf.function(lambda inputs: model(inputs, training=False), input_signature=signature,
                                    reduce_retracing=True)
        self._categories = None

    @classmethod
    def from_weights(cls, config, weights_path, batch_size=None, score_threshold=None, fold_batch_norm=True,
                     exclude=(), log=print):
        """A Predictor with weights from a file (a ``.weights.h5`` of Detector.save_weights, or a
        legacy Keras 2 ``.h5`` such as matterport's, loaded by layer name; ``exclude`` and
        ``log`` as Detector.load_weights), BatchNormalizations folded (``fold_batch_norm``)."""
        config = inference_config(config)
        threshold = config.DETECTION_MIN_CONFIDENCE if score_threshold is None else float(score_threshold)
        detector = inference_detector(config, batch_size=batch_size,
                                      min_confidence=min(threshold, model_min_confidence(config)))
        detector.load_weights(weights_path, exclude=exclude, log=log)
        return cls(config, detector=detector, batch_size=batch_size, score_threshold=threshold,
                   fold_batch_norm=fold_batch_norm)

    @property
    def categories(self):
        """(class_names, category_ids): K each, for classes 1..K (detection.categories)."""
        if self._categories is None:
            self._categories = model_categories(self.config)
        return self._categories

    # -- images -------------------------------------------------------------------------

    def detect(self, images, progress=False):
        """matterport's ``detect``: a list of images -> a list of result dicts, in order.

        images: numpy arrays [H, W, 3] uint8 RGB of any sizes (grayscale [H, W] is made RGB,
        an alpha channel dropped, as matterport's load_image does).
        Each dict: rois [N, 4] float32 [y1, x1, y2, x2] in the image's pixels, class_ids [N]
        int (the dataset's category ids), class_names [N], scores [N] float32, masks
        [H, W, N] bool (Mask R-CNN; None otherwise).
        """
        names, ids = self.categories
        results = []
        records = array_records(images)
        # The images are in memory: batched here, without predict_records' tf.data pipeline,
        # which costs more than the resize it would run (bench/detect_profile.py).
        batches = in_memory_batches(records, self.config, self.batch_size)
        for det in self._predict_batches(batches, len(records), progress):
            k = det["class_ids"].astype(np.int64) - 1
            masks = det["masks"]
            results.append({
                "rois": det["boxes"], "class_ids": np.asarray(ids, np.int64)[k] if len(k) else np.zeros(0, np.int64),
                "class_names": [names[i] for i in k], "scores": det["scores"],
                # uint8 {0, 1} viewed as bool: the same values without copying H x W x N bytes.
                "masks": None if masks is None else np.transpose(masks, (1, 2, 0)).view(bool),
            })
        return results

    # -- records ------------------------------------------------------------------------

    def predict_batch(self, inputs):
        """inputs: {"image": [B, H, W, 3], "image_meta": [B, 12]} with B = batch_size ->
        the inference model's outputs as numpy arrays (see detection.modeling.detector)."""
        outputs = self._forward({k: tf.convert_to_tensor(inputs[k], tf.float32) for k in ("image", "image_meta")})
        outputs["proposals_original"] = boxes_to_original(outputs["proposals"], inputs["image_meta"])
        return {k: np.asarray(v) for k, v in outputs.items()}

    def predict_records(self, records, progress=False, report=None):
        """Yields one detection dict per readable record (see the module docstring), in order.

        records: a detection.data.records.Dataset or a list of Records. Unreadable images are
        skipped and counted in ``report`` (default: the Dataset's report).
        """
        total = len(records.records if hasattr(records, "records") else records)
        yield from self._predict_batches(make_inference_batches(records, self.config, self.batch_size, report),
                                         total, progress)

    def _predict_batches(self, batches, total, progress):
        """InferenceBatch objects -> one detection dict per real row, in order."""
        bar = tqdm(total=total, desc="predict", unit="img", disable=not progress)
        for batch in batches:
            outputs = self.predict_batch(batch.inputs)
            for i, record in enumerate(batch.records):
                yield self._one_image(outputs, i, record)
            bar.update(batch.num_real)
        bar.close()

    def _one_image(self, outputs, i, record):
        n = int(outputs["num_detections"][i])
        keep = outputs["scores"][i, :n] >= self.score_threshold  # scores are sorted: a prefix
        n = int(np.count_nonzero(keep))
        boxes = outputs["boxes"][i, :n]
        result = {
            "image_id": record.image_id,
            "record": record,
            "boxes": boxes,
            "class_ids": outputs["class_ids"][i, :n],
            "scores": outputs["scores"][i, :n],
            "masks": None,
            "proposals": _drop_padding(outputs["proposals_original"][i], outputs["proposals"][i]),
        }
        if "masks" in outputs:
            paste = lookup(MASK_PASTERS, self.config.MASK_PASTE, "MASK_PASTE")
            result["masks"] = paste(outputs["masks"][i, :n], boxes, record.height, record.width, self.mask_threshold)
        return result


@dataclasses.dataclass(frozen=True)
class _ArrayImage:
    """An image_loader for an image held in memory (detection.data.records.Record)."""

    image: np.ndarray
    index: int

    def __call__(self):
        return self.image

    def __str__(self):
        return f"image {self.index} of the list"


def as_rgb(image, index=0):
    """image [H, W], [H, W, 1], [H, W, 3] or [H, W, 4] -> [H, W, 3] uint8 RGB (ValueError naming
    ``index`` for anything else)."""
    image = np.asarray(image)
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        image = np.repeat(image.reshape(image.shape[0], image.shape[1], 1), 3, axis=2)
    elif image.ndim == 3 and image.shape[2] == 4:
        image = image[:, :, :3]
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"image {index}: expected [H, W, 3] RGB, got shape {list(image.shape)}")
    if image.dtype != np.uint8:
        if np.issubdtype(image.dtype, np.floating) and np.nanmax(image, initial=0) <= 1.0:
            raise ValueError(f"image {index}: float values in [0, 1]; pass uint8 0..255 (or values in 0..255)")
        image = np.clip(np.nan_to_num(image), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(image)


def array_records(images, image_ids=None, paths=None):
    """Records (no annotations) for images held in memory; image_id = position in the list
    (or ``image_ids``), path None (or ``paths``, for messages and results files)."""
    records = []
    for index, image in enumerate(images):
        image = as_rgb(image, index)
        records.append(Record(
            image_id=int(image_ids[index]) if image_ids is not None else index,
            path=paths[index] if paths is not None else None, height=int(image.shape[0]), width=int(image.shape[1]),
            boxes=np.zeros((0, 4), np.float32), class_ids=np.zeros(0, np.int32), iscrowd=np.zeros(0, bool),
            difficult=np.zeros(0, bool), image_loader=_ArrayImage(image, index)))
    return records


def in_memory_batches(records, config, batch_size):
    """make_inference_batches' batches (the same inputs, grouping and zero rows) for records
    whose images are in memory (array_records), built in this thread: for a few images the
    tf.data pipeline costs more than the resize (0.1 to 0.2 s a call, bench/detect_profile.py)."""
    pending = []
    for record in records:
        example = load_example(record, config, ValidationReport("inference"), with_gt=False)
        if pending and (len(pending) == batch_size or pending[0][1]["image"].shape != example["image"].shape):
            yield _in_memory_batch(pending, batch_size)
            pending = []
        pending.append((record, example))
    if pending:
        yield _in_memory_batch(pending, batch_size)


def _in_memory_batch(pending, batch_size):
    """[(record, load_example dict)] of one input size -> an InferenceBatch of batch_size rows."""
    first = pending[0][1]
    images = np.zeros((batch_size,) + first["image"].shape, np.float32)
    metas = np.zeros((batch_size,) + first["image_meta"].shape, np.float32)
    for row, (_, example) in enumerate(pending):
        images[row] = example["image"]
        metas[row] = example["image_meta"]
    return InferenceBatch({"image": images, "image_meta": metas}, [record for record, _ in pending])


def _drop_padding(boxes, input_boxes):
    keep = (input_boxes[:, 2] > input_boxes[:, 0]) & (input_boxes[:, 3] > input_boxes[:, 1])
    return boxes[keep]


def paste_masks(masks, boxes, height, width, threshold=0.5):
    """Pastes box-relative soft masks into full images.

    masks: [N, h, w] float probabilities covering each box; boxes: [N, 4] [y1, x1, y2, x2]
    in the target image's pixels; height, width: the target image size.
    Returns [N, height, width] uint8 {0, 1}.
    """
    out = np.zeros((len(masks), height, width), np.uint8)
    for k, (mask, box) in enumerate(zip(masks, boxes)):
        y1, x1 = int(np.floor(box[0])), int(np.floor(box[1]))
        y2, x2 = int(np.ceil(box[2])), int(np.ceil(box[3]))
        if y2 <= y1 or x2 <= x1:
            continue
        # Resize over the integer-aligned span, then clip it to the image.
        resized = cv2.resize(mask.astype(np.float32), (x2 - x1, y2 - y1), interpolation=cv2.INTER_LINEAR)
        ty1, tx1, ty2, tx2 = max(y1, 0), max(x1, 0), min(y2, height), min(x2, width)
        if ty2 <= ty1 or tx2 <= tx1:
            continue
        crop = resized[ty1 - y1:ty2 - y1, tx1 - x1:tx2 - x1]
        out[k, ty1:ty2, tx1:tx2] = crop >= threshold
    return out


def paste_masks_matterport(masks, boxes, height, width, threshold=0.5):
    """matterport's unmold_mask: each box is whole pixels (the model rounds them in the
    normalized frame), the mask is resized to it with scikit-image's zero-border bilinear
    (detection.data.images.resize_bilinear_zero_border), thresholded at ``threshold``.
    Same arguments and result as paste_masks."""
    out = np.zeros((len(masks), height, width), np.uint8)

    def paste(k):
        y1, x1, y2, x2 = (int(v) for v in np.round(boxes[k]))
        if y2 <= y1 or x2 <= x1:
            return
        resized = resize_bilinear_zero_border(masks[k].astype(np.float32), (y2 - y1, x2 - x1))
        ty1, tx1, ty2, tx2 = max(y1, 0), max(x1, 0), min(y2, height), min(x2, width)
        if ty2 > ty1 and tx2 > tx1:
            out[k, ty1:ty2, tx1:tx2] = resized[ty1 - y1:ty2 - y1, tx1 - x1:tx2 - x1] >= threshold

    # Each mask on its own: spread over the cores (scipy's zoom releases the GIL), same pixels.
    thread_map(paste, range(len(masks)))
    return out


def paste_masks_torchvision(masks, boxes, height, width, threshold=0.5):
    """torchvision's paste_masks_in_image (detection/modeling/torchvision_masks.py: a one-pixel
    border, the box widened by (M + 2) / M, its corners truncated to integers), thresholded at
    ``threshold``. Same arguments and result as paste_masks."""
    probabilities = paste_masks_in_image(masks, np.asarray(boxes, np.float32).reshape(-1, 4)[:, [1, 0, 3, 2]],
                                         height, width)
    return (probabilities >= threshold).astype(np.uint8)


# The MASK_PASTE registry: name (detection/choices.py MASK_PASTES) -> paster(masks, boxes,
# height, width, threshold) -> [N, height, width] uint8.
MASK_PASTERS = {"bilinear": paste_masks, "matterport": paste_masks_matterport, "torchvision": paste_masks_torchvision}
