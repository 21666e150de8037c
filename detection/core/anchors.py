"""Anchor generation.

Conventions:
  * An anchor's centre at feature cell (i, j) of a level with stride s is
    ((i + offset) s, (j + offset) s): offset 0.5 (the default, TF Model Garden and Detectron2's
    centred anchors) puts it at the cell's centre, offset 0 at its corner (matterport).
  * A scale is the side of the ratio-1 anchor in input pixels; ratio = width / height (the
    sense of matterport and TF Model Garden), so an anchor of scale S and ratio r has height
    S / sqrt(r) and width S * sqrt(r).
  * Boxes are [y1, x1, y2, x2] in input-image pixels.
  * Row order: level, then y, then x, then (scale, ratio) with ratio fastest. A level's rows
    are ``(y * W + x) * A + a``, which is the order of an RPN head's output reshaped from
    [H, W, A * k] to [H * W * A, k].
  * A level has one scale (RPN_ANCHOR_SCALES gives one per level), or with ``every_level``
    (ANCHOR_SCALES_ON_EVERY_LEVEL) all of them: A = scales x ratios anchors per location.

Each ANCHOR_GENERATOR is an AnchorGenerator in ANCHOR_GENERATORS (the NumPy and the in-graph
rule): ``standard`` as above; ``torchvision`` its AnchorGenerator (torchvision.models.detection):
base anchors ``round([-w, -h, w, h] / 2)`` in float32 (torch.round, halves to even), centred at
``(i * stride_y, j * stride_x)`` (offset 0) with the integer stride ``padded side // level side``
per axis, which for P6 of an input whose side / 32 is odd is not 64 (a 352-wide input: P6 6 wide,
stride 58). Example: scale 32, ratios (w / h) 2, 1, 0.5 -> base anchors (y1, x1, y2, x2)
[-11, -23, 11, 23], [-16, -16, 16, 16], [-23, -11, 23, 11]. With several scales on a level its
order is torchvision's: ratio-major, then scale (scales 32, 64, ratios 2, 1: [-11, -23, 11, 23],
[-23, -45, 23, 45], [-16, -16, 16, 16], [-32, -32, 32, 32]).

This module needs NumPy only; the in-graph variant for dynamic input shapes imports
TensorFlow when it is called.
"""

import dataclasses

import numpy as np


def anchor_shapes(scales, ratios):
    """Heights and widths of the base anchors: -> (heights [A], widths [A]), A = len(scales) * len(ratios)."""
    scales, ratios = np.meshgrid(np.asarray(scales, np.float64), np.asarray(ratios, np.float64), indexing="ij")
    scales, ratios = scales.ravel(), ratios.ravel()
    return scales / np.sqrt(ratios), scales * np.sqrt(ratios)


def generate_anchors(scales, ratios, feature_shape, stride, anchor_stride=1, offset=0.5):
    """Anchors of one level.

    scales: [S] sides of ratio-1 anchors in pixels; ratios: [R] width / height;
    feature_shape: (H, W) of the feature map; stride: input pixels per feature cell;
    anchor_stride: anchors at every anchor_stride-th cell; offset: where in its cell an
    anchor is centred (0.5 the centre, 0 the top-left corner).
    Returns [H' * W' * S * R, 4] float32 [y1, x1, y2, x2], H' = ceil(H / anchor_stride).

    Example: scale 64, ratio 1, a 2x2 map at stride 32 gives
    [[-16,-16,48,48], [-16,16,48,80], [16,-16,80,48], [16,16,80,80]] (offset 0.5) and
    [[-32,-32,32,32], [-32,0,32,64], [0,-32,64,32], [0,0,64,64]] (offset 0).
    """
    heights, widths = anchor_shapes(scales, ratios)
    ys = (np.arange(0, feature_shape[0], anchor_stride) + offset) * stride
    xs = (np.arange(0, feature_shape[1], anchor_stride) + offset) * stride
    cy, cx = np.meshgrid(ys, xs, indexing="ij")  # [H', W']
    cy = cy[:, :, None]
    cx = cx[:, :, None]
    boxes = np.stack([cy - heights / 2, cx - widths / 2, cy + heights / 2, cx + widths / 2], axis=-1)
    return boxes.reshape(-1, 4).astype(np.float32)


def feature_shapes(image_shape, strides):
    """(H, W) of each pyramid level for an input of ``image_shape`` [H, W, ...]: ceil(side / stride)."""
    return [(int(np.ceil(image_shape[0] / s)), int(np.ceil(image_shape[1] / s))) for s in strides]


