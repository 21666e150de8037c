"""Feature Pyramid Network: the backbone's maps (C2..C5) -> the pyramid (P2..P6), all with
TOP_DOWN_PYRAMID_SIZE channels.

The FPN registry FPNS (config FPN; names in detection/choices.py FPNS):
  standard        ours (fpn_c5p5, fpn_p2, ...), below.
  torchvision     torchvision's FeaturePyramidNetwork with LastLevelMaxPool, named after its
                  modules (backbone.fpn.inner_blocks.3.0, backbone.fpn.layer_blocks.0.0, ...):
                  the same graph as ours (1x1 laterals, nearest 2x top-down, 3x3 outputs, P6 by
                  max-pool 1 stride 2), so its weights load by name.
  torchvision_v2  the same with a BatchNorm (epsilon 1e-5, ``.1``) after every conv, whose
                  convs have no bias (its _v2 models).
  torchvision_mobilenet  torchvision's FPN of fasterrcnn_mobilenet_v3_large_fpn over the backbone
                  torchvision_mobilenet_v3_large's two maps, both at stride 32 (the top-down
                  step is a plain sum: torch's nearest resize to the same size is the identity):
                  maps at strides 32, 32, 64; the RoI heads read the first two (torchvision's
                  MultiScaleRoIAlign finds its "0" and "1", not "pool").
Each entry declares its layer-name patterns, trained with the heads (detection/engine/layer_selection.py),
the strides of the maps it outputs (config BACKBONE_STRIDES must be these: the anchors are laid
out at them) and how many of the first maps the RoI heads pool from (the rest feed only the RPN).
"""

import dataclasses
from typing import Callable

import keras

from detection.modeling.normalization import BatchNorm

# Its layer names (fpn_c5p5, fpn_p2, ...), trained with the heads (detection/engine/layer_selection.py).
LAYER_PATTERNS = (r"fpn_.*",)
TORCHVISION_LAYER_PATTERNS = (r"backbone\.fpn\..*",)
TORCHVISION_BN_EPSILON = 1e-5


def build_fpn(c2, c3, c4, c5, size):
    """c2..c5: backbone maps at strides 4..32 -> [P2, P3, P4, P5, P6] at strides 4..64.

    Lateral 1x1 convolutions, nearest-neighbour top-down upsampling, 3x3 output
    convolutions; P6 is P5 subsampled by 2 (for the RPN only), as in matterport and the FPN paper.
    The input side must be a multiple of 64 so that the levels align.
    """
    p5 = keras.layers.Conv2D(size, 1, name="fpn_c5p5")(c5)
    p4 = keras.layers.Add(name="fpn_p4add")([
        keras.layers.UpSampling2D(2, name="fpn_p5upsampled")(p5),
        keras.layers.Conv2D(size, 1, name="fpn_c4p4")(c4)])
    p3 = keras.layers.Add(name="fpn_p3add")([
        keras.layers.UpSampling2D(2, name="fpn_p4upsampled")(p4),
        keras.layers.Conv2D(size, 1, name="fpn_c3p3")(c3)])
    p2 = keras.layers.Add(name="fpn_p2add")([
        keras.layers.UpSampling2D(2, name="fpn_p3upsampled")(p3),
        keras.layers.Conv2D(size, 1, name="fpn_c2p2")(c2)])
    p2 = keras.layers.Conv2D(size, 3, padding="same", name="fpn_p2")(p2)
    p3 = keras.layers.Conv2D(size, 3, padding="same", name="fpn_p3")(p3)
    p4 = keras.layers.Conv2D(size, 3, padding="same", name="fpn_p4")(p4)
    p5 = keras.layers.Conv2D(size, 3, padding="same", name="fpn_p5")(p5)
    p6 = keras.layers.MaxPooling2D(1, strides=2, name="fpn_p6")(p5)
    return [p2, p3, p4, p5, p6]


def build_torchvision_fpn(features, size, batch_norm=False, train_bn=False, upsampling=2):
    """torchvision's FeaturePyramidNetwork + LastLevelMaxPool (module docstring): features, the
    backbone's maps [B, h_i, w_i, C_i] (C2..C5) -> their pyramid [B, h_i, w_i, size] and the last
    one max-pooled 1 / 2 (P2..P6). batch_norm: v2 (a BatchNorm after each conv, convs without
    bias); upsampling: the ratio of consecutive maps' strides (1: the top-down step adds as is)."""

    def conv_norm(x, name, kernel):
        x = keras.layers.Conv2D(size, kernel, padding="same", use_bias=not batch_norm, name=f"{name}.0")(x)
        return BatchNorm(f"{name}.1", train_bn, epsilon=TORCHVISION_BN_EPSILON)(x) if batch_norm else x

    inner = [conv_norm(c, f"backbone.fpn.inner_blocks.{i}", 1) for i, c in enumerate(features)]
    last = inner[-1]
    outputs = [conv_norm(last, f"backbone.fpn.layer_blocks.{len(inner) - 1}", 3)]
    for i in range(len(inner) - 2, -1, -1):
        if upsampling > 1:
            last = keras.layers.UpSampling2D(upsampling, interpolation="nearest")(last)
        last = keras.layers.Add()([inner[i], last])
        outputs.insert(0, conv_norm(last, f"backbone.fpn.layer_blocks.{i}", 3))
    outputs.append(keras.layers.MaxPooling2D(1, strides=2, name="backbone.fpn.extra_blocks.pool")(outputs[-1]))
    return outputs


@dataclasses.dataclass(frozen=True)
class FPN:
    """One FPN entry: build(backbone maps, size, train_bn) -> its maps ([P2..P6]); layers: the
    regular expressions (re.fullmatch) of its layer names; inputs: how many backbone maps it
    reads; strides: of the maps it outputs, in input pixels; roi_maps: the first roi_maps maps
    feed the RoI heads, the others only the RPN."""

    build: Callable
    layers: tuple
    inputs: int = 4
    strides: tuple = (4, 8, 16, 32, 64)
    roi_maps: int = 4


# The FPN registry (names: detection/choices.py FPNS).
FPNS = {
    "standard": FPN(lambda maps, size, train_bn: build_fpn(*maps, size), LAYER_PATTERNS),
    "torchvision": FPN(lambda maps, size, train_bn: build_torchvision_fpn(maps, size), TORCHVISION_LAYER_PATTERNS),
    "torchvision_v2": FPN(lambda maps, size, train_bn: build_torchvision_fpn(maps, size, batch_norm=True,
                                                                             train_bn=train_bn),
                          TORCHVISION_LAYER_PATTERNS),
    "torchvision_mobilenet": FPN(lambda maps, size, train_bn: build_torchvision_fpn(maps, size, upsampling=1),
                                 TORCHVISION_LAYER_PATTERNS, inputs=2, strides=(32, 32, 64), roi_maps=2),
}


def layer_patterns():
    """The layer-name patterns of every registered FPN, each once."""
    return tuple(dict.fromkeys(p for entry in FPNS.values() for p in entry.layers))
