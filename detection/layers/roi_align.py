"""RoIAlign over the FPN levels (PyramidROIAlign).

Each RoI is pooled from one level, chosen by its size (FPN paper, eq. 1):
``k = clip(floor(4 + log2(sqrt(h * w) / 224)), 2, 5)`` with h, w in input pixels. The clip
range is that of the maps the heads read, log2 of the first and of the last stride (2..5 for
P2..P5 at 4..32; every mode): torchvision's MultiScaleRoIAlign on MobileNetV3's two maps,
both at stride 32, clips to 5..5 and pools every RoI from the first map.
Pooling is Detectron2's aligned RoIAlign with 2 x 2 samples per bin: samples sit at
``(y1 + (j + 0.5) * h / (2 * size)) / stride - 0.5`` in feature pixels (pixel centres at
integers), bilinearly interpolated, a sample outside ``[0, h_k - 1] x [0, w_k - 1]`` reading 0
(crop_and_resize's extrapolation), then averaged 2 x 2. Two implementations give the same
numbers to float rounding (on unit-scale features about 1e-6 eagerly, up to 1e-4 in a graph or
under XLA, whose rewrites round sample positions differently), but for a sample that lands
exactly on a map's edge, which integer boxes can do: crop_and_resize's rounding puts it just
inside or just outside, the gather path (with and without XLA alike) counts it as inside.

- ``crop_and_resize``: per level, the RoIs of that level (tf.where, dynamic count) go through
  ``tf.image.crop_and_resize`` at twice the output size. Fast on CPU/GPU, but has no XLA kernel.
- ``gather``: all RoIs at once with static shapes: the levels are flattened into one
  [sum_k B * h_k * w_k, C] table and each sample's 4 neighbours are gathered at indices
  offset into the RoI's own level. Compiles with XLA (``jit_compile=True``). It gathers four
  [B * R, 2 * size, 2 * size, C] grids (one per neighbour) and its gradient scatters as many
  rows, so it moves about 4x crop_and_resize's memory; on CPU it is slower (bench/roi_align.py).
  Its gradient is deterministic; crop_and_resize's CPU gradient is not, and loses
  contributions where crops overlap unless TF op determinism is on (tensorflow/tensorflow#42033).

- ``matterport``: matterport's PyramidROIAlign, for its weights: the level is
  ``clip(4 + round(log2(sqrt(h * w) / (224 / sqrt(H * W)))), 2, 5)`` with h, w in matterport's
  normalized coordinates and H, W the input size, and the samples of
  ``tf.image.crop_and_resize`` of the normalized box at pool_size: one bilinear sample per
  bin, the first and last on the box's corners (no 2 x 2 averaging, no half-pixel alignment),
  gathered as in ``gather`` so that a sample on the map's edge always counts as inside (see
  pool_by_matterport_gather).

- ``torchvision``: torchvision's MultiScaleRoIAlign (sampling_ratio 2, aligned=False), for its
  weights. Level (LevelMapper): ``clip(floor(4 + log2(sqrt(area) / 224) + 1e-6), 2, 5)``. On a
  level of stride s the box becomes ``y1 / s .. y2 / s`` (no half-pixel shift), its sides at
  least 1 feature pixel; each bin averages 2 x 2 bilinear samples at ``start + (i + 0.5) * bin / 2``.
  A sample below the map's last row or right of its last column by up to one pixel reads that
  row or column (torchvision clamps it), further out 0. The samples form a uniform grid, which
  crop_and_resize samples; the clamp is the map given one more row and column, copies of its
  last ones. Boxes clipped to the image never sample above row or column 0.

Each mode is a RoIAlignMode in ROI_ALIGN_MODES, which owns its level rule, its sampling, the
frame it samples in, what the mask targets are cropped with and its determinism; callers ask
the object (``roi_align_mode(name)``), never the name. RoIs arrive in the model's box frame
(detection/core/frames.py) and are converted to the frame the mode samples in. Features are
cast to float32 inside so mixed precision works.
"""

