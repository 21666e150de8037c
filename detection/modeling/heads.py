"""The RPN head (shared over pyramid levels), the box heads and the mask heads.

Two families, chosen by config (RPN_HEAD, BOX_HEAD, MASK_HEAD; the registries RPN_HEADS,
BOX_HEADS, MASK_HEADS at the end of this file, whose entries also declare their layer names):

  ours        RPNHead ``standard``: 3x3 conv of TOP_DOWN_PYRAMID_SIZE channels, one sigmoid
              logit per anchor; BoxHead ``fc``: two fully connected layers (FPN paper);
              MaskHead ``fcn``: four 3x3 convs, a 2x deconv, a 1x1 conv per class. Layer names
              start with ``rpn_``, ``rcnn_`` and ``mask_``.
  matterport  matterport's heads with its layer names, so its weights load by name:
              a 512-channel ``rpn_conv_shared`` and two softmax logits per anchor
              (``rpn_class_raw``); the box head as a POOL_SIZE x POOL_SIZE valid conv
              (``mrcnn_class_conv1``) and a 1x1 conv (``mrcnn_class_conv2``), each followed by
              BatchNorm (``mrcnn_class_bn1/2``); the mask head's convs each followed by
              BatchNorm (``mrcnn_mask_bn1..4``), ending in ``mrcnn_mask``.
  torchvision torchvision's heads named after its modules, so its weights load by name
              (detection/modeling/torchvision_weights.py): RPNHead (``rpn.head.conv.0.0``, one
              sigmoid logit per anchor ``rpn.head.cls_logits``, ``rpn.head.bbox_pred``);
              TwoMLPHead (``roi_heads.box_head.fc6``, ``fc7``) and FastRCNNPredictor
              (``roi_heads.box_predictor.cls_score``, ``bbox_pred``); MaskRCNNHeads
              (``roi_heads.mask_head.0.0`` .. ``3.0``) and MaskRCNNPredictor
              (``roi_heads.mask_predictor.conv5_mask``, ``mask_fcn_logits``).
              torchvision_v2: two 3x3 convs in the RPN head; FastRCNNConvFCHead (four 3x3 conv
              + BatchNorm + ReLU, ``roi_heads.box_head.0.0/0.1`` .. ``3``, one fc
              ``roi_heads.box_head.5``); a BatchNorm (``.1``) after each mask head conv. Its
              BatchNorms have epsilon 1e-5 and train only with TRAIN_BN.

The heads are built once and called on both the training and the inference graph, so the
two models share their weights. Every head returns float32 outputs: RPN logits [B, N] (the
foreground logit, or foreground minus background logit for the two-logit head: the same
sigmoid probability as matterport's softmax), probabilities [B, N] and deltas [B, N, 4];
box-head class logits [B, R, NC], probabilities [B, R, NC], deltas [B, R, NC, 4]; mask
logits [B, R, 2 * MASK_POOL_SIZE, 2 * MASK_POOL_SIZE, NC].
"""

import dataclasses
from typing import Callable

import keras
import numpy as np
from keras import ops

from detection.choices import lookup
from detection.core.anchors import AnchorSpec
from detection.layers.roi_align import PyramidROIAlign
from detection.modeling.fpn import FPNS
from detection.modeling.normalization import BatchNorm

# keras.layers.BatchNormalization's default epsilon, which matterport's BatchNorm layers keep.
MATTERPORT_BN_EPSILON = 1e-3
# The dtype of each head's last layer (RPN logits and deltas, class logits, box deltas, mask
# logits) under any policy: under mixed_bfloat16 their input stays bfloat16 but they multiply
# and write float32, so scores, deltas and mask thresholds never see a bfloat16 rounding of
# their own (8 bits: a logit of 5 would move by up to 0.016). A few GFLOP of a ~700 GFLOP call.
OUTPUT_DTYPE = "float32"
# torchvision's BatchNorm2d.
TORCHVISION_BN_EPSILON = 1e-5


