"""Dropping the zero-padding rows of fixed-size box tensors before a head runs, and restoring
the fixed size after, so that inference does no arithmetic on padding.

The proposal and detection layers return a static number of rows per image (POST_NMS_ROIS_
INFERENCE proposals, DETECTION_MAX_INSTANCES detections), padded with all-zero rows at the
end. On a trained model most detection slots are padding (3 detections of 100 slots is
common) and the mask head, the costliest head, would run on all of them.

    rois = TrimPaddingRows()(proposals)      # [B, P, 4] -> [B, n, 4], n = max real rows over B
    ...box head on rois...                   # [B, n, ...]
    masks = PadRows(D)(masks)                # [B, n, ...] -> [B, D, ...], zero rows appended

n is the largest per-image count in the batch (batch rows are one tensor), so with batch 1
the heads run on exactly the rows that exist. The shapes are dynamic: the export (a
SavedModel) and XLA keep the static path (Detector(padding_free=False)).
"""

import keras
import tensorflow as tf


def real_row_count(boxes):
    """boxes [B, N, 4] with zero rows as padding -> scalar int32: the smallest n such that
    every image's rows from n on are all zero (the last real row of any image, plus one)."""
    real = tf.reduce_any(tf.not_equal(boxes, 0.0), axis=-1)  # [B, N]
    positions = tf.range(1, tf.shape(boxes)[1] + 1)[None, :]
    return tf.reduce_max(tf.where(real, positions, 0))


@keras.saving.register_keras_serializable(package="detection")
class TrimPaddingRows(keras.layers.Layer):
    """boxes [B, N, 4] (zero rows = padding) [, counts [B] int32 real rows per image] ->
    boxes[:, :n] [B, n, 4] float32, n = max(counts), or real_row_count(boxes) without counts:
    the rows at n and after are padding in every image."""

    def __init__(self, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)

    def call(self, boxes, counts=None):
        n = real_row_count(boxes) if counts is None else tf.reduce_max(tf.cast(counts, tf.int32))
        return boxes[:, :n]

    def compute_output_spec(self, boxes, counts=None):
        return keras.KerasTensor((boxes.shape[0], None) + tuple(boxes.shape[2:]), boxes.dtype)


@keras.saving.register_keras_serializable(package="detection")
class TrimLike(keras.layers.Layer):
    """x [B, N, ...], like [B, n, ...] -> x[:, :n]: a tensor cut to the rows TrimPaddingRows
    kept of another (e.g. the class ids of the detections the mask head runs on)."""

    def call(self, x, like):
        return x[:, :tf.shape(like)[1]]

    def compute_output_spec(self, x, like):
        return keras.KerasTensor((x.shape[0], None) + tuple(x.shape[2:]), x.dtype)


@keras.saving.register_keras_serializable(package="detection")
class PadRows(keras.layers.Layer):
    """x [B, n, ...] with n <= rows -> [B, rows, ...], zeros appended: the static size back.
    float32 (what it pads: mask probabilities) unless given another dtype."""

    def __init__(self, rows, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.rows = int(rows)

    def call(self, x):
        pad = [[0, 0], [0, self.rows - tf.shape(x)[1]]] + [[0, 0]] * (len(x.shape) - 2)
        return tf.ensure_shape(tf.pad(x, pad), (x.shape[0], self.rows) + tuple(x.shape[2:]))

    def compute_output_spec(self, x):
        return keras.KerasTensor((x.shape[0], self.rows) + tuple(x.shape[2:]), x.dtype)

    def get_config(self):
        return {**super().get_config(), "rows": self.rows}