import dataclasses
import math
from typing import Callable

import keras
import tensorflow as tf

from detection import choices
from detection.core import boxes as box_ops
from detection.core.frames import convert as convert_frame


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


def level_range(strides):
    """The levels (log2 of the stride) of the first and last map: strides (4, 8, 16, 32) -> (2, 5)."""
    return int(round(math.log2(strides[0]))), int(round(math.log2(strides[-1])))


def _level_index(level, levels):
    """level [...] float (non-finite: the first) -> [...] int32 index of its map, clipped to ``levels``."""
    level = tf.where(tf.math.is_finite(level), level, float(levels[0]))
    return tf.cast(tf.clip_by_value(level, float(levels[0]), float(levels[1])), tf.int32) - levels[0]


def roi_levels(rois, levels=(2, 5)):
    """rois: [..., 4] input pixels -> [...] int32 pyramid level index 0..3 (for P2..P5; levels:
    the first and last map's level, ``level_range``).

    Every RoI gets a level, also a non-finite one (diverged weights): it then pools NaN,
    the loss turns NaN and training stops with a message, instead of a crash in here."""
    size = tf.sqrt(tf.maximum(box_ops.area(rois), 1e-6))
    return _level_index(tf.floor(4.0 + tf.math.log(size / 224.0) / tf.math.log(2.0)), levels)


def clean_rois(rois):
    """rois: [B, R, 4] input pixels, any dtype -> [B, R, 4] float32, non-finite values set to 0.

    No gradient flows to the RoIs (they are targets or proposals, not learned through here).
    Non-finite RoIs appear only after a divergence, when the losses are NaN anyway and the
    trainer's guard names the step: crop_and_resize would refuse them, so pool a zero box."""
    rois = tf.stop_gradient(tf.cast(rois, tf.float32))
    return tf.where(tf.math.is_finite(rois), rois, 0.0)


def pool_by_crop_and_resize(rois, feature_maps, strides, pool_size):
    """RoIAlign with tf.image.crop_and_resize, one call per level (dynamic shapes, no XLA).

    rois: [B, R, 4] float32 input pixels, finite. feature_maps: P2..P5 [B, h_k, w_k, C].
    strides: the 4 level strides in input pixels. Returns [B, R, pool_size, pool_size, C] float32.
    """
    num_rois = tf.shape(rois)[1]
    levels = roi_levels(rois, level_range(strides))
    samples = 2 * pool_size
    crops, positions = [], []
    for k, (features, stride) in enumerate(zip(feature_maps, strides)):
        where = tf.cast(tf.where(tf.equal(levels, k)), tf.int32)  # [n, 2] (image, roi)
        boxes = aligned_crop_boxes(tf.gather_nd(rois, where), [0.0, 0.0], 1.0 / stride, tf.shape(features)[1:3],
                                   samples)
        crops.append(tf.image.crop_and_resize(tf.cast(features, tf.float32), boxes, where[:, 0],
                                              [samples, samples], method="bilinear"))
        positions.append(where[:, 0] * num_rois + where[:, 1])
    crops = tf.concat(crops, axis=0)
    # Back to (image, roi) order: position p holds the crop of flat RoI p.
    crops = tf.gather(crops, tf.math.invert_permutation(tf.concat(positions, axis=0)))
    return _unflatten(tf.nn.avg_pool2d(crops, 2, 2, "VALID"), rois, pool_size, feature_maps)


def torchvision_levels(rois, levels=(2, 5)):
    """rois: [..., 4] input pixels -> [...] int32 level index 0..3 (P2..P5), torchvision's
    LevelMapper (eps 1e-6 inside the floor) clipped to ``levels``. A zero-area (padding) box
    gets the first."""
    size = tf.sqrt(tf.maximum(box_ops.area(rois), 1e-12))
    return _level_index(tf.floor(4.0 + tf.math.log(size / 224.0) / tf.math.log(2.0) + 1e-6), levels)