class RPNHead:
    """3x3 conv (stride ``anchor_stride``) then 1x1 objectness logits and box deltas for A
    anchors per location.

    ``__call__(feature_maps)`` with P2..P6 [B, h_k, w_k, C] returns logits [B, N], probs
    [B, N], deltas [B, N, 4], with N the anchors of all levels in (level, y, x, anchor) order,
    as detection.core.anchors lays them out (a strided conv has ceil(h_k / anchor_stride)
    rows, the anchor grid's).
    """

    def __init__(self, anchors_per_location, channels, anchor_stride=1):
        self.conv = keras.layers.Conv2D(channels, 3, strides=anchor_stride, padding="same", activation="relu",
                                        name="rpn_conv_shared")
        self.convs = [self.conv]
        self.logits = keras.layers.Conv2D(anchors_per_location, 1, name="rpn_class_raw", dtype=OUTPUT_DTYPE)
        self.deltas = keras.layers.Conv2D(4 * anchors_per_location, 1, name="rpn_bbox_pred", dtype=OUTPUT_DTYPE)

    def __call__(self, feature_maps):
        logits, deltas = [], []
        for level, p in enumerate(feature_maps):
            shared = p
            for conv in self.convs:
                shared = conv(shared)
            logits.append(keras.layers.Reshape((-1,), name=f"rpn_logits_flat_p{level + 2}")(self.logits(shared)))
            deltas.append(keras.layers.Reshape((-1, 4), name=f"rpn_deltas_flat_p{level + 2}")(self.deltas(shared)))
        logits = keras.layers.Concatenate(axis=1, name="rpn_class_logits", dtype="float32")(logits)
        deltas = keras.layers.Concatenate(axis=1, name="rpn_bbox", dtype="float32")(deltas)
        probs = keras.layers.Activation("sigmoid", name="rpn_probs", dtype="float32")(logits)
        return logits, probs, deltas


class TorchvisionRPNHead(RPNHead):
    """torchvision's RPNHead: ``depth`` 3x3 convs + ReLU (rpn.head.conv.{i}.0; v1 one, v2 two),
    rpn.head.cls_logits (one logit per anchor) and rpn.head.bbox_pred. Same outputs as RPNHead;
    the deltas come out in our (dy, dx, dh, dw) order (the weight mapping reorders torchvision's
    (dx, dy, dw, dh) channels)."""

    def __init__(self, anchors_per_location, channels, depth=1):
        self.convs = [keras.layers.Conv2D(channels, 3, padding="same", activation="relu", name=f"rpn.head.conv.{i}.0")
                      for i in range(depth)]
        self.logits = keras.layers.Conv2D(anchors_per_location, 1, name="rpn.head.cls_logits", dtype=OUTPUT_DTYPE)
        self.deltas = keras.layers.Conv2D(4 * anchors_per_location, 1, name="rpn.head.bbox_pred", dtype=OUTPUT_DTYPE)


@keras.saving.register_keras_serializable(package="detection")
class TwoClassObjectness(keras.layers.Layer):
    """(background, foreground) logits [B, N, 2] -> (fg - bg logit [B, N], softmax foreground
    probability [B, N]), float32. The probability is computed as matterport's softmax does,
    so proposals rank (and tie) as in matterport."""

    def __init__(self, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)

    def call(self, raw):
        raw = ops.cast(raw, "float32")
        return raw[..., 1] - raw[..., 0], ops.softmax(raw, axis=-1)[..., 1]

    def compute_output_spec(self, raw):
        return keras.KerasTensor(raw.shape[:2], "float32"), keras.KerasTensor(raw.shape[:2], "float32")


class MatterportRPNHead:
    """matterport's RPN: ``rpn_conv_shared`` (3x3, 512, stride anchor_stride), ``rpn_class_raw``
    (two logits per anchor, background then foreground) and ``rpn_bbox_pred``. Same outputs as
    RPNHead."""

    def __init__(self, anchors_per_location, channels=512, anchor_stride=1):
        self.conv = keras.layers.Conv2D(channels, 3, strides=anchor_stride, padding="same", activation="relu",
                                        name="rpn_conv_shared")
        self.class_raw = keras.layers.Conv2D(2 * anchors_per_location, 1, name="rpn_class_raw", dtype=OUTPUT_DTYPE)
        self.deltas = keras.layers.Conv2D(4 * anchors_per_location, 1, name="rpn_bbox_pred", dtype=OUTPUT_DTYPE)

    def __call__(self, feature_maps):
        raw, deltas = [], []
        for level, p in enumerate(feature_maps):
            shared = self.conv(p)
            raw.append(keras.layers.Reshape((-1, 2), name=f"rpn_raw_flat_p{level + 2}")(self.class_raw(shared)))
            deltas.append(keras.layers.Reshape((-1, 4), name=f"rpn_deltas_flat_p{level + 2}")(self.deltas(shared)))
        raw = keras.layers.Concatenate(axis=1, name="rpn_class_raw_all", dtype="float32")(raw)
        deltas = keras.layers.Concatenate(axis=1, name="rpn_bbox", dtype="float32")(deltas)
        logits, probs = TwoClassObjectness(name="rpn_objectness")(raw)
        return logits, probs, deltas


