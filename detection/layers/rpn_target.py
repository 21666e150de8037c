"""RPN targets inside the graph: which anchors are positive / negative, and their box deltas.

Per image (through ``batch_slice``): IoU of every anchor with the non-crowd GT boxes, the
core matcher (negative_iou / positive_iou, each GT keeping its best anchor when
``low_quality_matches``), then the balanced sampler (``num_samples`` at
``positive_fraction``). Anchors overlapping a crowd box (IoU > CROWD_IOU) are never negatives
(crowd boxes are never matched). An image with no GT goes through the matcher's tf.cond:
every sampled anchor is negative and every delta is 0.

All box math runs in the model's box frame (detection/core/frames.py): the anchors are
generated in pixels and converted; the GT boxes arrive already converted.
"""

import keras
import tensorflow as tf

from detection.core import boxes as box_ops
from detection.core import matching, sampling
from detection.core.anchors import AnchorSpec
from detection.core.batching import batch_slice
from detection.core.frames import to_frame
from detection.layers import diagnostics

# An anchor whose IoU with a crowd box exceeds this is not a negative (matterport's value).
CROWD_IOU = 0.001


def rpn_targets_for_image(anchors, gt_class_ids, gt_boxes, positive_iou=0.7, negative_iou=0.3,
                          low_quality_matches=True, num_samples=256, positive_fraction=0.5,
                          bbox_std=box_ops.DEFAULT_STD):
    """One image's RPN targets.

    anchors: [A, 4] in the box frame; gt_class_ids: [M] int32 (0 padding, < 0 crowd);
    gt_boxes: [M, 4] same frame.
    Returns labels [A] int32 (1 sampled positive, 0 sampled negative, -1 not sampled),
    deltas [A, 4] float32 (encoded with ``bbox_std``; zero except at positives), and
    diagnostics {name: scalar} (see detection/layers/diagnostics.py).
    """
    is_gt = gt_class_ids > 0
    boxes = tf.boolean_mask(gt_boxes, is_gt)
    crowd = tf.boolean_mask(gt_boxes, gt_class_ids < 0)
    iou = box_ops.iou(boxes, anchors)  # [G, A]
    labels, matched, _ = matching.match(iou, positive_iou, negative_iou, low_quality_matches)
    crowd_max = tf.reduce_max(tf.concat([box_ops.iou(crowd, anchors), tf.zeros([1, tf.shape(anchors)[0]])], 0), 0)
    labels = tf.where(tf.logical_and(labels == matching.NEGATIVE, crowd_max > CROWD_IOU), matching.IGNORE, labels)
    positive, negative = sampling.sample_balanced(labels, num_samples, positive_fraction)
    sampled_labels = tf.where(positive, 1, tf.where(negative, 0, -1))
    # Deltas only where positive; elsewhere the matched index may point at nothing.
    positive_idx = tf.cast(tf.where(positive)[:, 0], tf.int32)
    matched_boxes = tf.gather(boxes, tf.gather(matched, positive_idx))
    positive_deltas = box_ops.encode(matched_boxes, tf.gather(anchors, positive_idx), bbox_std)
    deltas = tf.scatter_nd(positive_idx[:, None], positive_deltas, tf.shape(anchors))

    best_per_gt = tf.reduce_max(tf.concat([iou, tf.zeros([tf.shape(iou)[0], 1])], 1), axis=1)  # [G]
    num_gt = tf.cast(tf.shape(boxes)[0], tf.float32)
    diag = {
        "gt_num": num_gt,
        "positive_anchor_num": tf.reduce_sum(tf.cast(positive, tf.float32)),
        "negative_anchor_num": tf.reduce_sum(tf.cast(negative, tf.float32)),
        "miss_match_gt_num": tf.reduce_sum(tf.cast(best_per_gt < positive_iou, tf.float32)),
        # Sums and counts: 0 for an image without GT, which the tracker weights out.
        "gt_match_min_iou": tf.reduce_min(tf.concat([best_per_gt, [1.0]], 0)) * tf.cast(num_gt > 0, tf.float32),
        "gt_match_mean_iou": tf.math.divide_no_nan(tf.reduce_sum(best_per_gt), num_gt),
    }
    return sampled_labels, deltas, diag


