"""Detection targets: samples the RoIs that train the box and mask heads.

Per image (``batch_slice``): the GT boxes are added to the proposals; each candidate is
matched to the non-crowd GT (positive at IoU >= ROI_POSITIVE_IOU, negative below
ROI_NEGATIVE_IOU, no low-quality matches); candidates overlapping a crowd box are never
negatives; TRAIN_ROIS_PER_IMAGE are sampled at ROI_POSITIVE_RATIO, positives first, then
padded with zero rows of weight 0. An image without GT goes through the matcher's tf.cond:
every sampled RoI is background.

Mask targets come from the mini masks: the RoI is expressed in its GT box's mini-mask frame
and sampled at MASK_SHAPE bin centres (``aligned_masks``, as the aligned RoIAlign samples
features) or from corner to corner (matterport's crop_and_resize, as its RoIAlign samples),
then rounded to {0, 1}.

All boxes are in the model's box frame (detection/core/frames.py).
"""

import keras
import tensorflow as tf

from detection.core import boxes as box_ops
from detection.core import matching, sampling
from detection.core.batching import batch_slice
from detection.layers import diagnostics
from detection.layers.roi_align import aligned_crop_boxes
from detection.layers.rpn_target import CROWD_IOU


def rcnn_targets_for_image(proposals, gt_class_ids, gt_boxes, gt_masks, num_rois=200, positive_ratio=0.33,
                           positive_iou=0.5, negative_iou=0.5, bbox_std=box_ops.DEFAULT_STD, mask_shape=(28, 28),
                           aligned_masks=True):
    """One image's sampled RoIs and targets.

    proposals: [P, 4] box frame, zero rows = padding; gt_class_ids: [M] int32 (0 padding,
    < 0 crowd); gt_boxes: [M, 4] box frame; gt_masks: [M, mh, mw] float32 mini masks.
    Returns, with T = num_rois (config TRAIN_ROIS_PER_IMAGE):
      rois [T, 4], class_ids [T] int32, deltas [T, 4] (/ bbox_std), masks [T, *mask_shape],
      weights [T] float32 (1 sampled, 0 padding), and diagnostics {name: scalar}.
    Positives come first (at most int(T x positive_ratio)), then negatives, then padding.
    """
    count = num_rois
    proposals = tf.boolean_mask(proposals, tf.logical_not(box_ops.is_zero_area(proposals)))
    is_gt = gt_class_ids > 0
    boxes = tf.boolean_mask(gt_boxes, is_gt)
    class_ids = tf.boolean_mask(gt_class_ids, is_gt)
    masks = tf.boolean_mask(gt_masks, is_gt)
    crowd = tf.boolean_mask(gt_boxes, gt_class_ids < 0)

    # Diagnostic before GT boxes join the candidates: which GT no proposal reaches.
    proposal_iou = box_ops.iou(boxes, proposals)  # [G, P]
    best = tf.reduce_max(tf.concat([proposal_iou, tf.zeros([tf.shape(boxes)[0], 1])], 1), axis=1)
    missed = tf.reduce_sum(tf.cast(best < positive_iou, tf.float32))

    candidates = tf.concat([proposals, boxes], axis=0)
    labels, matched, _ = matching.match(
        box_ops.iou(boxes, candidates), positive_iou, negative_iou, allow_low_quality=False)
    crowd_iou = tf.concat([box_ops.iou(crowd, candidates), tf.zeros([1, tf.shape(candidates)[0]])], 0)
    labels = tf.where(tf.logical_and(labels == matching.NEGATIVE, tf.reduce_max(crowd_iou, 0) > CROWD_IOU),
                      matching.IGNORE, labels)
    positive, negative = sampling.sample_balanced(labels, count, positive_ratio)
    pos_idx = tf.cast(tf.where(positive)[:, 0], tf.int32)
    neg_idx = tf.cast(tf.where(negative)[:, 0], tf.int32)

    pos_rois = tf.gather(candidates, pos_idx)
    pos_gt = tf.gather(matched, pos_idx)
    pos_gt_boxes = tf.gather(boxes, pos_gt)
    rois = tf.concat([pos_rois, tf.gather(candidates, neg_idx)], axis=0)
    num_pos, num_rois = tf.shape(pos_idx)[0], tf.shape(rois)[0]
    pad = count - num_rois
    target_class = tf.concat([tf.gather(class_ids, pos_gt), tf.zeros_like(neg_idx, tf.int32)], axis=0)
    pos_deltas = box_ops.encode(pos_gt_boxes, pos_rois, bbox_std)
    mask_h, mask_w = mask_shape
    mini_hw = tf.shape(masks)[1:3]
    gt_hw = tf.maximum(pos_gt_boxes[:, 2:] - pos_gt_boxes[:, :2], 1e-6)
    if aligned_masks:
        crop = aligned_crop_boxes(pos_rois, pos_gt_boxes[:, :2], tf.cast(mini_hw, tf.float32) / gt_hw, mini_hw, mask_h)
    else:  # matterport: the RoI relative to its GT box, sampled corner to corner
        crop = (pos_rois - tf.tile(pos_gt_boxes[:, :2], [1, 2])) / tf.tile(gt_hw, [1, 2])
    pos_masks = tf.image.crop_and_resize(masks[..., None], crop, pos_gt, [mask_h, mask_w])[..., 0]
    pos_masks = tf.round(pos_masks)

    def pad_rows(x):
        return tf.pad(x, [[0, pad]] + [[0, 0]] * (len(x.shape) - 1))

    outputs = (
        pad_rows(rois),
        pad_rows(target_class),
        pad_rows(tf.concat([pos_deltas, tf.zeros([num_rois - num_pos, 4])], axis=0)),
        pad_rows(tf.concat([pos_masks, tf.zeros([num_rois - num_pos, mask_h, mask_w])], axis=0)),
        pad_rows(tf.ones([num_rois], tf.float32)),
    )
    diag = {
        "positive_roi_num": tf.cast(num_pos, tf.float32),
        "negative_roi_num": tf.cast(num_rois - num_pos, tf.float32),
        "rcnn_miss_match_gt_num": missed,
    }
    return outputs, diag


