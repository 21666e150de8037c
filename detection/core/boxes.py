"""Box math on ``[y1, x1, y2, x2]`` float32 boxes in pixels, area ``(y2 - y1) * (x2 - x1)``.

Every function accepts numpy arrays or tensors and returns float32 tensors.
"""

import math

import tensorflow as tf

# Largest log-scale change decode applies, as in Detectron2: exp(4.135) = 62.5 = 1000 / 16.
BBOX_XFORM_CLIP = math.log(1000.0 / 16)
DEFAULT_STD = (0.1, 0.1, 0.2, 0.2)


def area(boxes):
    """boxes: [..., 4] -> [...] areas (negative extents count as zero)."""
    boxes = tf.convert_to_tensor(boxes, tf.float32)
    y1, x1, y2, x2 = tf.unstack(boxes, 4, axis=-1)
    return tf.maximum(y2 - y1, 0.0) * tf.maximum(x2 - x1, 0.0)


def iou(boxes_a, boxes_b):
    """Pairwise intersection over union.

    boxes_a: [N, 4], boxes_b: [M, 4] -> [N, M] float32 in [0, 1]. N or M may be 0. A pair
    whose union is empty (two zero-area boxes) has IoU 0.

    Example: [0, 0, 1, 1] against [0, 0, 1, 0.5] gives 0.5.
    """
    a = tf.convert_to_tensor(boxes_a, tf.float32)
    b = tf.convert_to_tensor(boxes_b, tf.float32)
    ay1, ax1, ay2, ax2 = tf.split(a, 4, axis=1)  # [N, 1] each
    by1, bx1, by2, bx2 = tf.unstack(b, 4, axis=1)  # [M] each
    ih = tf.maximum(tf.minimum(ay2, by2) - tf.maximum(ay1, by1), 0.0)
    iw = tf.maximum(tf.minimum(ax2, bx2) - tf.maximum(ax1, bx1), 0.0)
    inter = ih * iw  # [N, M]
    union = area(a)[:, None] + area(b)[None, :] - inter
    return tf.where(union > 0.0, inter / tf.maximum(union, 1e-12), 0.0)


def encode(boxes, anchors, std=DEFAULT_STD):
    """Regression targets that turn ``anchors`` into ``boxes``.

    boxes, anchors: [..., 4] matching shapes -> deltas [..., 4] as
    (dy / h, dx / w, log(h' / h), log(w' / w)) divided by ``std``.
    Anchors must have positive extent; boxes are floored at 1e-6 extent to keep log finite.
    """
    boxes = tf.convert_to_tensor(boxes, tf.float32)
    anchors = tf.convert_to_tensor(anchors, tf.float32)
    ah = anchors[..., 2] - anchors[..., 0]
    aw = anchors[..., 3] - anchors[..., 1]
    ay = anchors[..., 0] + 0.5 * ah
    ax = anchors[..., 1] + 0.5 * aw
    bh = tf.maximum(boxes[..., 2] - boxes[..., 0], 1e-6)
    bw = tf.maximum(boxes[..., 3] - boxes[..., 1], 1e-6)
    by = boxes[..., 0] + 0.5 * bh
    bx = boxes[..., 1] + 0.5 * bw
    deltas = tf.stack([(by - ay) / ah, (bx - ax) / aw, tf.math.log(bh / ah), tf.math.log(bw / aw)], axis=-1)
    return deltas / tf.constant(std, tf.float32)


def decode(deltas, anchors, std=DEFAULT_STD):
    """Applies ``deltas`` [..., 4] (as made by ``encode``) to ``anchors`` [..., 4] -> boxes [..., 4].

    dh and dw are clamped at log(1000 / 16) before exp, so any finite delta gives finite boxes.
    """
    deltas = tf.convert_to_tensor(deltas, tf.float32) * tf.constant(std, tf.float32)
    anchors = tf.convert_to_tensor(anchors, tf.float32)
    ah = anchors[..., 2] - anchors[..., 0]
    aw = anchors[..., 3] - anchors[..., 1]
    ay = anchors[..., 0] + 0.5 * ah
    ax = anchors[..., 1] + 0.5 * aw
    cy = ay + deltas[..., 0] * ah
    cx = ax + deltas[..., 1] * aw
    h = ah * tf.exp(tf.minimum(deltas[..., 2], BBOX_XFORM_CLIP))
    w = aw * tf.exp(tf.minimum(deltas[..., 3], BBOX_XFORM_CLIP))
    # y2 = y1 + h (not cy + h / 2): matterport's float operations in its order, so that its
    # weights' boxes come out bit for bit (a crop sample on a map's edge is in or out by 1 ulp).
    y1 = cy - 0.5 * h
    x1 = cx - 0.5 * w
    return tf.stack([y1, x1, y1 + h, x1 + w], axis=-1)


def clip(boxes, window):
    """Clips boxes [..., 4] to ``window`` [4] = (y1, x1, y2, x2), or [..., 4] broadcasting."""
    boxes = tf.convert_to_tensor(boxes, tf.float32)
    window = tf.convert_to_tensor(window, tf.float32)
    wy1, wx1, wy2, wx2 = tf.unstack(window, 4, axis=-1)
    y1, x1, y2, x2 = tf.unstack(boxes, 4, axis=-1)
    y1 = tf.clip_by_value(y1, wy1, wy2)
    x1 = tf.clip_by_value(x1, wx1, wx2)
    y2 = tf.clip_by_value(y2, wy1, wy2)
    x2 = tf.clip_by_value(x2, wx1, wx2)
    return tf.stack([y1, x1, y2, x2], axis=-1)


def is_zero_area(boxes):
    """boxes: [..., 4] -> [...] bool, True where height or width is not positive.

    Padding rows (all zeros) are zero-area, which is how fixed-size tensors mark them.
    """
    boxes = tf.convert_to_tensor(boxes, tf.float32)
    return tf.logical_or(boxes[..., 2] <= boxes[..., 0], boxes[..., 3] <= boxes[..., 1])
