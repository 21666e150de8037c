"""DetectionLayer: RCNN class probabilities and box deltas -> final detections per image.

Class-specific boxes are decoded from each RoI, clipped to the image window, and reduced by
a batched per-class NMS (``tf.image.combined_non_max_suppression``: one op for all classes
and images, no Python loop) at ``nms_threshold``, keeping at most ``max_instances`` per image,
best scores first. Which (RoI, class) pairs take part is ``classes_per_roi``:

  all  every foreground class of every RoI scoring at least ``min_confidence`` (Detectron2,
       TF Model Garden): a RoI may yield detections of several classes.
  top  only each RoI's most probable class, background included, as matterport's
       refine_detections: a RoI whose top class is background yields nothing, and
       ``min_confidence`` 0 means no score filter.

Example (classes_per_roi all, min_confidence 0.05): a RoI with probabilities
(bg 0.5, cat 0.3, dog 0.2) gives a cat and a dog detection; with top, none (background wins).
"""

import keras
import tensorflow as tf

from detection import choices
from detection.core import boxes as box_ops
from detection.core.frames import from_frame, hw_from_image_shape, to_frame
from detection.core.image_meta import boxes_to_original, parse_image_meta


def _all_foreground(probs):
    """all: every foreground class's probability."""
    return probs[:, :, 1:]


def _top_class(probs):
    """top: the top class's probability, -1 elsewhere (and everywhere when it is background)."""
    foreground = probs[:, :, 1:]
    top = tf.one_hot(tf.argmax(probs, axis=-1, output_type=tf.int32) - 1, tf.shape(foreground)[-1]) > 0
    return tf.where(top, foreground, -1.0)


# The DETECTION_CLASSES_PER_ROI registry (names: detection/choices.py CLASSES_PER_ROI):
# name -> selection(probs [B, R, NC]) -> candidate scores [B, R, NC - 1].
CLASS_SELECTIONS = {"all": _all_foreground, "top": _top_class}
CLASSES_PER_ROI = tuple(CLASS_SELECTIONS)


def candidate_scores(probs, classes_per_roi):
    """probs [B, R, NC] (class 0 background) -> [B, R, NC - 1] scores that may become
    detections: the foreground probabilities (all), or only the top class's with -1
    elsewhere (top; -1 is below any threshold)."""
    return choices.lookup(CLASS_SELECTIONS, classes_per_roi, "DETECTION_CLASSES_PER_ROI")(probs)


@keras.saving.register_keras_serializable(package="detection")
class DetectionLayer(keras.layers.Layer):
    """Inputs: rois [B, R, 4] box frame (zero rows = padding), class_probs [B, R, NC],
    bbox_deltas [B, R, NC, 4], image_meta [B, 12].

    Outputs (D = max_instances), padding rows zero with class 0:
      boxes [B, D, 4] box frame, boxes_input [B, D, 4] input pixels, boxes_original [B, D, 4]
      original-image pixels, class_ids [B, D] int32 (1..NC-1), scores [B, D] float32,
      num_detections [B] int32.

    max_instances, min_confidence, nms_threshold, bbox_std: config DETECTION_MAX_INSTANCES,
    DETECTION_MIN_CONFIDENCE, DETECTION_NMS_THRESHOLD, BBOX_STD_DEV; classes_per_roi: see the
    module docstring (config DETECTION_CLASSES_PER_ROI); frame: the box frame; min_size: candidates
    whose decoded, clipped box has a side under this many input pixels are dropped (config
    DETECTION_MIN_SIZE; torchvision's remove_small_boxes at 0.01).
    """

    def __init__(self, max_instances=100, min_confidence=0.05, nms_threshold=0.3, bbox_std=box_ops.DEFAULT_STD,
                 classes_per_roi="all", frame="pixels", min_size=0.0, **kwargs):
        kwargs.setdefault("dtype", "float32")  # targets, NMS and losses stay float32 under mixed precision
        super().__init__(**kwargs)
        choices.lookup(CLASS_SELECTIONS, classes_per_roi, "DETECTION_CLASSES_PER_ROI")  # fail at build, not call
        self.max_instances = int(max_instances)
        self.min_confidence = float(min_confidence)
        self.nms_threshold = float(nms_threshold)
        self.bbox_std = [float(s) for s in bbox_std]
        self.classes_per_roi = classes_per_roi
        self.frame = frame
        self.min_size = float(min_size)

    def call(self, rois, class_probs, bbox_deltas, image_meta):
        rois = tf.cast(rois, tf.float32)
        probs = tf.cast(class_probs, tf.float32)
        deltas = tf.cast(bbox_deltas, tf.float32)[:, :, 1:, :]
        image_meta = tf.cast(image_meta, tf.float32)
        meta = parse_image_meta(image_meta)
        hw = hw_from_image_shape(meta["image_shape"])
        boxes = box_ops.decode(deltas, rois[:, :, None, :], self.bbox_std)  # [B, R, NC-1, 4]
        window = to_frame(meta["window"], hw, self.frame)[:, None, None, :]
        boxes = box_ops.clip(boxes, window)
        scores = candidate_scores(probs, self.classes_per_roi)
        # Padding RoIs must not produce detections.
        scores = tf.where(box_ops.is_zero_area(rois)[..., None], -1.0, scores)
        if self.min_size > 0:
            pixels = from_frame(boxes, hw, self.frame)
            small = ((pixels[..., 2] - pixels[..., 0] < self.min_size)
                     | (pixels[..., 3] - pixels[..., 1] < self.min_size))
            scores = tf.where(small, -1.0, scores)
        # combined_non_max_suppression keeps scores above its threshold; 0 keeps every
        # candidate (-1 marks non-candidates), which is matterport's "no filter" at 0.
        boxes, scores, classes, valid = tf.image.combined_non_max_suppression(
            tf.stop_gradient(boxes), tf.stop_gradient(scores),
            max_output_size_per_class=self.max_instances, max_total_size=self.max_instances,
            iou_threshold=self.nms_threshold, score_threshold=self.min_confidence, clip_boxes=False)
        is_valid = tf.sequence_mask(valid, self.max_instances)
        class_ids = tf.where(is_valid, tf.cast(classes, tf.int32) + 1, 0)
        boxes = tf.where(is_valid[..., None], boxes, 0.0)
        scores = tf.where(is_valid, scores, 0.0)
        boxes_input = tf.where(is_valid[..., None], from_frame(boxes, hw, self.frame), 0.0)
        original = tf.where(is_valid[..., None], boxes_to_original(boxes, image_meta, self.frame), 0.0)
        return boxes, boxes_input, original, class_ids, scores, tf.cast(valid, tf.int32)

    def compute_output_spec(self, rois, class_probs, bbox_deltas, image_meta):
        b, d = rois.shape[0], self.max_instances
        return (keras.KerasTensor((b, d, 4), "float32"), keras.KerasTensor((b, d, 4), "float32"),
                keras.KerasTensor((b, d, 4), "float32"), keras.KerasTensor((b, d), "int32"),
                keras.KerasTensor((b, d), "float32"), keras.KerasTensor((b,), "int32"))

    def get_config(self):
        return {**super().get_config(), "max_instances": self.max_instances, "min_confidence": self.min_confidence,
                "nms_threshold": self.nms_threshold, "bbox_std": self.bbox_std,
                "classes_per_roi": self.classes_per_roi, "frame": self.frame, "min_size": self.min_size}
