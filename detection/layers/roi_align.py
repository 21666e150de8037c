"""RoIAlign over the FPN levels (PyramidROIAlign).

Each RoI is pooled from one level, chosen by its size (FPN paper, eq. 1):
``k = clip(floor(4 + log2(sqrt(h * w) / 224)), 2, 5)`` with h, w in input pixels.
Pooling is Detectron2's aligned RoIAlign with 2 x 2 samples per bin: samples sit at
``(y1 + (j + 0.5) * h / (2 * size)) / stride - 0.5`` in feature pixels (pixel centres at
integers), made with ``tf.image.crop_and_resize`` at twice the output size and then
averaged 2 x 2. Features are cast to float32 around crop_and_resize so mixed precision works.
"""

import keras
import tensorflow as tf

from detection.core import boxes as box_ops


def aligned_crop_boxes(boxes, origin, scale, frame_hw, samples):
    """Normalised crop_and_resize boxes whose ``samples`` samples per side sit at bin centres.

    boxes: [N, 4] [y1, x1, y2, x2] in the frame of ``origin`` (e.g. input pixels).
    origin: [N, 2] or [2], the (y, x) that maps to frame pixel edge 0; scale: [N, 2] or scalar,
        frame pixels per box unit (1 / stride for a feature map).
    frame_hw: (height, width) of the sampled frame (int or scalar tensor).
    Returns [N, 4] boxes in crop_and_resize's normalised convention (y * (height - 1)).
    """
    boxes = tf.convert_to_tensor(boxes, tf.float32)
    origin = tf.convert_to_tensor(origin, tf.float32)
    scale = tf.cast(scale, tf.float32)
    y1, x1, y2, x2 = tf.unstack(boxes, 4, axis=-1)
    h, w = y2 - y1, x2 - x1
    oy, ox = origin[..., 0], origin[..., 1]
    sy, sx = (scale[..., 0], scale[..., 1]) if scale.shape.rank else (scale, scale)
    first_y = (y1 + 0.5 * h / samples - oy) * sy - 0.5
    last_y = (y1 + (samples - 0.5) * h / samples - oy) * sy - 0.5
    first_x = (x1 + 0.5 * w / samples - ox) * sx - 0.5
    last_x = (x1 + (samples - 0.5) * w / samples - ox) * sx - 0.5
    height = tf.maximum(tf.cast(frame_hw[0], tf.float32) - 1.0, 1.0)
    width = tf.maximum(tf.cast(frame_hw[1], tf.float32) - 1.0, 1.0)
    return tf.stack([first_y / height, first_x / width, last_y / height, last_x / width], axis=-1)


def roi_levels(rois):
    """rois: [..., 4] input pixels -> [...] int32 pyramid level index 0..3 (for P2..P5).

    Every RoI gets a level, also a non-finite one (diverged weights): it then pools NaN,
    the loss turns NaN and training stops with a message, instead of a crash in here."""
    size = tf.sqrt(tf.maximum(box_ops.area(rois), 1e-6))
    level = tf.floor(4.0 + tf.math.log(size / 224.0) / tf.math.log(2.0))
    level = tf.where(tf.math.is_finite(level), level, 2.0)
    return tf.cast(tf.clip_by_value(level, 2.0, 5.0), tf.int32) - 2


@keras.saving.register_keras_serializable(package="detection")
class PyramidROIAlign(keras.layers.Layer):
    """Pools a fixed-size feature crop for every RoI from its FPN level.

    Inputs: rois [B, R, 4] input pixels (zero rows are padding and pool garbage that the
    losses weight out), then P2..P5 [B, h_k, w_k, C].
    Output: [B, R, size, size, C] in the layer's compute dtype.
    """

    def __init__(self, pool_size, strides=(4, 8, 16, 32), **kwargs):
        super().__init__(**kwargs)
        self.pool_size = int(pool_size)
        self.strides = [int(s) for s in strides]

    def call(self, rois, *feature_maps):
        rois = tf.stop_gradient(tf.cast(rois, tf.float32))
        # crop_and_resize refuses non-finite boxes; after a divergence the losses are NaN
        # anyway and the trainer's guard names the step, so pool a zero box instead of failing.
        rois = tf.where(tf.math.is_finite(rois), rois, 0.0)
        batch, num_rois = tf.shape(rois)[0], tf.shape(rois)[1]
        levels = roi_levels(rois)
        samples = 2 * self.pool_size
        pooled, positions = [], []
        for k, (features, stride) in enumerate(zip(feature_maps, self.strides)):
            where = tf.cast(tf.where(tf.equal(levels, k)), tf.int32)  # [n, 2] (image, roi)
            level_boxes = tf.gather_nd(rois, where)
            crop = aligned_crop_boxes(level_boxes, [0.0, 0.0], 1.0 / stride, tf.shape(features)[1:3], samples)
            crops = tf.image.crop_and_resize(
                tf.cast(features, tf.float32), crop, where[:, 0], [samples, samples], method="bilinear")
            pooled.append(tf.nn.avg_pool2d(crops, 2, 2, "VALID"))
            positions.append(where[:, 0] * num_rois + where[:, 1])
        pooled = tf.concat(pooled, axis=0)
        # Back to (image, roi) order: position p holds the crop of flat RoI p.
        order = tf.math.invert_permutation(tf.concat(positions, axis=0))
        pooled = tf.gather(pooled, order)
        channels = feature_maps[0].shape[-1]
        out = tf.reshape(pooled, [batch, num_rois, self.pool_size, self.pool_size, channels])
        return tf.cast(out, self.compute_dtype)

    def compute_output_spec(self, rois, *feature_maps):
        shape = (rois.shape[0], rois.shape[1], self.pool_size, self.pool_size, feature_maps[0].shape[-1])
        return keras.KerasTensor(shape, self.compute_dtype)

    def get_config(self):
        return {**super().get_config(), "pool_size": self.pool_size, "strides": self.strides}