def pool_by_torchvision(rois, feature_maps, strides, pool_size, sampling_ratio=2):
    """torchvision's MultiScaleRoIAlign (module docstring) with crop_and_resize, one call per level.

    rois: [B, R, 4] float32 input pixels, finite. feature_maps: P2..P5 [B, h_k, w_k, C].
    Returns [B, R, pool_size, pool_size, C] float32."""
    num_rois = tf.shape(rois)[1]
    levels = torchvision_levels(rois, level_range(strides))
    samples = pool_size * sampling_ratio
    crops, positions = [], []
    for k, (features, stride) in enumerate(zip(feature_maps, strides)):
        features = tf.cast(features, tf.float32)
        # one more row and column, copies of the last: torchvision's clamp within one pixel
        features = tf.concat([features, features[:, -1:]], axis=1)
        features = tf.concat([features, features[:, :, -1:]], axis=2)
        h = tf.cast(tf.shape(features)[1] - 1, tf.float32)
        w = tf.cast(tf.shape(features)[2] - 1, tf.float32)
        where = tf.cast(tf.where(tf.equal(levels, k)), tf.int32)  # [n, 2] (image, roi)
        y1, x1, y2, x2 = tf.unstack(tf.gather_nd(rois, where) / float(stride), 4, axis=-1)
        step_h = tf.maximum(y2 - y1, 1.0) / samples
        step_w = tf.maximum(x2 - x1, 1.0) / samples
        first_y, first_x = y1 + 0.5 * step_h, x1 + 0.5 * step_w
        last_y, last_x = first_y + (samples - 1) * step_h, first_x + (samples - 1) * step_w
        boxes = tf.stack([first_y / h, first_x / w, last_y / h, last_x / w], axis=-1)  # the map has h + 1 rows
        crops.append(tf.image.crop_and_resize(features, boxes, where[:, 0], [samples, samples], method="bilinear"))
        positions.append(where[:, 0] * num_rois + where[:, 1])
    crops = tf.gather(tf.concat(crops, axis=0), tf.math.invert_permutation(tf.concat(positions, axis=0)))
    pooled = tf.nn.avg_pool2d(crops, sampling_ratio, sampling_ratio, "VALID")
    return _unflatten(pooled, rois, pool_size, feature_maps)


def matterport_levels(rois, image_hw, levels=(2, 5)):
    """rois: [..., 4] matterport-normalized boxes, image_hw: (H, W) of the input -> [...] int32
    level index 0..3 (P2..P5) by matterport's rule (module docstring). A zero-area (padding)
    or non-finite box gets P2, where matterport's int cast of log2(0) = -inf also puts it."""
    y1, x1, y2, x2 = tf.unstack(rois, 4, axis=-1)
    image_area = tf.cast(image_hw[0], tf.float32) * tf.cast(image_hw[1], tf.float32)
    # The float ops of matterport's log2_graph, in its order: level boundaries fall alike.
    level = tf.math.log(tf.sqrt((y2 - y1) * (x2 - x1)) / (224.0 / tf.sqrt(image_area))) / tf.math.log(2.0)
    return _level_index(4.0 + tf.round(level), levels)


def _unflatten(pooled, rois, pool_size, feature_maps):
    """[B * R, pool, pool, C] -> [B, R, pool, pool, C]."""
    shape = tf.shape(rois)
    return tf.reshape(pooled, [shape[0], shape[1], pool_size, pool_size, feature_maps[0].shape[-1]])