@keras.saving.register_keras_serializable(package="detection")
class FoldRoIs(keras.layers.Layer):
    """[B, R, ...] <-> [B * R, ...] so that per-RoI convolutions run as one batch.

    ``unfold=False``: x [B, R, ...] -> [B * R, ...]; ``unfold=True`` needs ``num_rois``, or
    when R is dynamic (None: the padding-free inference path) ``batch_size``:
    x [B * R, ...] -> [B, R, ...]. Cheaper than TimeDistributed and XLA-friendly.
    """

    def __init__(self, unfold=False, num_rois=None, batch_size=None, **kwargs):
        super().__init__(**kwargs)
        self.unfold = bool(unfold)
        self.num_rois = num_rois
        self.batch_size = batch_size

    def call(self, x):
        if self.unfold:
            lead = (-1, self.num_rois) if self.num_rois is not None else (self.batch_size, -1)
            return ops.reshape(x, lead + tuple(x.shape[1:]))
        return ops.reshape(x, (-1,) + tuple(x.shape[2:]))

    def compute_output_shape(self, shape):
        if self.unfold:
            return (self.batch_size, self.num_rois) + tuple(shape[1:])
        rows = None if shape[0] is None or shape[1] is None else shape[0] * shape[1]
        return (rows,) + tuple(shape[2:])

    def get_config(self):
        return {**super().get_config(), "unfold": self.unfold, "num_rois": self.num_rois,
                "batch_size": self.batch_size}


def _rows(num_rois):
    """The RoI axis of a Reshape target: R, or -1 when R is dynamic (padding-free inference)."""
    return -1 if num_rois is None else num_rois


def _unfold(x, rois, name):
    """[B * R, ...] -> [B, R, ...] for rois [B, R, 4], R static or dynamic."""
    num_rois = rois.shape[1]
    batch_size = rois.shape[0] if num_rois is None else None
    return FoldRoIs(unfold=True, num_rois=num_rois, batch_size=batch_size, name=name)(x)


class _ClassOutputs:
    """The class logits and class-specific deltas layers every box head ends with."""

    def __init__(self, num_classes, logits_name, bbox_name, initializers=None):
        """initializers: (class logits kernel, deltas kernel) initialisers (biases zero), or None
        for Keras' defaults."""
        self.num_classes = num_classes
        logits_init, bbox_init = initializers or ("glorot_uniform", "glorot_uniform")
        self.class_logits = keras.layers.Dense(num_classes, kernel_initializer=logits_init, name=logits_name,
                                               dtype=OUTPUT_DTYPE)
        self.bbox = keras.layers.Dense(num_classes * 4, kernel_initializer=bbox_init, name=bbox_name,
                                       dtype=OUTPUT_DTYPE)

    def __call__(self, x, num_rois, prefix):
        logits = keras.layers.Activation("linear", dtype="float32", name=f"{prefix}_rcnn_class_logits_f32")(
            self.class_logits(x))
        probs = keras.layers.Activation("softmax", dtype="float32", name=f"{prefix}_rcnn_class_probs")(logits)
        deltas = keras.layers.Reshape((_rows(num_rois), self.num_classes, 4), dtype="float32",
                                      name=f"{prefix}_rcnn_bbox")(self.bbox(x))
        return logits, probs, deltas


