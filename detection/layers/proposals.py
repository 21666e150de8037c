"""ProposalLayer: RPN scores and deltas -> a fixed number of proposals per image.

Per image (``batch_slice``): the ``pre_nms_limit`` highest-scoring anchors, decoded with
``bbox_std``, clipped, NMS at ``nms_threshold``, padded with zero rows to ``count``. No
gradient flows through proposals (NMS has none; the RPN trains through its own losses).

How the proposals are chosen is the PROPOSAL_SELECTION, an entry of PROPOSAL_SELECTIONS:
  standard     the ``pre_nms_limit`` best anchors of the image, decoded, clipped, one NMS.
  torchvision  torchvision's RegionProposalNetwork.filter_proposals: the ``pre_nms_limit`` best
               of EACH level, decoded, clipped, boxes with a side under 1e-3 px dropped, NMS
               within each level (torchvision's batched_nms: boxes of another level never
               suppress each other), then the ``count`` best over all levels.

Both drop the proposals whose probability is below ``score_threshold`` (config
RPN_SCORE_THRESHOLD, torchvision's rpn_score_thresh) before the NMS: the standard selection
after its top-k, the torchvision one after its size filter, as torchvision does. At 0 (the
default) nothing is dropped and the graph is the one without a threshold.

Clipping: to the image window (where the resized image sits in the padded input) in the
pixel frame; to the whole input, [0, 0, 1, 1], in the normalized frame, as matterport does.
"""

import keras
import tensorflow as tf

from detection.choices import lookup
from detection.core import boxes as box_ops
from detection.core.anchors import AnchorSpec
from detection.core.batching import batch_slice
from detection.core.frames import box_frame, to_frame
from detection.core.image_meta import parse_image_meta
from detection.layers.rpn_target import image_hw


def proposals_for_image(scores, deltas, anchors, window, pre_nms_limit, count, nms_threshold, std,
                        level_counts=None, score_threshold=0.0):
    """scores: [A] objectness probabilities; deltas: [A, 4]; anchors: [A, 4];
    window: [4] (y1, x1, y2, x2) to clip to; all boxes in one frame; level_counts: the anchors
    of each level (read by the torchvision selection only); score_threshold: proposals scoring
    below it are dropped before the NMS.
    Returns proposals [count, 4] in descending score order, zero-padded (the heads take boxes
    only; scores would be a dead output)."""
    k = tf.minimum(pre_nms_limit, tf.shape(scores)[0])
    top_scores, top = tf.math.top_k(scores, k=k, sorted=True)
    boxes = box_ops.decode(tf.gather(deltas, top), tf.gather(anchors, top), std)
    boxes = box_ops.clip(boxes, window)
    boxes, top_scores = _above(score_threshold, boxes, top_scores)
    keep = tf.image.non_max_suppression(boxes, top_scores, count, iou_threshold=nms_threshold)
    boxes = tf.gather(boxes, keep)
    pad = count - tf.shape(keep)[0]
    return tf.pad(boxes, [[0, pad], [0, 0]])


TORCHVISION_MIN_SIZE = 1e-3  # RegionProposalNetwork.min_size


def _above(score_threshold, boxes, scores, *others):
    """The rows whose score is at least score_threshold (all of them, untouched, at 0)."""
    if score_threshold <= 0:
        return (boxes, scores, *others)
    keep = tf.where(scores >= score_threshold)[:, 0]
    return tuple(tf.gather(t, keep) for t in (boxes, scores, *others))


def torchvision_proposals_for_image(scores, deltas, anchors, window, pre_nms_limit, count, nms_threshold, std,
                                    level_counts, score_threshold=0.0):
    """proposals_for_image's arguments and result, by torchvision's rule (module docstring)."""
    boxes, top_scores, levels = [], [], []
    for level, (level_scores, level_deltas, level_anchors) in enumerate(zip(
            tf.split(scores, level_counts), tf.split(deltas, level_counts), tf.split(anchors, level_counts))):
        k = tf.minimum(pre_nms_limit, tf.shape(level_scores)[0])
        best, top = tf.math.top_k(level_scores, k=k, sorted=True)
        boxes.append(box_ops.decode(tf.gather(level_deltas, top), tf.gather(level_anchors, top), std))
        top_scores.append(best)
        levels.append(tf.fill([k], level))
    boxes = box_ops.clip(tf.concat(boxes, 0), window)
    top_scores, levels = tf.concat(top_scores, 0), tf.concat(levels, 0)
    big = tf.where((boxes[:, 2] - boxes[:, 0] >= TORCHVISION_MIN_SIZE)
                   & (boxes[:, 3] - boxes[:, 1] >= TORCHVISION_MIN_SIZE))[:, 0]
    boxes, top_scores, levels = tf.gather(boxes, big), tf.gather(top_scores, big), tf.gather(levels, big)
    boxes, top_scores, levels = _above(score_threshold, boxes, top_scores, levels)
    keep = batched_nms(boxes, top_scores, levels, count, nms_threshold)
    boxes = tf.gather(boxes, keep)
    return tf.pad(boxes, [[0, count - tf.shape(keep)[0]], [0, 0]])