def flat_level_table(feature_maps):
    """All levels as one gather table, plus where each level sits in it.

    feature_maps: P2..P5 [B, h_k, w_k, C], any float dtype.
    Returns table [sum_k B * h_k * w_k, C] float32 (level-major, then image, y, x), and int32
    [4] tensors heights h_k, widths w_k and offsets (first row of each level in the table).
    """
    shapes = [tf.shape(f) for f in feature_maps]
    sizes = tf.stack([s[0] * s[1] * s[2] for s in shapes])
    offsets = tf.concat([[0], tf.cumsum(sizes)[:-1]], axis=0)
    channels = feature_maps[0].shape[-1]
    table = tf.concat([tf.reshape(tf.cast(f, tf.float32), [-1, channels]) for f in feature_maps], axis=0)
    return table, tf.stack([s[1] for s in shapes]), tf.stack([s[2] for s in shapes]), offsets


def sample_coords(first, last, size, samples):
    """Sample positions along one axis in feature pixels, computed as crop_and_resize does.

    first, last: [N] float32 normalised positions of the first and last sample (a pair of
    columns of aligned_crop_boxes); size: [N] int32 length of the axis; samples: int.
    Returns [N, samples]: ``first * (size - 1) + j * ((last - first) * (size - 1) / (samples - 1))``,
    the float operations of crop_and_resize's kernel in its order, so that without XLA the
    positions are crop_and_resize's to the bit (also its collapse to row 0 on a 1-pixel map).
    """
    span = tf.cast(size - 1, tf.float32)[:, None]
    step = (last - first)[:, None] * span / (samples - 1)
    return first[:, None] * span + tf.range(samples, dtype=tf.float32)[None, :] * step


def bilinear_taps(coords, size):
    """The two neighbours of each sample along one axis and their weights.

    coords: [N, S] float32 positions in feature pixels; size: [N] int32 length of the axis.
    Returns (low, high) [N, S] int32 indices in [0, size - 1] and (w_low, w_high) [N, S]
    float32 weights. A sample outside [0, size - 1] (or NaN) gets weights 0, as
    crop_and_resize's extrapolation_value=0 does; its indices are clamped to stay valid.
    """
    last = tf.cast(size - 1, tf.float32)[:, None]
    # A sample exactly on the edge (integer boxes put some there) is inside, but rounding puts
    # it a few ulp either side, differently with and without XLA: so a few ulp of slack.
    slack = 1e-6 * (last + 1.0)
    inside = (coords >= -slack) & (coords <= last + slack)
    coords = tf.minimum(tf.maximum(tf.where(inside, coords, 0.0), 0.0), last)
    low = tf.floor(coords)
    w_high = tf.where(inside, coords - low, 0.0)
    w_low = tf.where(inside, 1.0 - w_high, 0.0)
    low = tf.cast(low, tf.int32)
    high = tf.minimum(low + 1, size[:, None] - 1)  # at coords == size - 1, w_high is 0
    return (low, high), (w_low, w_high)


def pool_by_gather(rois, feature_maps, strides, pool_size):
    """RoIAlign by gathering bilinear neighbours from one flat table (static shapes, XLA-ready).

    rois: [B, R, 4] float32 input pixels, finite. feature_maps: P2..P5 [B, h_k, w_k, C].
    strides: the 4 level strides in input pixels. Returns [B, R, pool_size, pool_size, C] float32,
    the same numbers as pool_by_crop_and_resize (to float rounding).
    """
    flat = tf.reshape(rois, [-1, 4])  # [N, 4], N = B * R
    level = roi_levels(flat, level_range(strides))
    stride = tf.gather(tf.constant(strides, tf.float32), level)
    scale = tf.stack([1.0 / stride, 1.0 / stride], axis=-1)
    samples = 2 * pool_size

    def crop_boxes(height, width):
        return aligned_crop_boxes(flat, [0.0, 0.0], scale, (height, width), samples)

    sampled = gather_crops(tf.shape(rois)[0], tf.shape(rois)[1], feature_maps, level, crop_boxes, samples)
    return _unflatten(tf.nn.avg_pool2d(sampled, 2, 2, "VALID"), rois, pool_size, feature_maps)