@keras.saving.register_keras_serializable(package="detection")
class RPNTargetLayer(keras.layers.Layer):
    """Inputs: image [B, H, W, 3] (for its shape), gt_class_ids [B, M] int32, gt_boxes [B, M, 4]
    in the box frame.

    Outputs: labels [B, A] int32 (1 / 0 / -1 as in ``rpn_targets_for_image``) and
    deltas [B, A, 4] float32 divided by ``bbox_std``. Updates the RPN diagnostics.

    anchors: an AnchorSpec (or its dict); frame: the box frame; the other arguments are
    rpn_targets_for_image's (config RPN_POSITIVE_IOU, RPN_NEGATIVE_IOU, RPN_MATCH_LOW_QUALITY,
    RPN_TRAIN_ANCHORS_PER_IMAGE, RPN_POSITIVE_FRACTION, RPN_BBOX_STD_DEV).
    """

    def __init__(self, anchors, frame="pixels", positive_iou=0.7, negative_iou=0.3, low_quality_matches=True,
                 num_samples=256, positive_fraction=0.5, bbox_std=box_ops.DEFAULT_STD, **kwargs):
        kwargs.setdefault("dtype", "float32")  # targets, NMS and losses stay float32 under mixed precision
        super().__init__(**kwargs)
        self.anchors = anchors if isinstance(anchors, AnchorSpec) else AnchorSpec.from_dict(anchors)
        self.frame = frame
        self.target_args = dict(positive_iou=float(positive_iou), negative_iou=float(negative_iou),
                                low_quality_matches=bool(low_quality_matches), num_samples=int(num_samples),
                                positive_fraction=float(positive_fraction), bbox_std=[float(s) for s in bbox_std])
        self.trackers = diagnostics.make_trackers(diagnostics.RPN_DIAGNOSTICS)

    def call(self, image, gt_class_ids, gt_boxes):
        hw = image_hw(image)
        anchors = to_frame(self.anchors.anchors(hw), hw, self.frame)
        batch = gt_boxes.shape[0]
        if batch is None:
            raise ValueError("RPNTargetLayer needs a static batch size (batch_slice); "
                             "build the training model with a fixed batch")
        names = list(diagnostics.RPN_DIAGNOSTICS)

        def per_image(class_ids, boxes):
            labels, deltas, diag = rpn_targets_for_image(anchors, class_ids, boxes, **self.target_args)
            return [labels, deltas] + [diag[n] for n in names]

        outputs = batch_slice([tf.cast(gt_class_ids, tf.int32), tf.cast(gt_boxes, tf.float32)], per_image, batch)
        labels, deltas, diag_values = outputs[0], outputs[1], dict(zip(names, outputs[2:]))
        diagnostics.update_trackers(self.trackers, diag_values, diag_values["gt_num"] > 0)
        return labels, deltas

    def compute_output_spec(self, image, gt_class_ids, gt_boxes):
        num = anchor_count(image.shape, self.anchors)
        batch = gt_boxes.shape[0]
        return (keras.KerasTensor((batch, num), "int32"), keras.KerasTensor((batch, num, 4), "float32"))

    def get_config(self):
        return {**super().get_config(), "anchors": self.anchors.to_dict(), "frame": self.frame, **self.target_args}


def image_hw(image):
    """(H, W) of an image batch [B, H, W, C]: python ints when static, tensors otherwise."""
    h, w = image.shape[1], image.shape[2]
    if h is None or w is None:
        dynamic = tf.shape(image)
        h, w = (dynamic[1] if h is None else h), (dynamic[2] if w is None else w)
    return h, w


def anchor_count(image_shape, anchors):
    """Number of anchors for a static input shape [B, H, W, C] and an AnchorSpec, or None when dynamic."""
    if image_shape[1] is None or image_shape[2] is None:
        return None
    return anchors.anchor_count((image_shape[1], image_shape[2]))