def batched_nms(boxes, scores, groups, count, iou_threshold):
    """NMS within each group (torchvision.ops.batched_nms, by its coordinate offset: each group's
    boxes moved past the previous group's) -> [<= count] int32 indices, by decreasing score.
    boxes [N, 4], scores [N], groups [N] int32 >= 0."""
    offsets = tf.cast(groups, tf.float32) * (tf.reduce_max(tf.concat([tf.reshape(boxes, [-1]), [0.0]], 0)) + 1.0)
    return tf.image.non_max_suppression(boxes + offsets[:, None], scores, count, iou_threshold=iou_threshold)


# The PROPOSAL_SELECTION registry (names: detection/choices.py PROPOSAL_SELECTIONS).
PROPOSAL_SELECTIONS = {"standard": proposals_for_image, "torchvision": torchvision_proposals_for_image}


@keras.saving.register_keras_serializable(package="detection")
class ProposalLayer(keras.layers.Layer):
    """Inputs: rpn_probs [B, A] float32 foreground probabilities, rpn_deltas [B, A, 4],
    image [B, H, W, 3] (for its shape), image_meta [B, 12] (for the window).
    Output: proposals [B, count, 4] in the box frame (zero rows = padding).

    anchors: an AnchorSpec (or its dict); count: proposals kept per image (config
    POST_NMS_ROIS_TRAINING / _INFERENCE); pre_nms_limit, nms_threshold, bbox_std: config
    PRE_NMS_LIMIT, RPN_NMS_THRESHOLD, RPN_BBOX_STD_DEV; frame: the box frame; selection:
    the PROPOSAL_SELECTION (module docstring); score_threshold: RPN_SCORE_THRESHOLD.
    """

    def __init__(self, anchors, count, pre_nms_limit=6000, nms_threshold=0.7, bbox_std=box_ops.DEFAULT_STD,
                 frame="pixels", selection="standard", score_threshold=0.0, **kwargs):
        kwargs.setdefault("dtype", "float32")  # targets, NMS and losses stay float32 under mixed precision
        super().__init__(**kwargs)
        self.anchors = anchors if isinstance(anchors, AnchorSpec) else AnchorSpec.from_dict(anchors)
        self.count = int(count)
        self.pre_nms_limit = int(pre_nms_limit)
        self.nms_threshold = float(nms_threshold)
        self.bbox_std = [float(s) for s in bbox_std]
        self.frame = frame
        self.selection = selection
        self.score_threshold = float(score_threshold)
        lookup(PROPOSAL_SELECTIONS, selection, "PROPOSAL_SELECTION")  # fail at build, not call

    def call(self, rpn_probs, rpn_deltas, image, image_meta):
        hw = image_hw(image)
        anchors = to_frame(self.anchors.anchors(hw), hw, self.frame)
        rpn_probs = tf.stop_gradient(tf.cast(rpn_probs, tf.float32))
        rpn_deltas = tf.stop_gradient(tf.cast(rpn_deltas, tf.float32))
        windows = box_frame(self.frame).proposal_windows(parse_image_meta(tf.cast(image_meta, tf.float32)),
                                                        tf.shape(rpn_probs)[0])

        select = lookup(PROPOSAL_SELECTIONS, self.selection, "PROPOSAL_SELECTION")
        per_location = self.anchors.anchors_per_location
        level_counts = tf.stack([((hw[0] + s - 1) // s) * ((hw[1] + s - 1) // s) * per_location
                                 for s in self.anchors.strides])

        def per_image(scores, deltas, window):
            return select(scores, deltas, anchors, window, self.pre_nms_limit, self.count, self.nms_threshold,
                          self.bbox_std, level_counts, self.score_threshold)

        return batch_slice([rpn_probs, rpn_deltas, windows], per_image, rpn_probs.shape[0])

    def compute_output_spec(self, rpn_probs, rpn_deltas, image, image_meta):
        return keras.KerasTensor((rpn_probs.shape[0], self.count, 4), "float32")

    def get_config(self):
        return {**super().get_config(), "anchors": self.anchors.to_dict(), "count": self.count,
                "pre_nms_limit": self.pre_nms_limit, "nms_threshold": self.nms_threshold,
                "bbox_std": self.bbox_std, "frame": self.frame, "selection": self.selection,
                "score_threshold": self.score_threshold}
