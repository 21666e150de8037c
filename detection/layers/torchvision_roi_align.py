"""torchvision's MultiScaleRoIAlign (sampling_ratio 2, aligned=False), for its weights.

Level of a box (LevelMapper): ``clip(floor(4 + log2(sqrt(area) / 224) + 1e-6), 2, 5)``.
On level k (scale 1 / 2^k) the box becomes ``x1 * scale .. x2 * scale`` (no half-pixel shift:
aligned=False), its sides at least 1 feature pixel; each of the out x out bins averages
2 x 2 bilinear samples at ``start + (i + 0.5) * bin / 2``. A sample above the map's last
row or column by up to one pixel reads that last row or column (torchvision clamps it),
further out it reads 0.

The samples of a box form a uniform 2out x 2out grid, which is what tf.image.crop_and_resize
samples; torchvision's clamping at the bottom and right is reproduced by giving the map one
more row and column, copies of its last ones, and crop_and_resize's zero extrapolation does
the rest. Boxes clipped to the image never sample above row or column 0, where torchvision
clamps too.
"""

import tensorflow as tf


def box_levels(boxes, first=2, last=5):
    """boxes [N, 4] xyxy input pixels -> [N] int32 level first..last (torchvision's LevelMapper)."""
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    level = tf.floor(4.0 + tf.math.log(tf.sqrt(area) / 224.0) / tf.math.log(2.0) + 1e-6)
    return tf.cast(tf.clip_by_value(level, float(first), float(last)), tf.int32)


def roi_align_level(feature, boxes, scale, output_size, sampling_ratio=2):
    """feature [h, w, C]; boxes [N, 4] xyxy input pixels -> [N, out, out, C] float32."""
    feature = tf.cast(feature, tf.float32)
    h, w = feature.shape[0], feature.shape[1]
    # one more row and column, copies of the last: torchvision's clamp within one pixel
    feature = tf.concat([feature, feature[-1:]], axis=0)
    feature = tf.concat([feature, feature[:, -1:]], axis=1)
    x1, y1, x2, y2 = tf.unstack(tf.cast(boxes, tf.float32) * scale, 4, axis=1)
    roi_w = tf.maximum(x2 - x1, 1.0)
    roi_h = tf.maximum(y2 - y1, 1.0)
    n = output_size * sampling_ratio
    step_w, step_h = roi_w / n, roi_h / n
    first_x, first_y = x1 + 0.5 * step_w, y1 + 0.5 * step_h
    last_x, last_y = first_x + (n - 1) * step_w, first_y + (n - 1) * step_h
    crop_boxes = tf.stack([first_y / h, first_x / w, last_y / h, last_x / w], axis=1)  # padded map: h + 1 rows
    crops = tf.image.crop_and_resize(feature[None], crop_boxes, tf.zeros(tf.shape(boxes)[:1], tf.int32), (n, n))
    crops = tf.reshape(crops, [-1, output_size, sampling_ratio, output_size, sampling_ratio, crops.shape[-1]])
    return tf.reduce_mean(crops, axis=[2, 4])


def multiscale_roi_align(features, boxes, output_size, sampling_ratio=2, levels=(2, 3, 4, 5)):
    """features: maps [h_k, w_k, C] of the given levels (level k: stride 2^k; ResNet-50-FPN's
    2..5); boxes [N, 4] xyxy input pixels -> [N, out, out, C] float32, each box pooled from
    map ``level - levels[0]`` with its level clamped to levels[0]..levels[-1], as torchvision's
    mapper (MobileNetV3-FPN's two maps are both level 5: every box reads the first)."""
    box_level = box_levels(boxes, levels[0], levels[-1])
    channels = features[0].shape[-1]
    pooled = tf.zeros([tf.shape(boxes)[0], output_size, output_size, channels], tf.float32)
    for position, (k, feature) in enumerate(zip(levels, features)):
        index = tf.where(tf.equal(box_level - levels[0], position))[:, 0]
        if int(tf.size(index)) == 0:
            continue
        values = roi_align_level(feature, tf.gather(boxes, index), 1.0 / 2 ** k, output_size, sampling_ratio)
        pooled = tf.tensor_scatter_nd_update(pooled, index[:, None], values)
    return pooled
