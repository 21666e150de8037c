"""The five losses, each added with ``add_loss`` inside its layer's ``call``.

Every loss is a mean over images of a per-image value, so that the mean over replicas (what
tf.distribute computes) equals the loss of one device over the global batch:

  rpn_class_loss   binary cross-entropy over the image's sampled anchors
  rpn_bbox_loss    smooth L1 (beta 1/9) summed over the 4 deltas, mean over positive anchors
  rcnn_class_loss  softmax cross-entropy over the image's sampled RoIs
  rcnn_bbox_loss   smooth L1 (beta 1) on the target class's deltas, mean over positive RoIs
  mask_loss        per-pixel binary cross-entropy on the target class's mask, mean over positive RoIs

An image with no positives contributes exactly 0 to the box and mask losses (divide_no_nan).
Each loss is multiplied by its LOSS_WEIGHTS entry and tracked as a metric of the same name.
"""

import keras
import tensorflow as tf


def smooth_l1(diff, beta):
    """Elementwise smooth L1: 0.5 x^2 / beta below beta, |x| - 0.5 beta above."""
    diff = tf.abs(diff)
    return tf.where(diff < beta, 0.5 * diff * diff / beta, diff - 0.5 * beta)


def _per_image_mean(values, weights):
    """values, weights: [B, N] -> mean over images of sum(values * w) / sum(w) (0 if sum(w) = 0)."""
    per_image = tf.math.divide_no_nan(tf.reduce_sum(values * weights, 1), tf.reduce_sum(weights, 1))
    return tf.reduce_mean(per_image)


def rpn_class_loss(labels, logits):
    """labels: [B, A] int32 (1, 0, -1 = not sampled); logits: [B, A] -> scalar."""
    sampled = tf.cast(labels >= 0, tf.float32)
    target = tf.cast(labels == 1, tf.float32)
    ce = tf.nn.sigmoid_cross_entropy_with_logits(labels=target, logits=logits)
    return _per_image_mean(ce, sampled)


def rpn_bbox_loss(labels, target_deltas, deltas):
    """labels: [B, A]; target_deltas, deltas: [B, A, 4] -> scalar."""
    positive = tf.cast(labels == 1, tf.float32)
    per_anchor = tf.reduce_sum(smooth_l1(deltas - target_deltas, 1.0 / 9.0), axis=-1)
    return _per_image_mean(per_anchor, positive)


def rcnn_class_loss(class_ids, logits, weights):
    """class_ids: [B, T] int32; logits: [B, T, NC]; weights: [B, T] (0 = padding) -> scalar."""
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=class_ids, logits=logits)
    return _per_image_mean(ce, weights)


def _take_class(values, class_ids):
    """values: [B, T, NC, ...], class_ids: [B, T] -> [B, T, ...] the target class's slice."""
    return tf.gather(values, class_ids, axis=2, batch_dims=2)


def rcnn_bbox_loss(class_ids, target_deltas, deltas):
    """class_ids: [B, T]; target_deltas: [B, T, 4]; deltas: [B, T, NC, 4] -> scalar."""
    positive = tf.cast(class_ids > 0, tf.float32)
    predicted = _take_class(deltas, class_ids)
    per_roi = tf.reduce_sum(smooth_l1(predicted - target_deltas, 1.0), axis=-1)
    return _per_image_mean(per_roi, positive)


def mask_loss(class_ids, target_masks, mask_logits):
    """class_ids: [B, T]; target_masks: [B, T, h, w]; mask_logits: [B, T, h, w, NC] -> scalar."""
    positive = tf.cast(class_ids > 0, tf.float32)
    logits = _take_class(tf.transpose(mask_logits, [0, 1, 4, 2, 3]), class_ids)  # [B, T, h, w]
    ce = tf.nn.sigmoid_cross_entropy_with_logits(labels=target_masks, logits=logits)
    return _per_image_mean(tf.reduce_mean(ce, axis=[2, 3]), positive)


@keras.saving.register_keras_serializable(package="detection")
class WeightedLoss(keras.layers.Layer):
    """Adds ``weight x loss_fn(*inputs)`` with add_loss and tracks the unweighted value as a
    metric named ``loss_name``. Passes its first input through (so it can sit in the graph).
    """

    LOSS_FUNCTIONS = {"rpn_class_loss": rpn_class_loss, "rpn_bbox_loss": rpn_bbox_loss,
                      "rcnn_class_loss": rcnn_class_loss, "rcnn_bbox_loss": rcnn_bbox_loss,
                      "mask_loss": mask_loss}

    def __init__(self, loss_name, weight=1.0, **kwargs):
        kwargs.setdefault("name", loss_name)
        kwargs.setdefault("dtype", "float32")  # targets, NMS and losses stay float32 under mixed precision
        super().__init__(**kwargs)
        self.loss_name = loss_name
        self.weight = float(weight)
        self.tracker = keras.metrics.Mean(name=loss_name)

    def call(self, *inputs):
        inputs = [tf.cast(x, tf.float32) if x.dtype.is_floating else x for x in inputs]
        loss = self.LOSS_FUNCTIONS[self.loss_name](*inputs)
        self.add_loss(self.weight * loss)
        self.tracker.update_state(loss)
        return loss

    def compute_output_spec(self, *inputs):
        return keras.KerasTensor((), "float32")

    def get_config(self):
        return {**super().get_config(), "loss_name": self.loss_name, "weight": self.weight}