class BoxHead:
    """RoIAlign (pool_size) then two fully connected layers of ``fc_size``.

    ``__call__(rois [B, R, 4], P2..P5, prefix)`` returns class logits [B, R, NC], class probs
    [B, R, NC] and class-specific box deltas [B, R, NC, 4].
    align: the PyramidROIAlign the head pools with.
    """

    NAMES = ("rcnn_fc1", "rcnn_fc2", "rcnn_class_logits", "rcnn_bbox_fc")
    CLASS_INITIALIZERS = None  # Keras' defaults

    def __init__(self, num_classes, fc_size, align):
        self.align = align
        fc1, fc2, logits, bbox = self.NAMES
        self.fc1 = keras.layers.Dense(fc_size, activation="relu", name=fc1)
        self.fc2 = keras.layers.Dense(fc_size, activation="relu", name=fc2)
        self.outputs = _ClassOutputs(num_classes, logits, bbox, self.CLASS_INITIALIZERS)

    def __call__(self, rois, feature_maps, prefix):
        num_rois = rois.shape[1]
        pooled = self.align(rois, *feature_maps)
        # Reshape takes one -1: with a dynamic R the flattened size is given.
        target = (num_rois, -1) if num_rois is not None else (-1, int(np.prod(pooled.shape[2:])))
        flat = keras.layers.Reshape(target, name=f"{prefix}_rcnn_flatten")(pooled)
        return self.outputs(self.fc2(self.fc1(flat)), num_rois, prefix)


class TorchvisionBoxHead(BoxHead):
    """torchvision's TwoMLPHead and FastRCNNPredictor: BoxHead under its module names. fc6 reads
    the pooled RoI flattened as (H, W, C) here, (C, H, W) in torch: the weight mapping reorders
    its rows."""

    NAMES = ("roi_heads.box_head.fc6", "roi_heads.box_head.fc7", "roi_heads.box_predictor.cls_score",
             "roi_heads.box_predictor.bbox_pred")
    CLASS_INITIALIZERS = property(lambda self: torchvision_class_initializers())


def torchvision_class_initializers():
    """The class-specific layers' initialisers when fine-tuning from a torchvision file with
    another class count: normal(0.01) for the class logits, normal(0.001) for the deltas (biases
    zero), Detectron's choice. A prototype of this fine-tuning saw rcnn_class_loss rise over the
    first steps from a default initialisation and fall from these
    (tests/modeling/test_torchvision_finetune.py checks that the losses fall)."""
    return keras.initializers.RandomNormal(stddev=0.01), keras.initializers.RandomNormal(stddev=0.001)


class TorchvisionConvBoxHead:
    """torchvision's FastRCNNConvFCHead (its _v2 models): four 3x3 convs without bias, each with a
    BatchNorm (epsilon 1e-5) and ReLU (roi_heads.box_head.{i}.0 / .1), flattened (H, W, C here,
    (C, H, W) in torch: the weight mapping reorders), one fc + ReLU (roi_heads.box_head.5), then
    FastRCNNPredictor. Same call and outputs as BoxHead."""

    def __init__(self, num_classes, fc_size, channels, align, train_bn=False):
        self.align = align
        self.convs = [keras.layers.Conv2D(channels, 3, padding="same", use_bias=False, name=f"roi_heads.box_head.{i}.0")
                      for i in range(4)]
        self.norms = [BatchNorm(f"roi_heads.box_head.{i}.1", train_bn, epsilon=TORCHVISION_BN_EPSILON)
                      for i in range(4)]
        self.fc = keras.layers.Dense(fc_size, activation="relu", name="roi_heads.box_head.5")
        self.outputs = _ClassOutputs(num_classes, *_TV_BOX_CLASS_SPECIFIC, torchvision_class_initializers())

    def __call__(self, rois, feature_maps, prefix):
        num_rois = rois.shape[1]
        x = FoldRoIs(name=f"{prefix}_rcnn_fold")(self.align(rois, *feature_maps))
        for i, (conv, norm) in enumerate(zip(self.convs, self.norms)):
            x = keras.layers.Activation("relu", name=f"{prefix}_rcnn_relu{i}")(norm(conv(x)))
        x = _unfold(x, rois, f"{prefix}_rcnn_unfold")
        target = (num_rois, -1) if num_rois is not None else (-1, int(np.prod(x.shape[2:])))
        flat = keras.layers.Reshape(target, name=f"{prefix}_rcnn_flatten")(x)
        return self.outputs(self.fc(flat), num_rois, prefix)


