"""torchvision's MobileNetV3-Large body of ``fasterrcnn_mobilenet_v3_large_fpn``, in Keras: the
backbone ``torchvision_mobilenet_v3_large`` (detection/modeling/backbones.py).

``mobilenet_v3_large(image)`` builds it on a Keras tensor: the normalised, padded image
[B, H, W, 3] (H, W multiples of 32) -> the two maps torchvision's FPN reads (the FPN
``torchvision_mobilenet``, detection/modeling/fpn.py, makes maps at strides 32, 32, 64 of them):

    features[13]  [B, H/32, W/32, 160]  the first block of the last stage, stride 32
    features[16]  [B, H/32, W/32, 960]  the last 1x1 conv, stride 32

Every layer with weights is named after its torch module (``backbone.body.4.block.2.fc1``), so
a torchvision state_dict loads by name (detection/modeling/torchvision_weights.py: a depthwise
weight [C, 1, k, k] -> kernel [k, k, C, 1]).

What torchvision builds (torchvision 0.29 models/mobilenetv3.py, detection/backbone_utils.py
``_mobilenet_extractor``, faster_rcnn.py ``_fasterrcnn_mobilenet_v3_large_fpn``):

- features[0]: 3x3 conv stride 2 (16) + BatchNorm + hardswish; features[1..15]: the inverted
  residual blocks of ``LARGE_BLOCKS`` (1x1 expand + BN + act when the expansion differs from
  the input, kxk depthwise with the block's stride + BN + act, SqueezeExcitation, 1x1 project
  + BN, the input added when the stride is 1 and the widths are equal); features[16]: 1x1 conv
  (960) + BN + hardswish. Convs have no bias; torch pads (k - 1) // 2 on every side.
- SqueezeExcitation: mean over the map (the padded image's, as torch's AdaptiveAvgPool2d(1)
  over the padded batch), fc1 (1x1 conv with bias, ``make_divisible(expanded // 4, 8)``
  channels) + ReLU, fc2 + hardsigmoid, times the input.
- hardswish x * relu6(x + 3) / 6, hardsigmoid relu6(x + 3) / 6 (Keras 3's hard_silu and
  hard_sigmoid are these).
- BatchNorm eps 1e-5: the detection builder passes its own norm_layer (FrozenBatchNorm2d with
  weights, BatchNorm2d without), both with torch's default eps 1e-5; the 0.001 of
  mobilenet_v3_large's own default norm_layer does not apply here. Every BatchNorm is frozen
  (FrozenBatchNorm2d) whatever TRAIN_BN and the layer selection say.
- Returned stages: ``_mobilenet_extractor`` keeps features[0], the stride-2 blocks (2, 4, 7, 13)
  and features[16] as stages and returns the last two, 13 and 16: both at stride 32.
- Stages by stride (TRAIN_LAYERS 3+, 4+, 5+; ``STAGE_BLOCKS``): stride 4 features[2..3], 8
  [4..6], 16 [7..12], 32 [13..16].
"""

import keras

from detection.modeling.normalization import freeze_batch_norm

BN_EPSILON = 1e-5
PREFIX = "backbone.body"
# features[1..15]: (input, kernel, expanded, out, squeeze-excitation, hardswish (else ReLU), stride)
LARGE_BLOCKS = (
    (16, 3, 16, 16, False, False, 1),
    (16, 3, 64, 24, False, False, 2),
    (24, 3, 72, 24, False, False, 1),
    (24, 5, 72, 40, True, False, 2),
    (40, 5, 120, 40, True, False, 1),
    (40, 5, 120, 40, True, False, 1),
    (40, 3, 240, 80, False, True, 2),
    (80, 3, 200, 80, False, True, 1),
    (80, 3, 184, 80, False, True, 1),
    (80, 3, 184, 80, False, True, 1),
    (80, 3, 480, 112, True, True, 1),
    (112, 3, 672, 112, True, True, 1),
    (112, 5, 672, 160, True, True, 2),
    (160, 5, 960, 160, True, True, 1),
    (160, 5, 960, 160, True, True, 1),
)
LAST_CHANNELS = 960  # features[16]: 6 x 160
RETURNED_FEATURES = (13, 16)  # the FPN's inputs, both stride 32
# features[i] of each stride stage 2..5 (stride 4..32), module docstring
STAGE_BLOCKS = {2: (2, 3), 3: (4, 5, 6), 4: tuple(range(7, 13)), 5: tuple(range(13, 17))}


