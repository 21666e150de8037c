"""ProposalLayer: RPN scores and deltas -> a fixed number of proposals per image.

Per image (``batch_slice``): the PRE_NMS_LIMIT highest-scoring anchors, decoded with
RPN_BBOX_STD_DEV, clipped to the image window, NMS at RPN_NMS_THRESHOLD, padded with zero
rows to POST_NMS_ROIS_TRAINING or POST_NMS_ROIS_INFERENCE. No gradient flows through
proposals (NMS has none; the RPN trains through its own losses).
"""

import keras
import tensorflow as tf

from detection.config import Config
from detection.core import anchors as anchor_ops
from detection.core import boxes as box_ops
from detection.core.batching import batch_slice
from detection.layers.rpn_target import image_hw


def proposals_for_image(scores, deltas, anchors, window, pre_nms_limit, count, nms_threshold, std):
    """scores: [A] objectness logits or probabilities; deltas: [A, 4]; anchors: [A, 4];
    window: [4] (y1, x1, y2, x2) of the image in input pixels.
    Returns proposals [count, 4] input pixels in descending score order, zero-padded, and
    their scores [count] (0 for padding)."""
    k = tf.minimum(pre_nms_limit, tf.shape(scores)[0])
    top_scores, top = tf.math.top_k(scores, k=k, sorted=True)
    boxes = box_ops.decode(tf.gather(deltas, top), tf.gather(anchors, top), std)
    boxes = box_ops.clip(boxes, window)
    keep = tf.image.non_max_suppression(boxes, top_scores, count, iou_threshold=nms_threshold)
    boxes = tf.gather(boxes, keep)
    kept_scores = tf.gather(top_scores, keep)
    pad = count - tf.shape(keep)[0]
    return tf.pad(boxes, [[0, pad], [0, 0]]), tf.pad(kept_scores, [[0, pad]])


@keras.saving.register_keras_serializable(package="detection")
class ProposalLayer(keras.layers.Layer):
    """Inputs: rpn_probs [B, A] float32 foreground probabilities, rpn_deltas [B, A, 4],
    image [B, H, W, 3] (for its shape), image_meta [B, 12] (for the window).
    Outputs: proposals [B, count, 4] input pixels (zero rows = padding), scores [B, count].
    """

    def __init__(self, config, count, **kwargs):
        kwargs.setdefault("dtype", "float32")  # targets, NMS and losses stay float32 under mixed precision
        super().__init__(**kwargs)
        self.config = config
        self.count = int(count)

    def call(self, rpn_probs, rpn_deltas, image, image_meta):
        anchors = anchor_ops.pyramid_anchors_for_image(image_hw(image), self.config)
        rpn_probs = tf.stop_gradient(tf.cast(rpn_probs, tf.float32))
        rpn_deltas = tf.stop_gradient(tf.cast(rpn_deltas, tf.float32))
        window = tf.cast(image_meta, tf.float32)[:, 7:11]
        c = self.config

        def per_image(scores, deltas, win):
            return list(proposals_for_image(scores, deltas, anchors, win, c.PRE_NMS_LIMIT, self.count,
                                            c.RPN_NMS_THRESHOLD, c.RPN_BBOX_STD_DEV))

        return tuple(batch_slice([rpn_probs, rpn_deltas, window], per_image, rpn_probs.shape[0]))

    def compute_output_spec(self, rpn_probs, rpn_deltas, image, image_meta):
        batch = rpn_probs.shape[0]
        return (keras.KerasTensor((batch, self.count, 4), "float32"),
                keras.KerasTensor((batch, self.count), "float32"))

    def get_config(self):
        return {**super().get_config(), "config": self.config.to_dict(), "count": self.count}

    @classmethod
    def from_config(cls, config):
        return cls(config=Config(config.pop("config")), **config)
