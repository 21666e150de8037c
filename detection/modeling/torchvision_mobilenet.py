"""torchvision's MobileNetV3-Large FPN backbone of ``fasterrcnn_mobilenet_v3_large_fpn``, in Keras.

``mobilenet_v3_large_fpn(b, image)`` builds it on a Keras tensor: the normalised, padded image
[1, H, W, 3] (H, W multiples of 32) -> the FPN maps torchvision returns, in its order:

    "0"    [1, H/32, W/32, 256]  from features[13] (160 channels, stride 32: the first block of the last stage)
    "1"    [1, H/32, W/32, 256]  from features[16] (960 channels, stride 32: the last 1x1 conv)
    "pool" [1, ceil(H/64), ceil(W/64), 256]  LastLevelMaxPool: "1" subsampled by max_pool2d(1, 2)

Every layer is named after its torch module (``backbone.body.4.block.2.fc1`` ->
``backbone_body_4_block_2_fc1``) and recorded with ``b.add(torch_name, layer, kind)`` (kind
conv, depthwise or bn), which is its weight mapping: detection/modeling/torchvision_weights.py
converts each kind (a depthwise weight [C, 1, k, k] -> kernel [k, k, C, 1]).

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
  mobilenet_v3_large's own default norm_layer does not apply here.
- Returned stages: ``_mobilenet_extractor`` keeps features[0], the stride-2 blocks (2, 4, 7, 13)
  and features[16] as stages and returns the last two, 13 and 16: both at stride 32.
- FPN (out_channels 256, no norm): inner 1x1 convs, the top-down sum (nearest interpolation to
  the same size is the identity here), 3x3 layer convs with bias, then LastLevelMaxPool.
"""

import keras

BN_EPSILON = 1e-5
FPN_CHANNELS = 256
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
RETURNED_FEATURES = (13, 16)  # the FPN's inputs "0" and "1", both stride 32
# MultiScaleRoIAlign's featmap_names ("0".."3") leave "0" and "1", both at scale 1/32: its level
# mapper is clamped to 5..5, so every RoI is pooled from "0" at 1/32.
ROI_LEVELS = (5, 5)
NUM_LEVELS = 3  # "0", "1", "pool": the RPN's maps, each with every anchor size


def make_divisible(value, divisor=8):
    """torchvision's _make_divisible: the nearest multiple of divisor, at least divisor, not
    below 90 % of value. make_divisible(72 // 4) == 24, make_divisible(120 // 4) == 32."""
    new = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * value else new


def _name(torch_name):
    return torch_name.replace(".", "_")


def _activation(x, hardswish):
    return keras.layers.Activation("hard_silu" if hardswish else "relu")(x)


def _conv_bn(b, x, name, filters, kernel, stride=1, depthwise=False, activation=None):
    """torchvision's Conv2dNormActivation without bias: ``name.0`` conv, ``name.1`` BatchNorm,
    then hardswish (activation "hs"), ReLU ("re") or none."""
    pad = (kernel - 1) // 2
    if pad:
        x = keras.layers.ZeroPadding2D(pad, name=_name(name) + "_pad")(x)
    if depthwise:
        conv = keras.layers.DepthwiseConv2D(kernel, strides=stride, use_bias=False, name=_name(f"{name}.0"))
        x = b.add(f"{name}.0", conv, "depthwise")(x)
    else:
        conv = keras.layers.Conv2D(filters, kernel, strides=stride, use_bias=False, name=_name(f"{name}.0"))
        x = b.add(f"{name}.0", conv, "conv")(x)
    bn = keras.layers.BatchNormalization(epsilon=BN_EPSILON, name=_name(f"{name}.1"))
    bn.trainable = False  # FrozenBatchNorm2d: statistics and affine fixed
    bn.frozen_by_config = True
    x = b.add(f"{name}.1", bn, "bn")(x)
    return x if activation is None else _activation(x, activation == "hs")


def _squeeze_excitation(b, x, name, channels):
    squeeze = make_divisible(channels // 4)
    s = keras.layers.GlobalAveragePooling2D(keepdims=True)(x)
    s = b.add(f"{name}.fc1", keras.layers.Conv2D(squeeze, 1, activation="relu", name=_name(f"{name}.fc1")), "conv")(s)
    s = b.add(f"{name}.fc2", keras.layers.Conv2D(channels, 1, name=_name(f"{name}.fc2")), "conv")(s)
    return keras.layers.Multiply()([x, keras.layers.Activation("hard_sigmoid")(s)])


def _inverted_residual(b, x, name, block):
    inputs, kernel, expanded, out, se, hardswish, stride = block
    activation = "hs" if hardswish else "re"
    y, index = x, 0
    if expanded != inputs:
        y = _conv_bn(b, y, f"{name}.block.{index}", expanded, 1, activation=activation)
        index += 1
    y = _conv_bn(b, y, f"{name}.block.{index}", expanded, kernel, stride, depthwise=True, activation=activation)
    index += 1
    if se:
        y = _squeeze_excitation(b, y, f"{name}.block.{index}", expanded)
        index += 1
    y = _conv_bn(b, y, f"{name}.block.{index}", out, 1)
    return keras.layers.Add()([x, y]) if stride == 1 and inputs == out else y


def mobilenet_v3_large_fpn(b, image, prefix="backbone"):
    """image [1, H, W, 3] Keras tensor (normalised, H, W multiples of 32) -> [P "0", P "1",
    "pool"] Keras tensors (module doc). b: records each layer, ``b.add(torch_name, layer, kind)``
    returning the layer; prefix: the torch module holding ``body`` and ``fpn``."""
    body = f"{prefix}.body"
    x = _conv_bn(b, image, f"{body}.0", LARGE_BLOCKS[0][0], 3, 2, activation="hs")
    returned = []
    for index, block in enumerate(LARGE_BLOCKS, start=1):
        x = _inverted_residual(b, x, f"{body}.{index}", block)
        if index in RETURNED_FEATURES:
            returned.append(x)
    x = _conv_bn(b, x, f"{body}.{len(LARGE_BLOCKS) + 1}", LAST_CHANNELS, 1, activation="hs")
    returned.append(x)

    def fpn_conv(x, name, kernel):
        if kernel > 1:
            x = keras.layers.ZeroPadding2D(kernel // 2, name=_name(name) + "_pad")(x)
        return b.add(name, keras.layers.Conv2D(FPN_CHANNELS, kernel, name=_name(name)), "conv")(x)

    inner = [fpn_conv(c, f"{prefix}.fpn.inner_blocks.{i}.0", 1) for i, c in enumerate(returned)]
    last = inner[-1]
    outputs = [fpn_conv(last, f"{prefix}.fpn.layer_blocks.{len(inner) - 1}.0", 3)]
    for i in range(len(inner) - 2, -1, -1):
        last = keras.layers.Add()([inner[i], last])  # both stride 32: torch's nearest resize is the identity
        outputs.insert(0, fpn_conv(last, f"{prefix}.fpn.layer_blocks.{i}.0", 3))
    outputs.append(keras.layers.MaxPooling2D(1, 2, name=_name(prefix) + "_fpn_pool")(outputs[-1]))
    return outputs