def generate_pyramid_anchors(scales, ratios, image_shape, strides, anchor_stride=1, offset=0.5):
    """Anchors of all levels.

    scales: [L] one scale per level, or [L][S] several (scale-major, ratio fastest); ratios: [R];
    image_shape: [H, W, ...]; strides: [L];
    anchor_stride, offset: as generate_anchors.
    Returns (anchors [N, 4] float32 in level, y, x, ratio order; level_of_anchor [N] int32).
    """
    per_level = [
        generate_anchors(np.atleast_1d(scale), ratios, shape, stride, anchor_stride, offset)
        for scale, shape, stride in zip(scales, feature_shapes(image_shape, strides), strides)
    ]
    levels = np.concatenate([np.full(len(a), i, np.int32) for i, a in enumerate(per_level)])
    return np.concatenate(per_level, axis=0), levels


def torchvision_base_anchors(scales, ratios):
    """torchvision's base anchors of one level: scales [S] (or one scale), ratios (width / height,
    ours) -> [R * S, 4] float32 [y1, x1, y2, x2], ratio-major, rounded as its generate_anchors
    (float32 arithmetic)."""
    ratios_hw = np.float32(1.0) / np.asarray(ratios, np.float32)  # torchvision's ratios are h / w
    h_ratios = np.sqrt(ratios_hw)
    w_ratios = np.float32(1) / h_ratios
    scales = np.atleast_1d(np.asarray(scales, np.float32))
    ws = (w_ratios[:, None] * scales[None, :]).reshape(-1)
    hs = (h_ratios[:, None] * scales[None, :]).reshape(-1)
    return np.round(np.stack([-hs, -ws, hs, ws], axis=1) / np.float32(2)).astype(np.float32)


def _torchvision_level_numpy(scales, ratios, padded_hw, feature_hw):
    h, w = int(feature_hw[0]), int(feature_hw[1])
    stride_y, stride_x = int(padded_hw[0]) // h, int(padded_hw[1]) // w
    ys, xs = np.meshgrid(np.arange(h, dtype=np.float32) * stride_y, np.arange(w, dtype=np.float32) * stride_x,
                         indexing="ij")
    shifts = np.stack([ys, xs, ys, xs], axis=-1).reshape(-1, 1, 4)
    return (shifts + torchvision_base_anchors(scales, ratios)[None]).reshape(-1, 4)


def _torchvision_numpy(spec, image_shape):
    shapes = feature_shapes(image_shape, spec.strides)
    return np.concatenate([_torchvision_level_numpy(scales, spec.ratios, image_shape[:2], shape)
                           for scales, shape in zip(spec.level_scales, shapes)], axis=0).astype(np.float32)