def make_divisible(value, divisor=8):
    """torchvision's _make_divisible: the nearest multiple of divisor, at least divisor, not
    below 90 % of value. make_divisible(72 // 4) == 24, make_divisible(120 // 4) == 32."""
    new = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * value else new


def _activation(x, hardswish):
    return keras.layers.Activation("hard_silu" if hardswish else "relu")(x)


def _conv_bn(x, name, filters, kernel, stride=1, depthwise=False, activation=None):
    """torchvision's Conv2dNormActivation without bias: ``name.0`` conv, ``name.1`` BatchNorm,
    then hardswish (activation "hs"), ReLU ("re") or none."""
    pad = (kernel - 1) // 2
    if pad:
        x = keras.layers.ZeroPadding2D(pad, name=f"{name}.pad")(x)
    if depthwise:
        x = keras.layers.DepthwiseConv2D(kernel, strides=stride, use_bias=False, name=f"{name}.0")(x)
    else:
        x = keras.layers.Conv2D(filters, kernel, strides=stride, use_bias=False, name=f"{name}.0")(x)
    bn = keras.layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{name}.1")
    freeze_batch_norm([bn])  # FrozenBatchNorm2d: statistics and affine fixed
    x = bn(x)
    return x if activation is None else _activation(x, activation == "hs")


def _squeeze_excitation(x, name, channels):
    squeeze = make_divisible(channels // 4)
    s = keras.layers.GlobalAveragePooling2D(keepdims=True)(x)
    s = keras.layers.Conv2D(squeeze, 1, activation="relu", name=f"{name}.fc1")(s)
    s = keras.layers.Conv2D(channels, 1, name=f"{name}.fc2")(s)
    return keras.layers.Multiply()([x, keras.layers.Activation("hard_sigmoid")(s)])


def _inverted_residual(x, name, block):
    inputs, kernel, expanded, out, se, hardswish, stride = block
    activation = "hs" if hardswish else "re"
    y, index = x, 0
    if expanded != inputs:
        y = _conv_bn(y, f"{name}.block.{index}", expanded, 1, activation=activation)
        index += 1
    y = _conv_bn(y, f"{name}.block.{index}", expanded, kernel, stride, depthwise=True, activation=activation)
    index += 1
    if se:
        y = _squeeze_excitation(y, f"{name}.block.{index}", expanded)
        index += 1
    y = _conv_bn(y, f"{name}.block.{index}", out, 1)
    return keras.layers.Add()([x, y]) if stride == 1 and inputs == out else y


def mobilenet_v3_large(image):
    """image [B, H, W, 3] Keras tensor (normalised, H, W multiples of 32) -> [features[13]
    [B, H/32, W/32, 160], features[16] [B, H/32, W/32, 960]] (module docstring)."""
    x = _conv_bn(image, f"{PREFIX}.0", LARGE_BLOCKS[0][0], 3, 2, activation="hs")
    returned = []
    for index, block in enumerate(LARGE_BLOCKS, start=1):
        x = _inverted_residual(x, f"{PREFIX}.{index}", block)
        if index in RETURNED_FEATURES:
            returned.append(x)
    returned.append(_conv_bn(x, f"{PREFIX}.{len(LARGE_BLOCKS) + 1}", LAST_CHANNELS, 1, activation="hs"))
    return returned


def stage_patterns(stage):
    """The layer-name patterns (re.fullmatch) of stride stage ``stage`` (2..5): its features[i]."""
    return (rf"backbone\.body\.({'|'.join(str(i) for i in STAGE_BLOCKS[stage])})\..*",)