@keras.saving.register_keras_serializable(package="detection")
class DetectionTargetLayer(keras.layers.Layer):
    """Inputs: proposals [B, P, 4], gt_class_ids [B, M], gt_boxes [B, M, 4] (box frame),
    gt_masks [B, M, mh, mw] mini masks.

    Outputs (T = num_rois): rois [B, T, 4] box frame, class_ids [B, T] int32, deltas [B, T, 4],
    masks [B, T, *mask_shape], weights [B, T]. Updates the RCNN diagnostics.

    Arguments as rcnn_targets_for_image (config TRAIN_ROIS_PER_IMAGE, ROI_POSITIVE_RATIO,
    ROI_POSITIVE_IOU, ROI_NEGATIVE_IOU, BBOX_STD_DEV, MASK_SHAPE); use_mask false: mask
    targets are zeros of ``mask_shape`` and the gt_masks input may hold [B, M, 1, 1]
    placeholders; mini_mask_shape: the (mh, mw) then assumed.
    """

    def __init__(self, num_rois=200, positive_ratio=0.33, positive_iou=0.5, negative_iou=0.5,
                 bbox_std=box_ops.DEFAULT_STD, mask_shape=(28, 28), aligned_masks=True, use_mask=True,
                 mini_mask_shape=(56, 56), **kwargs):
        kwargs.setdefault("dtype", "float32")  # targets, NMS and losses stay float32 under mixed precision
        super().__init__(**kwargs)
        self.target_args = dict(num_rois=int(num_rois), positive_ratio=float(positive_ratio),
                                positive_iou=float(positive_iou), negative_iou=float(negative_iou),
                                bbox_std=[float(s) for s in bbox_std], mask_shape=[int(s) for s in mask_shape],
                                aligned_masks=bool(aligned_masks))
        self.use_mask = bool(use_mask)
        self.mini_mask_shape = [int(s) for s in mini_mask_shape]
        self.trackers = diagnostics.make_trackers(diagnostics.RCNN_DIAGNOSTICS)

    def call(self, proposals, gt_class_ids, gt_boxes, gt_masks):
        names = list(diagnostics.RCNN_DIAGNOSTICS)
        gt_class_ids = tf.cast(gt_class_ids, tf.int32)
        if self.use_mask:
            masks = tf.cast(gt_masks, tf.float32)
        else:  # the input may hold [B, M, 1, 1] placeholders; mask targets are unused
            masks = tf.zeros(tf.concat([tf.shape(gt_boxes)[:2], self.mini_mask_shape], 0))

        def per_image(props, class_ids, boxes, image_masks):
            outputs, diag = rcnn_targets_for_image(props, class_ids, boxes, image_masks, **self.target_args)
            return list(outputs) + [diag[n] for n in names]

        results = batch_slice([tf.cast(proposals, tf.float32), gt_class_ids, tf.cast(gt_boxes, tf.float32), masks],
                              per_image, proposals.shape[0])
        values = dict(zip(names, results[5:]))
        has_gt = tf.reduce_any(gt_class_ids > 0, axis=1)
        diagnostics.update_trackers(self.trackers, values, has_gt)
        return tuple(tf.stop_gradient(r) for r in results[:5])

    def compute_output_spec(self, proposals, gt_class_ids, gt_boxes, gt_masks):
        b, t = proposals.shape[0], self.target_args["num_rois"]
        mh, mw = self.target_args["mask_shape"]
        return (keras.KerasTensor((b, t, 4), "float32"), keras.KerasTensor((b, t), "int32"),
                keras.KerasTensor((b, t, 4), "float32"), keras.KerasTensor((b, t, mh, mw), "float32"),
                keras.KerasTensor((b, t), "float32"))

    def get_config(self):
        return {**super().get_config(), **self.target_args, "use_mask": self.use_mask,
                "mini_mask_shape": self.mini_mask_shape}
