"""Anchor generation.

Conventions (matterport's and TF Model Garden's):
  * An anchor's centre at feature cell (i, j) of a level with stride s is ((i + 0.5) s, (j + 0.5) s).
  * A scale is the side of the ratio-1 anchor in input pixels; ratio = width / height, so an
    anchor of scale S and ratio r has height S / sqrt(r) and width S * sqrt(r).
  * Boxes are [y1, x1, y2, x2] in input-image pixels.
  * Row order: level, then y, then x, then (scale, ratio) with ratio fastest. A level's rows
    are ``(y * W + x) * A + a``, which is the order of an RPN head's output reshaped from
    [H, W, A * k] to [H * W * A, k].
"""

import numpy as np


def anchor_shapes(scales, ratios):
    """Heights and widths of the base anchors: -> (heights [A], widths [A]), A = len(scales) * len(ratios)."""
    scales, ratios = np.meshgrid(np.asarray(scales, np.float64), np.asarray(ratios, np.float64), indexing="ij")
    scales, ratios = scales.ravel(), ratios.ravel()
    return scales / np.sqrt(ratios), scales * np.sqrt(ratios)


def generate_anchors(scales, ratios, feature_shape, stride, anchor_stride=1):
    """Anchors of one level.

    scales: [S] sides of ratio-1 anchors in pixels; ratios: [R] width / height;
    feature_shape: (H, W) of the feature map; stride: input pixels per feature cell;
    anchor_stride: anchors at every anchor_stride-th cell.
    Returns [H' * W' * S * R, 4] float32 [y1, x1, y2, x2], H' = ceil(H / anchor_stride).

    Example: scale 64, ratio 1, a 2x2 map at stride 32 gives
    [[-16,-16,48,48], [-16,16,48,80], [16,-16,80,48], [16,16,80,80]].
    """
    heights, widths = anchor_shapes(scales, ratios)
    ys = (np.arange(0, feature_shape[0], anchor_stride) + 0.5) * stride
    xs = (np.arange(0, feature_shape[1], anchor_stride) + 0.5) * stride
    cy, cx = np.meshgrid(ys, xs, indexing="ij")  # [H', W']
    cy = cy[:, :, None]
    cx = cx[:, :, None]
    boxes = np.stack([cy - heights / 2, cx - widths / 2, cy + heights / 2, cx + widths / 2], axis=-1)
    return boxes.reshape(-1, 4).astype(np.float32)


def feature_shapes(image_shape, strides):
    """(H, W) of each pyramid level for an input of ``image_shape`` [H, W, ...]: ceil(side / stride)."""
    return [(int(np.ceil(image_shape[0] / s)), int(np.ceil(image_shape[1] / s))) for s in strides]


def generate_pyramid_anchors(scales, ratios, image_shape, strides, anchor_stride=1):
    """Anchors of all levels, one scale per level.

    scales: [L] one scale per level; ratios: [R]; image_shape: [H, W, ...]; strides: [L].
    Returns (anchors [N, 4] float32 in level, y, x, ratio order; level_of_anchor [N] int32).
    """
    per_level = [
        generate_anchors([scale], ratios, shape, stride, anchor_stride)
        for scale, shape, stride in zip(scales, feature_shapes(image_shape, strides), strides)
    ]
    levels = np.concatenate([np.full(len(a), i, np.int32) for i, a in enumerate(per_level)])
    return np.concatenate(per_level, axis=0), levels


def pyramid_anchors_for_image(image_shape, config):
    """The config's anchors [N, 4] float32 for a model input of ``image_shape`` [H, W, ...].

    Static (python ints) -> a numpy constant built once at trace time; dynamic (tensors) ->
    built in the graph with the same layout as ``generate_pyramid_anchors``.
    """
    args = (config.RPN_ANCHOR_SCALES, config.RPN_ANCHOR_RATIOS)
    if isinstance(image_shape[0], int) and isinstance(image_shape[1], int):
        return generate_pyramid_anchors(*args, image_shape, config.BACKBONE_STRIDES, config.RPN_ANCHOR_STRIDE)[0]
    return _pyramid_anchors_tf(*args, image_shape, config.BACKBONE_STRIDES, config.RPN_ANCHOR_STRIDE)


def _pyramid_anchors_tf(scales, ratios, image_shape, strides, anchor_stride):
    import tensorflow as tf

    levels = []
    for scale, stride in zip(scales, strides):
        heights, widths = anchor_shapes([scale], ratios)
        height = tf.cast(tf.math.ceil(tf.cast(image_shape[0], tf.float32) / stride), tf.int32)
        width = tf.cast(tf.math.ceil(tf.cast(image_shape[1], tf.float32) / stride), tf.int32)
        ys = (tf.cast(tf.range(0, height, anchor_stride), tf.float32) + 0.5) * stride
        xs = (tf.cast(tf.range(0, width, anchor_stride), tf.float32) + 0.5) * stride
        cy, cx = tf.meshgrid(ys, xs, indexing="ij")
        cy, cx = cy[:, :, None], cx[:, :, None]
        h = tf.constant(heights, tf.float32)
        w = tf.constant(widths, tf.float32)
        boxes = tf.stack([cy - h / 2, cx - w / 2, cy + h / 2, cx + w / 2], axis=-1)
        levels.append(tf.reshape(boxes, [-1, 4]))
    return tf.concat(levels, axis=0)
