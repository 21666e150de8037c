"""Backbones returning the C2..C5 feature maps (strides 4, 8, 16, 32).

Layer names follow keras.applications' ResNet (``conv1_*``, ``conv2_block1_*`` ...
``conv5_block3_*``), also in the small ``resnet_tiny``, so that layer selection by stage
(``heads``, ``3+``, ``4+``, ``5+``, ``all``) works for every backbone.
"""

import keras

from detection.modeling import normalization

# keras.applications layer whose output is each stage's feature map.
_RESNET_STAGE_OUTPUTS = {
    "resnet50": ["conv2_block3_out", "conv3_block4_out", "conv4_block6_out", "conv5_block3_out"],
    "resnet101": ["conv2_block3_out", "conv3_block4_out", "conv4_block23_out", "conv5_block3_out"],
}
# MobileNetV2 layers at strides 4, 8, 16, 32, renamed by stage below.
_MOBILENET_STAGE_OUTPUTS = ["block_2_add", "block_5_add", "block_12_add", "out_relu"]


def build_backbone(image, config):
    """image: [B, H, W, 3] normalised input tensor -> [C2, C3, C4, C5] tensors.

    BACKBONE_WEIGHTS: ``imagenet`` (keras.applications download), ``none``, or a path to a
    ``.weights.h5`` / ``.h5`` file of the same backbone. With TRAIN_BN false every
    BatchNormalization layer is frozen (``trainable = False`` runs it in inference mode).
    """
    name = config.BACKBONE
    if name in _RESNET_STAGE_OUTPUTS:
        features = _keras_application(name, image, config, _RESNET_STAGE_OUTPUTS[name])
    elif name == "mobilenetv2":
        features = _keras_application(name, image, config, _MOBILENET_STAGE_OUTPUTS)
    elif name == "resnet_tiny":
        features = _resnet_tiny(image, config.TINY_BACKBONE_WIDTH, config.TRAIN_BN)
    else:  # the config validates names; this guards a new entry added there only
        raise ValueError(f"unknown BACKBONE {name!r}")
    return features


def _keras_application(name, image, config, stage_outputs):
    weights = config.BACKBONE_WEIGHTS
    app_weights = "imagenet" if weights == "imagenet" else None
    constructor = {
        "resnet50": keras.applications.ResNet50,
        "resnet101": keras.applications.ResNet101,
        "mobilenetv2": keras.applications.MobileNetV2,
    }[name]
    net = constructor(include_top=False, weights=app_weights, input_tensor=image)
    if weights not in ("imagenet", "none"):
        net.load_weights(weights)
    if not config.TRAIN_BN:
        normalization.freeze_batch_norm(net.layers)
    features = [net.get_layer(n).output for n in stage_outputs]
    if name == "mobilenetv2":
        # Stage prefixes on MobileNet's own names, so "3+", "4+" select the right layers.
        _prefix_mobilenet_stages(net)
    return features


def _prefix_mobilenet_stages(net):
    """Renames MobileNetV2 layers ``convK_<name>`` by the stride stage they belong to."""
    stage = 1
    boundaries = {"block_1_expand": 2, "block_3_expand": 3, "block_6_expand": 4, "block_13_expand": 5}
    for layer in net.layers:
        stage = boundaries.get(layer.name, stage)
        if not isinstance(layer, keras.layers.InputLayer):
            layer.name = f"conv{stage}_{layer.name}"


def _resnet_tiny(image, width, train_bn):
    """A small ResNet (one basic block per stage, widths w, 2w, 4w, 8w) for CPU work and tests."""
    x = keras.layers.Conv2D(width, 7, strides=2, padding="same", use_bias=False, name="conv1_conv")(image)
    x = normalization.BatchNorm(name="conv1_bn", trainable=train_bn)(x)
    x = keras.layers.Activation("relu", name="conv1_relu")(x)
    x = keras.layers.MaxPooling2D(3, strides=2, padding="same", name="pool1_pool")(x)
    features = []
    for stage, stride in zip(range(2, 6), (1, 2, 2, 2)):
        x = _basic_block(x, width * 2 ** (stage - 2), stride, f"conv{stage}_block1", train_bn)
        features.append(x)
    return features


def _basic_block(x, filters, stride, prefix, train_bn):
    shortcut = x
    if stride != 1 or x.shape[-1] != filters:
        shortcut = keras.layers.Conv2D(filters, 1, strides=stride, use_bias=False, name=f"{prefix}_0_conv")(x)
        shortcut = normalization.BatchNorm(name=f"{prefix}_0_bn", trainable=train_bn)(shortcut)
    y = keras.layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False, name=f"{prefix}_1_conv")(x)
    y = normalization.BatchNorm(name=f"{prefix}_1_bn", trainable=train_bn)(y)
    y = keras.layers.Activation("relu", name=f"{prefix}_1_relu")(y)
    y = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{prefix}_2_conv")(y)
    y = normalization.BatchNorm(name=f"{prefix}_2_bn", trainable=train_bn)(y)
    y = keras.layers.Add(name=f"{prefix}_add")([shortcut, y])
    return keras.layers.Activation("relu", name=f"{prefix}_out")(y)