def _torchvision_tf(spec, image_shape):
    import tensorflow as tf

    levels = []
    padded_h, padded_w = tf.cast(image_shape[0], tf.int32), tf.cast(image_shape[1], tf.int32)
    for scales, stride in zip(spec.level_scales, spec.strides):
        height = (padded_h + stride - 1) // stride
        width = (padded_w + stride - 1) // stride
        ys = tf.cast(tf.range(height) * (padded_h // height), tf.float32)
        xs = tf.cast(tf.range(width) * (padded_w // width), tf.float32)
        cy, cx = tf.meshgrid(ys, xs, indexing="ij")
        shifts = tf.reshape(tf.stack([cy, cx, cy, cx], axis=-1), [-1, 1, 4])
        levels.append(tf.reshape(shifts + tf.constant(torchvision_base_anchors(scales, spec.ratios))[None], [-1, 4]))
    return tf.concat(levels, axis=0)


def _standard_numpy(spec, image_shape):
    return generate_pyramid_anchors(spec.level_scales, spec.ratios, image_shape, spec.strides, spec.anchor_stride,
                                    spec.offset)[0]


@dataclasses.dataclass(frozen=True)
class AxisLayout:
    """The anchors of one (level, scale, ratio) along one axis, for G inputs: cell k (0 .. cells
    - 1) has its centre at k * spacing + first; spacing, first: [G] float64; side: the anchors'
    extent; edges(input indices [B], cells [B, n] int64) -> (low, high) [B, n] float64, the
    coordinates the generator makes (read by detection/analysis/anchor_match.py)."""

    spacing: np.ndarray
    first: np.ndarray
    side: float
    edges: object


@dataclasses.dataclass(frozen=True)
class AnchorGenerator:
    """One ANCHOR_GENERATOR: numpy(spec, (H, W) ints) and tf(spec, (H, W) scalar tensors) -> the
    anchors [N, 4] float32 of an input of that size, in (level, y, x, ratio) order;
    axis(spec, level, scale, ratio_index, padded_sides [G], cells [G], axis 0|1) -> AxisLayout;
    anchor_stride: whether it honours RPN_ANCHOR_STRIDE (anchors on every k-th cell)."""

    numpy: object
    tf: object
    axis: object
    anchor_stride: bool


def _standard_axis(spec, level, scale, ratio_index, padded_sides, cells, axis):
    """The standard generator's anchors of one shape along one axis (AnchorGenerator.axis):
    centres (k * anchor_stride + offset) * stride, edges centre -+ side / 2 in float64 rounded
    to float32."""
    stride = spec.strides[level]
    side = float(anchor_shapes([scale], spec.ratios)[axis][ratio_index])
    count = len(padded_sides)

    def edges(_, k):
        centre = (k * spec.anchor_stride + spec.offset) * stride
        return ((centre - side / 2).astype(np.float32).astype(np.float64),
                (centre + side / 2).astype(np.float32).astype(np.float64))

    return AxisLayout(np.full(count, float(spec.anchor_stride * stride)), np.full(count, spec.offset * stride),
                     side, edges)


def _torchvision_axis(spec, level, scale, ratio_index, padded_sides, cells, axis):
    """The torchvision generator's anchors of one shape along one axis (AnchorGenerator.axis):
    the rounded base anchor [low, high] shifted by k * (padded side // cells) in float32; that
    step depends on the box's padded input."""
    base = torchvision_base_anchors([scale], spec.ratios)[ratio_index]
    low, high = base[axis], base[axis + 2]
    step = (np.asarray(padded_sides, np.int64) // np.asarray(cells, np.int64)).astype(np.float32)

    def edges(index, k):
        shift = k.astype(np.float32) * step[index, None]
        return (shift + low).astype(np.float64), (shift + high).astype(np.float64)

    return AxisLayout(step.astype(np.float64), np.full(len(step), (float(low) + float(high)) / 2),
                     float(high) - float(low), edges)


# The ANCHOR_GENERATOR registry (names: detection/choices.py ANCHOR_GENERATORS).
ANCHOR_GENERATORS = {
    "standard": AnchorGenerator(_standard_numpy, lambda spec, shape: _pyramid_anchors_tf(spec, shape), _standard_axis,
                                anchor_stride=True),
    "torchvision": AnchorGenerator(_torchvision_numpy, _torchvision_tf, _torchvision_axis, anchor_stride=False),
}


@dataclasses.dataclass(frozen=True)
class AnchorSpec:
    """The anchor set of a model: one stride per level, its scales, ratios shared by all levels.

    scales: [L] side in input pixels of each level's ratio-1 anchor (with every_level: [S], the
    sides used on every level); ratios: [R] width / height;
    strides: [L] input pixels per feature cell; anchor_stride: anchors at every k-th cell;
    offset: anchor centres at (cell + offset) * stride (0.5 centred, 0 matterport's corners);
    generator: the ANCHOR_GENERATOR that lays them out (module docstring); every_level: every
    scale on each level (ANCHOR_SCALES_ON_EVERY_LEVEL).
    Hashable and comparable (tuples), so it can key caches and be compared in searches.
    """

    scales: tuple
    ratios: tuple
    strides: tuple
    anchor_stride: int = 1
    offset: float = 0.5
    generator: str = "standard"
    every_level: bool = False

    def __post_init__(self):
        generator = ANCHOR_GENERATORS.get(self.generator)
        if generator is not None and not generator.anchor_stride and self.anchor_stride != 1:
            raise ValueError(f"RPN_ANCHOR_STRIDE {self.anchor_stride}: ANCHOR_GENERATOR {self.generator} puts "
                             "anchors on every cell; use RPN_ANCHOR_STRIDE 1 with it")

    @classmethod
    def from_config(cls, config):
        """The spec of a Config's RPN_ANCHOR_SCALES, RPN_ANCHOR_RATIOS, BACKBONE_STRIDES,
        RPN_ANCHOR_STRIDE, ANCHOR_OFFSET, ANCHOR_GENERATOR and ANCHOR_SCALES_ON_EVERY_LEVEL."""
        return cls(tuple(float(s) for s in config.RPN_ANCHOR_SCALES), tuple(float(r) for r in config.RPN_ANCHOR_RATIOS),
                   tuple(int(s) for s in config.BACKBONE_STRIDES), int(config.RPN_ANCHOR_STRIDE),
                   float(config.ANCHOR_OFFSET), config.ANCHOR_GENERATOR, bool(config.ANCHOR_SCALES_ON_EVERY_LEVEL))

    @classmethod
    def from_dict(cls, values):
        """The inverse of ``to_dict`` (for layers' get_config / from_config)."""
        return cls(tuple(values["scales"]), tuple(values["ratios"]), tuple(values["strides"]),
                   int(values.get("anchor_stride", 1)), float(values.get("offset", 0.5)),
                   values.get("generator", "standard"), bool(values.get("every_level", False)))

    def to_dict(self):
        return {"scales": list(self.scales), "ratios": list(self.ratios), "strides": list(self.strides),
                "anchor_stride": self.anchor_stride, "offset": self.offset, "generator": self.generator,
                "every_level": self.every_level}

    def replace(self, **changes):
        """A copy with some fields changed; sequences become tuples (hashable, comparable)."""
        return dataclasses.replace(self, **{k: tuple(float(x) for x in v) if k in ("scales", "ratios") else v
                                            for k, v in changes.items()})

    @property
    def level_names(self):
        """A name per level: P2 .. P6 for strides 4 .. 64 (P_k has stride 2^k) when the strides
        are distinct powers of two, else "L0 (stride 32)", ... (the mobile model's 32, 32, 64)."""
        powers = [int(s).bit_length() - 1 for s in self.strides]
        if len(set(powers)) == len(powers) and all(int(s) == 1 << k for s, k in zip(self.strides, powers)):
            return [f"P{k}" for k in powers]
        return [f"L{i} (stride {s})" for i, s in enumerate(self.strides)]

    @property
    def level_scales(self):
        """The scales of each level: [L] tuples, one scale each, or every scale with every_level."""
        if self.every_level:
            return (tuple(self.scales),) * len(self.strides)
        return tuple((s,) for s in self.scales)

    @property
    def anchors_per_location(self):
        return len(self.level_scales[0]) * len(self.ratios)

    def grid_cells(self, padded_sides, level):
        """Anchor rows (or columns) of ``level`` for input sides ``padded_sides`` [...] int -> [...] int.

        Matches ``feature_shapes`` (ceil(side / stride)) then ``arange(0, cells, anchor_stride)``.
        """
        feature = -(-np.asarray(padded_sides, np.int64) // int(self.strides[level]))
        return -(-feature // int(self.anchor_stride))

    def anchor_count(self, padded_shape):
        """Number of anchors of an input of ``padded_shape`` (H, W), as generate_pyramid_anchors makes."""
        return int(sum(self.grid_cells(padded_shape[0], level) * self.grid_cells(padded_shape[1], level)
                       for level in range(len(self.strides))) * self.anchors_per_location)

    def anchors(self, image_shape):
        """The anchors [N, 4] float32 of an input of ``image_shape`` (H, W[, C]).

        Static sides (python ints) -> a numpy array built once at trace time; dynamic sides
        (scalar tensors) -> built in the graph with the same layout as ``generate_pyramid_anchors``.
        """
        from detection.choices import lookup

        generator = lookup(ANCHOR_GENERATORS, self.generator, "ANCHOR_GENERATOR")
        if isinstance(image_shape[0], (int, np.integer)) and isinstance(image_shape[1], (int, np.integer)):
            return generator.numpy(self, image_shape)
        return generator.tf(self, image_shape)


def _pyramid_anchors_tf(spec, image_shape):
    import tensorflow as tf

    levels = []
    for scales, stride in zip(spec.level_scales, spec.strides):
        heights, widths = anchor_shapes(scales, spec.ratios)
        height = tf.cast(tf.math.ceil(tf.cast(image_shape[0], tf.float32) / stride), tf.int32)
        width = tf.cast(tf.math.ceil(tf.cast(image_shape[1], tf.float32) / stride), tf.int32)
        ys = (tf.cast(tf.range(0, height, spec.anchor_stride), tf.float32) + spec.offset) * stride
        xs = (tf.cast(tf.range(0, width, spec.anchor_stride), tf.float32) + spec.offset) * stride
        cy, cx = tf.meshgrid(ys, xs, indexing="ij")
        cy, cx = cy[:, :, None], cx[:, :, None]
        h = tf.constant(heights, tf.float32)
        w = tf.constant(widths, tf.float32)
        boxes = tf.stack([cy - h / 2, cx - w / 2, cy + h / 2, cx + w / 2], axis=-1)
        levels.append(tf.reshape(boxes, [-1, 4]))
    return tf.concat(levels, axis=0)