class MatterportBoxHead:
    """matterport's box head: RoIAlign, ``mrcnn_class_conv1`` (pool_size x pool_size valid conv
    of ``fc_size``: a fully connected layer on the pooled RoI) + ``mrcnn_class_bn1`` + ReLU,
    ``mrcnn_class_conv2`` (1x1) + ``mrcnn_class_bn2`` + ReLU, then ``mrcnn_class_logits`` and
    ``mrcnn_bbox_fc``. Same call and outputs as BoxHead. train_bn: the BatchNorms train."""

    def __init__(self, num_classes, fc_size, pool_size, align, train_bn=False):
        self.align = align
        self.conv1 = keras.layers.Conv2D(fc_size, pool_size, padding="valid", name="mrcnn_class_conv1")
        self.bn1 = BatchNorm("mrcnn_class_bn1", train_bn, epsilon=MATTERPORT_BN_EPSILON)
        self.conv2 = keras.layers.Conv2D(fc_size, 1, name="mrcnn_class_conv2")
        self.bn2 = BatchNorm("mrcnn_class_bn2", train_bn, epsilon=MATTERPORT_BN_EPSILON)
        self.fc_size = fc_size
        self.outputs = _ClassOutputs(num_classes, "mrcnn_class_logits", "mrcnn_bbox_fc")

    def __call__(self, rois, feature_maps, prefix):
        num_rois = rois.shape[1]
        x = FoldRoIs(name=f"{prefix}_rcnn_fold")(self.align(rois, *feature_maps))
        x = keras.layers.Activation("relu", name=f"{prefix}_rcnn_relu1")(self.bn1(self.conv1(x)))
        x = keras.layers.Activation("relu", name=f"{prefix}_rcnn_relu2")(self.bn2(self.conv2(x)))
        x = _unfold(x, rois, f"{prefix}_rcnn_unfold")
        x = keras.layers.Reshape((_rows(num_rois), self.fc_size), name=f"{prefix}_rcnn_squeeze")(x)
        return self.outputs(x, num_rois, prefix)


class MaskHead:
    """RoIAlign (mask_pool_size), four 3x3 convs, a 2x transposed conv, a 1x1 conv per class.

    ``__call__(rois [B, R, 4], P2..P5, prefix)`` returns mask logits [B, R, 2 * mask_pool_size,
    2 * mask_pool_size, NC] float32. Layers mask_conv1..4 (ReLU inside), mask_deconv,
    mask_logits; the sigmoid is applied where the class's mask is selected.
    """

    PREFIX = "mask_"  # of the convs and the deconv
    LOGITS = "mask_logits"
    BATCH_NORM = False  # a BatchNorm (then the ReLU) after each conv
    BN_EPSILON = MATTERPORT_BN_EPSILON
    CONV_BIAS = True  # the convs have a bias also when a BatchNorm follows

    def conv_name(self, i):
        """The name of conv ``i`` (1..4); bn_name the BatchNorm after it; deconv_name the 2x deconv."""
        return f"{self.PREFIX}conv{i}"

    def bn_name(self, i):
        return f"{self.PREFIX}bn{i}"

    def deconv_name(self):
        return f"{self.PREFIX}deconv"

    def __init__(self, num_classes, channels, align, train_bn=False):
        self.align = align
        # With a BatchNorm the ReLU comes after it (a separate layer, so BN folding finds
        # the conv's output feeding the BN only); without, inside the conv.
        self.convs = [keras.layers.Conv2D(channels, 3, padding="same", activation=None if self.BATCH_NORM else "relu",
                                          use_bias=self.CONV_BIAS or not self.BATCH_NORM, name=self.conv_name(i))
                      for i in range(1, 5)]
        self.norms = ([BatchNorm(self.bn_name(i), train_bn, epsilon=self.BN_EPSILON) for i in range(1, 5)]
                      if self.BATCH_NORM else [None] * 4)
        self.deconv = keras.layers.Conv2DTranspose(channels, 2, strides=2, activation="relu", name=self.deconv_name())
        self.logits = keras.layers.Conv2D(num_classes, 1, name=self.LOGITS, dtype=OUTPUT_DTYPE)

    def __call__(self, rois, feature_maps, prefix):
        x = FoldRoIs(name=f"{prefix}_mask_fold")(self.align(rois, *feature_maps))
        for i, (conv, norm) in enumerate(zip(self.convs, self.norms), start=1):
            x = conv(x)
            if norm is not None:
                x = keras.layers.Activation("relu", name=f"{prefix}_mask_relu{i}")(norm(x))
        x = self.logits(self.deconv(x))
        x = keras.layers.Activation("linear", dtype="float32", name=f"{prefix}_mask_logits_f32")(x)
        return _unfold(x, rois, f"{prefix}_mask_unfold")


