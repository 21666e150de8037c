"""Assigns anchors (or proposals) to ground-truth boxes by IoU.

Given an IoU matrix [num_gt, num_anchors], each anchor gets a label and a GT index:

    best IoU over GT      label
    >= positive_iou       POSITIVE (1)
    < negative_iou        NEGATIVE (0)
    in between            IGNORE (-1)

Example with negative_iou 0.3, positive_iou 0.7: best IoUs [0.1, 0.5, 0.8] give labels
[0, -1, 1]. With ``allow_low_quality`` each GT box also makes positive the anchor(s) with its
highest IoU (ties included, IoU > 0), so a box that no anchor reaches at 0.7 still trains.
With zero GT boxes every anchor is NEGATIVE (taken through tf.cond, no NaN or error).
"""

import tensorflow as tf

POSITIVE, NEGATIVE, IGNORE = 1, 0, -1


def match(iou_matrix, positive_iou=0.7, negative_iou=0.3, allow_low_quality=True):
    """iou_matrix: [G, N] float32 IoU of G GT boxes with N anchors.

    Returns:
      labels: [N] int32, POSITIVE / NEGATIVE / IGNORE.
      matched_gt: [N] int32 index of each anchor's best GT (0 where G == 0).
      max_iou: [N] float32 best IoU of each anchor (0 where G == 0).
    """
    iou_matrix = tf.convert_to_tensor(iou_matrix, tf.float32)
    num_anchors = tf.shape(iou_matrix)[1]

    def with_gt():
        max_iou = tf.reduce_max(iou_matrix, axis=0)
        matched = tf.argmax(iou_matrix, axis=0, output_type=tf.int32)
        labels = tf.fill([num_anchors], IGNORE)
        labels = tf.where(max_iou < negative_iou, NEGATIVE, labels)
        labels = tf.where(max_iou >= positive_iou, POSITIVE, labels)
        if allow_low_quality:
            best_per_gt = tf.reduce_max(iou_matrix, axis=1, keepdims=True)  # [G, 1]
            is_best = tf.logical_and(iou_matrix >= best_per_gt, iou_matrix > 0.0)  # [G, N]
            labels = tf.where(tf.reduce_any(is_best, axis=0), POSITIVE, labels)
        return labels, matched, max_iou

    def without_gt():
        return (tf.fill([num_anchors], NEGATIVE), tf.zeros([num_anchors], tf.int32),
                tf.zeros([num_anchors], tf.float32))

    return tf.cond(tf.shape(iou_matrix)[0] > 0, with_gt, without_gt)
