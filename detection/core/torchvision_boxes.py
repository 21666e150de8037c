"""torchvision's box conventions (torchvision.models.detection), for its weights.

All boxes here are torchvision's ``[x1, y1, x2, y2]`` in pixels of the resized image, area
``(x2 - x1) * (y2 - y1)`` without +1; detection/modeling/torchvision_rcnn.py converts to our
``[y1, x1, y2, x2]`` at its output only.

- Anchors (AnchorGenerator): per level one size s and ratios r = h / w (not our w / h):
  ``h = s * sqrt(r)``, ``w = s / sqrt(r)``, base anchor ``round([-w, -h, w, h] / 2)``
  (rounded half to even as torch.round), centred at ``(i * stride_y, j * stride_x)`` (no half
  cell), with the integer stride ``padded image size // feature size`` per axis (61 for a 25 x 25
  P5 -> 13 x 13 P6 at 800 px, not 64). Order: level, y, x, ratio.
  Example: size 32, ratios (0.5, 1, 2) -> base anchors [-23, -11, 23, 11], [-16, -16, 16, 16],
  [-11, -23, 11, 23].
- Box coder (BoxCoder): deltas ``(dx, dy, dw, dh)`` divided by weights (1, 1, 1, 1) in the RPN,
  (10, 10, 5, 5) in the box head; dw, dh clamped at log(1000 / 16) before exp.
"""

import math

import numpy as np
import tensorflow as tf

BBOX_XFORM_CLIP = math.log(1000.0 / 16)


def base_anchors(sizes, ratios):
    """sizes: the anchor side(s) for ratio 1 (one number, or several on one level as
    MobileNetV3-FPN's); ratios: h / w -> [len(ratios) * len(sizes), 4] float32 xyxy, ratio-major
    (torchvision's order: all sizes of the first ratio, then of the next)."""
    ratios = np.asarray(ratios, np.float32)
    sizes = np.atleast_1d(np.asarray(sizes, np.float32))
    h_ratios = np.sqrt(ratios)
    w_ratios = np.float32(1) / h_ratios
    ws = (w_ratios[:, None] * sizes[None, :]).reshape(-1)
    hs = (h_ratios[:, None] * sizes[None, :]).reshape(-1)
    return np.round(np.stack([-ws, -hs, ws, hs], axis=1) / np.float32(2)).astype(np.float32)


def grid_anchors(feature_hw, padded_hw, sizes, ratios):
    """Anchors of one level: [h * w * A, 4] float32 xyxy, order (y, x, anchor), A = len(ratios)
    x len(sizes), anchors in base_anchors' order.

    feature_hw: (h, w) of the level's map; padded_hw: (H, W) of the padded input image."""
    h, w = int(feature_hw[0]), int(feature_hw[1])
    stride_y, stride_x = int(padded_hw[0]) // h, int(padded_hw[1]) // w
    shift_y, shift_x = np.meshgrid(np.arange(h, dtype=np.float32) * stride_y,
                                   np.arange(w, dtype=np.float32) * stride_x, indexing="ij")
    shifts = np.stack([shift_x, shift_y, shift_x, shift_y], axis=-1).reshape(-1, 1, 4)
    return (shifts + base_anchors(sizes, ratios)[None]).reshape(-1, 4)


def decode(deltas, boxes, weights):
    """deltas: [N, K * 4] (dx, dy, dw, dh) per class; boxes: [N, 4] xyxy -> [N, K, 4] xyxy.

    weights: (wx, wy, ww, wh), torchvision's BoxCoder weights."""
    deltas = tf.cast(deltas, tf.float32)
    boxes = tf.cast(boxes, tf.float32)
    widths = boxes[:, 2] - boxes[:, 0]
    heights = boxes[:, 3] - boxes[:, 1]
    ctr_x = boxes[:, 0] + 0.5 * widths
    ctr_y = boxes[:, 1] + 0.5 * heights
    deltas = tf.reshape(deltas, [tf.shape(deltas)[0], -1, 4])
    wx, wy, ww, wh = (float(v) for v in weights)
    dx = deltas[..., 0] / wx
    dy = deltas[..., 1] / wy
    dw = tf.minimum(deltas[..., 2] / ww, BBOX_XFORM_CLIP)
    dh = tf.minimum(deltas[..., 3] / wh, BBOX_XFORM_CLIP)
    pred_ctr_x = dx * widths[:, None] + ctr_x[:, None]
    pred_ctr_y = dy * heights[:, None] + ctr_y[:, None]
    half_w = 0.5 * (tf.exp(dw) * widths[:, None])
    half_h = 0.5 * (tf.exp(dh) * heights[:, None])
    return tf.stack([pred_ctr_x - half_w, pred_ctr_y - half_h, pred_ctr_x + half_w, pred_ctr_y + half_h], axis=-1)


def clip_to_image(boxes, image_hw):
    """boxes [..., 4] xyxy clamped to x in [0, W], y in [0, H] (image_hw: the resized image)."""
    height, width = float(image_hw[0]), float(image_hw[1])
    x1, y1, x2, y2 = tf.unstack(boxes, 4, axis=-1)
    return tf.stack([tf.clip_by_value(x1, 0.0, width), tf.clip_by_value(y1, 0.0, height),
                     tf.clip_by_value(x2, 0.0, width), tf.clip_by_value(y2, 0.0, height)], axis=-1)


def large_enough(boxes, min_size):
    """boxes [N, 4] xyxy -> [N] bool, both sides at least min_size (remove_small_boxes)."""
    return tf.logical_and(boxes[:, 2] - boxes[:, 0] >= min_size, boxes[:, 3] - boxes[:, 1] >= min_size)


def batched_nms(boxes, scores, groups, iou_threshold):
    """NMS within each group (torchvision.ops.batched_nms) -> [K] int32 indices kept, by
    decreasing score. boxes [N, 4] xyxy, scores [N], groups [N] int. A box suppresses a
    lower-scoring one of its group with IoU > iou_threshold."""
    kept = []
    groups = tf.cast(groups, tf.int32)
    for group in np.unique(groups.numpy()):
        members = tf.where(tf.equal(groups, int(group)))[:, 0]
        b = tf.gather(boxes, members)
        keep = tf.image.non_max_suppression(tf.stack([b[:, 1], b[:, 0], b[:, 3], b[:, 2]], axis=1),
                                            tf.gather(scores, members), tf.size(members), iou_threshold)
        kept.append(tf.gather(members, keep))
    if not kept:
        return tf.zeros([0], tf.int32)
    kept = tf.cast(tf.concat(kept, 0), tf.int32)
    order = tf.argsort(tf.gather(scores, kept), direction="DESCENDING", stable=True)
    return tf.gather(kept, order)