class MatterportMaskHead(MaskHead):
    """matterport's mask head: MaskHead with its names (mrcnn_mask_conv1..4, mrcnn_mask_deconv,
    mrcnn_mask) and a BatchNorm mrcnn_mask_bn1..4 after each conv. train_bn: the BatchNorms train."""

    PREFIX = "mrcnn_mask_"
    LOGITS = "mrcnn_mask"
    BATCH_NORM = True


class TorchvisionMaskHead(MaskHead):
    """torchvision's MaskRCNNHeads and MaskRCNNPredictor under its module names (module docstring)."""

    LOGITS = "roi_heads.mask_predictor.mask_fcn_logits"
    BN_EPSILON = TORCHVISION_BN_EPSILON

    def conv_name(self, i):
        return f"roi_heads.mask_head.{i - 1}.0"

    def bn_name(self, i):
        return f"roi_heads.mask_head.{i - 1}.1"

    def deconv_name(self):
        return "roi_heads.mask_predictor.conv5_mask"


class TorchvisionMaskHeadV2(TorchvisionMaskHead):
    """v2: a BatchNorm after each conv, whose convs have no bias."""

    BATCH_NORM = True
    CONV_BIAS = False


def _roi_align(config, pool_size, name):
    """The PyramidROIAlign over the maps the FPN gives the RoI heads (FPN.roi_maps)."""
    roi_maps = lookup(FPNS, config.FPN, "FPN").roi_maps
    return PyramidROIAlign(pool_size, config.BACKBONE_STRIDES[:roi_maps], mode=config.ROI_ALIGN_MODE,
                           frame=config.BOX_FRAME, name=name)


def _anchors_per_location(config):
    """A: RPN_ANCHOR_RATIOS, times RPN_ANCHOR_SCALES with ANCHOR_SCALES_ON_EVERY_LEVEL."""
    return AnchorSpec.from_config(config).anchors_per_location


@dataclasses.dataclass(frozen=True)
class HeadFamily:
    """One entry of a head registry: build(config) -> the head (also by calling the entry);
    layers: regular expressions (re.fullmatch) of its layer names, what TRAIN_LAYERS heads,
    3+, 4+, 5+ train (detection/engine/layer_selection.py); class_specific: its layers whose
    shapes depend on NUM_CLASSES, left initialised when a legacy file has another class count
    (detection/modeling/weights.py); class_count: the layer whose bias has NUM_CLASSES entries,
    read to learn a legacy file's class count (None for a head without one)."""

    build: Callable
    layers: tuple
    class_specific: tuple = ()
    class_count: str = None

    def __call__(self, config):
        return self.build(config)


# The registries: config value (detection/choices.py RPN_HEADS, BOX_HEADS, MASK_HEADS) ->
# HeadFamily. Matterport's heads take its layer names and, like its backbone, freeze their
# BatchNorms unless TRAIN_BN.
RPN_HEADS = {
    "standard": HeadFamily(lambda c: RPNHead(_anchors_per_location(c), c.TOP_DOWN_PYRAMID_SIZE, c.RPN_ANCHOR_STRIDE),
                           layers=(r"rpn_.*",)),
    "matterport": HeadFamily(lambda c: MatterportRPNHead(_anchors_per_location(c), 512, c.RPN_ANCHOR_STRIDE),
                             layers=(r"rpn_.*",)),
}
BOX_HEADS = {
    "fc": HeadFamily(
        lambda c: BoxHead(c.NUM_CLASSES, c.FPN_CLASSIF_FC_LAYERS_SIZE, _roi_align(c, c.POOL_SIZE, "rcnn_roi_align")),
        layers=(r"rcnn_.*",), class_specific=("rcnn_class_logits", "rcnn_bbox_fc"), class_count="rcnn_class_logits"),
    "matterport": HeadFamily(
        lambda c: MatterportBoxHead(c.NUM_CLASSES, c.FPN_CLASSIF_FC_LAYERS_SIZE, c.POOL_SIZE,
                                    _roi_align(c, c.POOL_SIZE, "roi_align_classifier"), c.TRAIN_BN),
        layers=(r"mrcnn_.*",), class_specific=("mrcnn_class_logits", "mrcnn_bbox_fc"),
        class_count="mrcnn_class_logits"),
}
MASK_HEADS = {
    "fcn": HeadFamily(lambda c: MaskHead(c.NUM_CLASSES, c.TOP_DOWN_PYRAMID_SIZE,
                                         _roi_align(c, c.MASK_POOL_SIZE, "mask_roi_align")),
                      layers=(r"mask_.*",), class_specific=(MaskHead.LOGITS,)),
    "matterport": HeadFamily(lambda c: MatterportMaskHead(c.NUM_CLASSES, 256,
                                                          _roi_align(c, c.MASK_POOL_SIZE, "roi_align_mask"),
                                                          train_bn=c.TRAIN_BN),
                             layers=(r"mrcnn_.*",), class_specific=(MatterportMaskHead.LOGITS,)),
}
# torchvision's heads (module docstring): their layer names and class-specific layers.
_TV_RPN = (r"rpn\..*",)
_TV_BOX = (r"roi_heads\.box_.*",)
_TV_BOX_CLASS_SPECIFIC = ("roi_heads.box_predictor.cls_score", "roi_heads.box_predictor.bbox_pred")
_TV_MASK = (r"roi_heads\.mask_.*",)
RPN_HEADS["torchvision"] = HeadFamily(
    lambda c: TorchvisionRPNHead(_anchors_per_location(c), c.TOP_DOWN_PYRAMID_SIZE, depth=1), layers=_TV_RPN)