def pool_by_matterport_gather(rois, feature_maps, image_hw, pool_size, levels=(2, 5)):
    """matterport's RoIAlign (its level rule; one bilinear sample per bin, corner to corner, on
    the normalized box as crop_and_resize takes it) with gathered samples, so that a sample
    on a map's edge (a box clipped to the image, which is common) is inside whatever the
    rounding of the box's last bit: crop_and_resize drops it (reads 0) when the rounding
    lands it an ulp past the edge, which made the same RoI score differently eagerly and in
    a graph. rois: [B, R, 4] matterport-normalized, finite. Returns [B, R, pool, pool, C]."""
    flat = tf.reshape(rois, [-1, 4])
    level = matterport_levels(flat, image_hw, levels)
    sampled = gather_crops(tf.shape(rois)[0], tf.shape(rois)[1], feature_maps, level, lambda height, width: flat,
                           pool_size)
    return _unflatten(sampled, rois, pool_size, feature_maps)


def gather_crops(batch, num_rois, feature_maps, level, crop_boxes, samples):
    """Bilinear samples of each RoI on its level's map, gathered from one flat table.

    level: [N] int32 level index of each of the N = batch * num_rois RoIs; crop_boxes(height
    [N], width [N]) -> [N, 4] boxes in crop_and_resize's normalised convention (y * (h - 1))
    on the RoI's map; samples per side. Returns [N, samples, samples, C] float32.
    """
    table, heights, widths, offsets = flat_level_table(feature_maps)
    # Per-RoI level geometry, looked up instead of branching so every shape stays static.
    height, width = tf.gather(heights, level), tf.gather(widths, level)
    image = tf.repeat(tf.range(batch), num_rois)
    first_row = tf.gather(offsets, level) + image * height * width  # [N], table row of (image, 0, 0)
    first_y, first_x, last_y, last_x = tf.unstack(crop_boxes(height, width), 4, axis=-1)
    y_taps, wy_taps = bilinear_taps(sample_coords(first_y, last_y, height, samples), height)
    x_taps, wx_taps = bilinear_taps(sample_coords(first_x, last_x, width, samples), width)
    # Weighted sum of the 4 neighbours, one [N, S, S, C] gather each into a running total,
    # rather than one stacked [N, S, S, 4, C] gather that holds all four at once.
    sampled = 0.0
    for y, wy in zip(y_taps, wy_taps):
        rows = first_row[:, None] + y * width[:, None]  # [N, S]
        for x, wx in zip(x_taps, wx_taps):
            values = tf.gather(table, rows[:, :, None] + x[:, None, :])  # [N, S, S, C]
            sampled += values * (wy[:, :, None] * wx[:, None, :])[..., None]
    return sampled


@dataclasses.dataclass(frozen=True)
class RoIAlignMode:
    """One ROI_ALIGN_MODE: everything that differs between RoIAlign conventions.

    frame: the box frame (detection/core/frames.py) its pooler takes RoIs in;
    pool(rois [B, R, 4] in ``frame``, P2..P5, strides, pool_size, image_hw) -> [B, R, pool,
        pool, C] float32: the level rule and the sampling;
    aligned_masks: the mask targets are cropped at bin centres, as this pooling samples
        (else corner to corner, as matterport's crop_and_resize); see
        detection/layers/rcnn_target.py;
    deterministic_gpu_gradient: its gradient is deterministic on a GPU (crop_and_resize's is
        not, and TensorFlow raises under op determinism: detection/engine/determinism.py).
    """

    name: str
    frame: str
    pool: Callable
    aligned_masks: bool
    deterministic_gpu_gradient: bool


def _pixel_pooler(pool):
    return lambda rois, feature_maps, strides, pool_size, image_hw: pool(rois, feature_maps, strides, pool_size)


def _matterport_pooler(rois, feature_maps, strides, pool_size, image_hw):
    return pool_by_matterport_gather(rois, feature_maps, image_hw, pool_size, level_range(strides))


