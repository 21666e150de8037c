"""matterport's ResNet-50 / ResNet-101 backbone, layer for layer, so its .h5 weights load by name.

The graph (matterport/Mask_RCNN mrcnn/model.py ``resnet_graph``; written here from its
description, not copied):

  ZeroPadding2D(3) -> conv1 (7x7, 64, stride 2, bias) -> bn_conv1 -> ReLU -> MaxPool 3x3 stride 2 "same"
  stage 2: conv block a (stride 1), identity blocks b, c                         -> C2 (256 channels)
  stage 3: conv block a (stride 2), identity blocks b..d                         -> C3 (512)
  stage 4: conv block a (stride 2), identity blocks b..f (50) or b..w (101)      -> C4 (1024)
  stage 5: conv block a (stride 2), identity blocks b, c                         -> C5 (2048)

A block is res{stage}{block}_branch2a (1x1, carries the stride: caffe-style), 2b (3x3 "same"),
2c (1x1), each conv with a bias and followed by bn{stage}{block}_branch2a/2b/2c; the conv block's
shortcut is res{stage}{block}_branch1 (1x1, stride) + bn..._branch1. ReLU after 2a and 2b and
after the residual sum (named res{stage}{block}_out). BatchNorm keeps Keras' default epsilon
1e-3 (matterport's BatchNorm subclass does not change it). Filters per stage: 64/64/256,
128/128/512, 256/256/1024, 512/512/2048.
"""

import keras

from detection.modeling.normalization import BatchNorm

BN_EPSILON = 1e-3
STAGE_FILTERS = {2: (64, 64, 256), 3: (128, 128, 512), 4: (256, 256, 1024), 5: (512, 512, 2048)}
STAGE4_IDENTITY_BLOCKS = {50: 5, 101: 22}


def resnet(image, depth, train_bn):
    """image: [B, H, W, 3] normalised -> [C2, C3, C4, C5] of matterport's ResNet-``depth`` (50 or 101).

    train_bn false freezes every BatchNorm (inference mode), matterport's TRAIN_BN False.
    """
    if depth not in STAGE4_IDENTITY_BLOCKS:
        raise ValueError(f"matterport's ResNet has depth 50 or 101, not {depth}")
    x = keras.layers.ZeroPadding2D(3, name="conv1_pad")(image)
    x = keras.layers.Conv2D(64, 7, strides=2, name="conv1")(x)
    x = _bn("bn_conv1", train_bn)(x)
    x = keras.layers.Activation("relu", name="conv1_relu")(x)
    x = keras.layers.MaxPooling2D(3, strides=2, padding="same", name="pool1")(x)
    blocks = {2: 3, 3: 4, 4: 1 + STAGE4_IDENTITY_BLOCKS[depth], 5: 3}
    features = []
    for stage in (2, 3, 4, 5):
        for index in range(blocks[stage]):
            stride = 1 if stage == 2 or index > 0 else 2
            x = _block(x, stage, chr(ord("a") + index), STAGE_FILTERS[stage], stride, shortcut_conv=index == 0,
                       train_bn=train_bn)
        features.append(x)
    return features


def _bn(name, train_bn):
    return BatchNorm(name, train_bn, epsilon=BN_EPSILON)


def _block(x, stage, block, filters, stride, shortcut_conv, train_bn):
    conv = f"res{stage}{block}_branch"
    norm = f"bn{stage}{block}_branch"
    f1, f2, f3 = filters
    y = keras.layers.Conv2D(f1, 1, strides=stride, name=conv + "2a")(x)
    y = keras.layers.Activation("relu", name=f"res{stage}{block}_relu_2a")(_bn(norm + "2a", train_bn)(y))
    y = keras.layers.Conv2D(f2, 3, padding="same", name=conv + "2b")(y)
    y = keras.layers.Activation("relu", name=f"res{stage}{block}_relu_2b")(_bn(norm + "2b", train_bn)(y))
    y = keras.layers.Conv2D(f3, 1, name=conv + "2c")(y)
    y = _bn(norm + "2c", train_bn)(y)
    if shortcut_conv:
        x = keras.layers.Conv2D(f3, 1, strides=stride, name=conv + "1")(x)
        x = _bn(norm + "1", train_bn)(x)
    y = keras.layers.Add(name=f"res{stage}{block}_add")([y, x])
    return keras.layers.Activation("relu", name=f"res{stage}{block}_out")(y)