RPN_HEADS["torchvision_v2"] = HeadFamily(
    lambda c: TorchvisionRPNHead(_anchors_per_location(c), c.TOP_DOWN_PYRAMID_SIZE, depth=2), layers=_TV_RPN)
BOX_HEADS["torchvision"] = HeadFamily(
    lambda c: TorchvisionBoxHead(c.NUM_CLASSES, c.FPN_CLASSIF_FC_LAYERS_SIZE,
                                 _roi_align(c, c.POOL_SIZE, "rcnn_roi_align")),
    layers=_TV_BOX, class_specific=_TV_BOX_CLASS_SPECIFIC, class_count="roi_heads.box_predictor.cls_score")
BOX_HEADS["torchvision_v2"] = HeadFamily(
    lambda c: TorchvisionConvBoxHead(c.NUM_CLASSES, c.FPN_CLASSIF_FC_LAYERS_SIZE, c.TOP_DOWN_PYRAMID_SIZE,
                                     _roi_align(c, c.POOL_SIZE, "rcnn_roi_align"), c.TRAIN_BN),
    layers=_TV_BOX, class_specific=_TV_BOX_CLASS_SPECIFIC, class_count="roi_heads.box_predictor.cls_score")
MASK_HEADS["torchvision"] = HeadFamily(
    lambda c: TorchvisionMaskHead(c.NUM_CLASSES, c.TOP_DOWN_PYRAMID_SIZE,
                                  _roi_align(c, c.MASK_POOL_SIZE, "mask_roi_align")),
    layers=_TV_MASK, class_specific=(TorchvisionMaskHead.LOGITS,))
MASK_HEADS["torchvision_v2"] = HeadFamily(
    lambda c: TorchvisionMaskHeadV2(c.NUM_CLASSES, c.TOP_DOWN_PYRAMID_SIZE,
                                    _roi_align(c, c.MASK_POOL_SIZE, "mask_roi_align"), train_bn=c.TRAIN_BN),
    layers=_TV_MASK, class_specific=(TorchvisionMaskHead.LOGITS,))
HEAD_REGISTRIES = (RPN_HEADS, BOX_HEADS, MASK_HEADS)


def _unique(items):
    return tuple(dict.fromkeys(items))


def head_layer_patterns():
    """The layer-name patterns of every registered head, each once."""
    return _unique(p for registry in HEAD_REGISTRIES for family in registry.values() for p in family.layers)


def class_specific_layers():
    """The names of every registered head's layers whose shapes depend on NUM_CLASSES."""
    return _unique(n for registry in HEAD_REGISTRIES for family in registry.values() for n in family.class_specific)


def class_count_layers():
    """The layers, over every registered head, whose bias has NUM_CLASSES entries."""
    return _unique(family.class_count for registry in HEAD_REGISTRIES for family in registry.values()
                   if family.class_count)