# The ROI_ALIGN_MODE registry (names: detection/choices.py ROI_ALIGN_MODES).
ROI_ALIGN_MODES = {
    "crop_and_resize": RoIAlignMode("crop_and_resize", "pixels", _pixel_pooler(pool_by_crop_and_resize),
                                    aligned_masks=True, deterministic_gpu_gradient=False),
    "gather": RoIAlignMode("gather", "pixels", _pixel_pooler(pool_by_gather),
                           aligned_masks=True, deterministic_gpu_gradient=True),
    "matterport": RoIAlignMode("matterport", "normalized", _matterport_pooler,
                               aligned_masks=False, deterministic_gpu_gradient=True),
    "torchvision": RoIAlignMode("torchvision", "pixels", _pixel_pooler(pool_by_torchvision),
                                aligned_masks=True, deterministic_gpu_gradient=False),
}
MODES = tuple(ROI_ALIGN_MODES)


def roi_align_mode(name):
    """The RoIAlignMode called ``name``; ValueError naming ROI_ALIGN_MODE for another name."""
    return choices.lookup(ROI_ALIGN_MODES, name, "ROI_ALIGN_MODE")


@keras.saving.register_keras_serializable(package="detection")
class PyramidROIAlign(keras.layers.Layer):
    """Pools a fixed-size feature crop for every RoI from its FPN level.

    Inputs: rois [B, R, 4] in the box frame ``frame`` (zero rows are padding and pool
    garbage that the losses weight out), then P2..P5 [B, h_k, w_k, C].
    Output: [B, R, size, size, C] in the layer's compute dtype. The RoIs stay float32 under
    mixed precision (the layer does not autocast its inputs).
    mode: "crop_and_resize" (fast without XLA) or "gather" (static shapes, compiles with XLA),
    the same numbers (module docstring); or "matterport", matterport's own sampling.
    strides: of P2..P5 in input pixels (the input size is P2's size times strides[0]).
    """

    def __init__(self, pool_size, strides=(4, 8, 16, 32), mode="crop_and_resize", frame="pixels", **kwargs):
        # No autocast: under mixed_bfloat16 Keras would cast the float32 RoIs to bfloat16
        # before call (8 bits of mantissa: a coordinate of 600 px moves by up to 2 px, one of
        # 0.6 in the normalized frame by 0.002). Features are cast to float32 inside anyway.
        kwargs.setdefault("autocast", False)
        super().__init__(**kwargs)
        if mode not in ROI_ALIGN_MODES:
            raise ValueError(f"PyramidROIAlign mode must be one of {MODES}, got {mode!r}")
        self.pool_size = int(pool_size)
        self.strides = [int(s) for s in strides]
        self.mode = mode
        self.frame = frame

    def call(self, rois, *feature_maps):
        rois = clean_rois(rois)
        hw = input_hw(feature_maps[0], self.strides[0])
        mode = roi_align_mode(self.mode)
        out = mode.pool(convert_frame(rois, hw, self.frame, mode.frame), feature_maps, self.strides, self.pool_size,
                        hw)
        return tf.cast(out, self.compute_dtype)

    def compute_output_spec(self, rois, *feature_maps):
        shape = (rois.shape[0], rois.shape[1], self.pool_size, self.pool_size, feature_maps[0].shape[-1])
        return keras.KerasTensor(shape, self.compute_dtype)

    def get_config(self):
        return {**super().get_config(), "pool_size": self.pool_size, "strides": self.strides, "mode": self.mode,
                "frame": self.frame}


def input_hw(p2, stride):
    """(H, W) of the model input from the P2 map [B, h, w, C] and its stride (the input side is
    a multiple of 64, so P2's side is exactly H / stride): ints when static, tensors otherwise."""
    h, w = p2.shape[1], p2.shape[2]
    if h is None or w is None:
        dynamic = tf.shape(p2)
        h, w = (dynamic[1] if h is None else h), (dynamic[2] if w is None else w)
    return h * stride, w * stride
