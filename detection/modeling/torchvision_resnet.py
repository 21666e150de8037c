"""torchvision's ResNet-50 body (torchvision.models.resnet50 as torchvision's detection models
use it), layer for layer and named after its modules, so a torchvision state_dict loads by name
(detection/modeling/torchvision_weights.py): ``backbone.body.layer1.0.conv1`` is the Keras layer
of that name.

  ZeroPadding2D(3) -> conv1 (7x7, 64, stride 2, no bias) -> bn1 -> ReLU
    -> MaxPool 3x3 stride 2 with padding 1 (after a ReLU, zero padding never wins a maximum)
  layer1..layer4 (3, 4, 6, 3 bottlenecks of widths 64, 128, 256, 512)    -> C2..C5
A bottleneck: conv1 (1x1) bn1 ReLU, conv2 (3x3, carries the stride: torchvision's "v1.5", not
the 1x1 as in the caffe ResNet and matterport's), symmetric padding 1, bn2 ReLU, conv3 (1x1,
4 x width) bn3; the first block of a layer has a downsample.0 (1x1, stride) + downsample.1 shortcut;
ReLU after the sum. Every BatchNorm is torchvision's FrozenBatchNorm2d (epsilon 1e-5): frozen
whatever TRAIN_BN and the layer selection say (detection.modeling.normalization.freeze_batch_norm).
"""

import keras

from detection.modeling.normalization import freeze_batch_norm

BLOCKS = (3, 4, 6, 3)
WIDTHS = (64, 128, 256, 512)
BN_EPSILON = 1e-5  # torchvision's FrozenBatchNorm2d and BatchNorm2d
PREFIX = "backbone.body."


def conv(x, name, filters, kernel, stride=1, padding=0, bias=False):
    """A torch Conv2d: explicit symmetric zero padding, then a valid convolution named ``name``."""
    if padding:
        x = keras.layers.ZeroPadding2D(padding, name=f"{name}.pad")(x)
    return keras.layers.Conv2D(filters, kernel, strides=stride, padding="valid", use_bias=bias, name=name)(x)


def frozen_bn(x, name):
    """FrozenBatchNorm2d: statistics and affine fixed (epsilon 1e-5)."""
    layer = keras.layers.BatchNormalization(epsilon=BN_EPSILON, name=name)
    freeze_batch_norm([layer])
    return layer(x)


def _bottleneck(x, name, width, stride, downsample):
    relu = keras.layers.ReLU
    y = relu()(frozen_bn(conv(x, f"{name}.conv1", width, 1), f"{name}.bn1"))
    y = relu()(frozen_bn(conv(y, f"{name}.conv2", width, 3, stride, padding=1), f"{name}.bn2"))
    y = frozen_bn(conv(y, f"{name}.conv3", width * 4, 1), f"{name}.bn3")
    if downsample:
        x = frozen_bn(conv(x, f"{name}.downsample.0", width * 4, 1, stride), f"{name}.downsample.1")
    return relu()(keras.layers.Add()([x, y]))


def resnet50(image):
    """image: [B, H, W, 3] normalised (H, W multiples of 32) -> [C2, C3, C4, C5] (strides 4..32)."""
    x = conv(image, PREFIX + "conv1", 64, 7, 2, padding=3)
    x = keras.layers.ReLU()(frozen_bn(x, PREFIX + "bn1"))
    x = keras.layers.MaxPooling2D(3, 2)(keras.layers.ZeroPadding2D(1)(x))
    stages = []
    for layer, (blocks, width) in enumerate(zip(BLOCKS, WIDTHS), start=1):
        for block in range(blocks):
            stride = 2 if block == 0 and layer > 1 else 1
            x = _bottleneck(x, f"{PREFIX}layer{layer}.{block}", width, stride, downsample=block == 0)
        stages.append(x)
    return stages
