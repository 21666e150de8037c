"""DetectionLayer: RCNN class probabilities and box deltas -> final detections per image.

Class-specific boxes are decoded from each RoI, clipped to the image window, and reduced by
a batched per-class NMS (``tf.image.combined_non_max_suppression``: one op for all classes
and images, no Python loop) at DETECTION_NMS_THRESHOLD, keeping scores >=
DETECTION_MIN_CONFIDENCE and at most DETECTION_MAX_INSTANCES per image. A RoI may yield
detections of several classes, as in Detectron2.
"""

import keras
import tensorflow as tf

from detection.config import Config
from detection.core import boxes as box_ops
from detection.core.image_meta import boxes_to_original


@keras.saving.register_keras_serializable(package="detection")
class DetectionLayer(keras.layers.Layer):
    """Inputs: rois [B, R, 4] input pixels (zero rows = padding), class_probs [B, R, NC],
    bbox_deltas [B, R, NC, 4], image_meta [B, 12].

    Outputs (D = DETECTION_MAX_INSTANCES), padding rows zero with class 0:
      boxes [B, D, 4] input pixels, boxes_original [B, D, 4] original-image pixels,
      class_ids [B, D] int32 (1..NC-1), scores [B, D] float32, num_detections [B] int32.
    """

    def __init__(self, config, **kwargs):
        kwargs.setdefault("dtype", "float32")  # targets, NMS and losses stay float32 under mixed precision
        super().__init__(**kwargs)
        self.config = config

    def call(self, rois, class_probs, bbox_deltas, image_meta):
        c = self.config
        rois = tf.cast(rois, tf.float32)
        probs = tf.cast(class_probs, tf.float32)[:, :, 1:]
        deltas = tf.cast(bbox_deltas, tf.float32)[:, :, 1:, :]
        image_meta = tf.cast(image_meta, tf.float32)
        boxes = box_ops.decode(deltas, rois[:, :, None, :], c.BBOX_STD_DEV)  # [B, R, NC-1, 4]
        window = image_meta[:, 7:11][:, None, None, :]
        boxes = box_ops.clip(boxes, window)
        # Padding RoIs must not produce detections.
        probs = probs * tf.cast(tf.logical_not(box_ops.is_zero_area(rois)), tf.float32)[..., None]
        boxes, scores, classes, valid = tf.image.combined_non_max_suppression(
            tf.stop_gradient(boxes), tf.stop_gradient(probs),
            max_output_size_per_class=c.DETECTION_MAX_INSTANCES, max_total_size=c.DETECTION_MAX_INSTANCES,
            iou_threshold=c.DETECTION_NMS_THRESHOLD, score_threshold=c.DETECTION_MIN_CONFIDENCE,
            clip_boxes=False)
        is_valid = tf.sequence_mask(valid, c.DETECTION_MAX_INSTANCES)
        class_ids = tf.where(is_valid, tf.cast(classes, tf.int32) + 1, 0)
        boxes = tf.where(is_valid[..., None], boxes, 0.0)
        scores = tf.where(is_valid, scores, 0.0)
        original = tf.where(is_valid[..., None], boxes_to_original(boxes, image_meta), 0.0)
        return boxes, original, class_ids, scores, tf.cast(valid, tf.int32)

    def compute_output_spec(self, rois, class_probs, bbox_deltas, image_meta):
        b, d = rois.shape[0], self.config.DETECTION_MAX_INSTANCES
        return (keras.KerasTensor((b, d, 4), "float32"), keras.KerasTensor((b, d, 4), "float32"),
                keras.KerasTensor((b, d), "int32"), keras.KerasTensor((b, d), "float32"),
                keras.KerasTensor((b,), "int32"))

    def get_config(self):
        return {**super().get_config(), "config": self.config.to_dict()}

    @classmethod
    def from_config(cls, config):
        return cls(config=Config(config.pop("config")), **config)
