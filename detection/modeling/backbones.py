"""Backbones returning the feature maps their FPN reads, by name (config BACKBONE): C2..C5
(strides 4, 8, 16, 32), or for torchvision_mobilenet_v3_large its two maps at stride 32 (the
FPN torchvision_mobilenet's input).

Each entry of ``BACKBONES`` declares how it builds and what input it expects, so that
pretrained weights see the pixels they were trained on:

  name                   layers named like                  input convention
  resnet50, resnet101    keras.applications (conv2_block1_*)  caffe: BGR, ImageNet mean subtracted
  mobilenetv2            keras.applications, stage-prefixed  tf: RGB scaled to [-1, 1]
  resnet_tiny            keras.applications' ResNet style    RGB, mean subtracted (no weights exist)
  matterport_resnet50,   matterport (conv1, res2a_branch2a,  RGB, MEAN_PIXEL subtracted, no scaling
  matterport_resnet101   bn2a_branch2a, ...)
  torchvision_resnet50   torchvision's modules               RGB in [0, 1], ImageNet mean and std
                         (backbone.body.layer1.0.conv1)      (here in 0..255 units)
  torchvision_mobilenet_ torchvision's modules               as torchvision_resnet50
  v3_large               (backbone.body.4.block.2.fc1)

MEAN_PIXEL / PIXEL_STD (RGB order) override a convention's mean and divisor when set; the
channel order is always the backbone's. Layer names carry the stage (conv3_*, res3*, bn3*),
so layer selection by stage (``heads``, ``3+``, ``4+``, ``5+``, ``all``) works for every backbone.
"""

import dataclasses
from typing import Callable

import keras

from detection.modeling import matterport_resnet, normalization, torchvision_mobilenet, torchvision_resnet
from detection.modeling.weights import WeightsError

# keras.applications layer whose output is each stage's feature map.
_RESNET_STAGE_OUTPUTS = {
    "resnet50": ["conv2_block3_out", "conv3_block4_out", "conv4_block6_out", "conv5_block3_out"],
    "resnet101": ["conv2_block3_out", "conv3_block4_out", "conv4_block23_out", "conv5_block3_out"],
}
# MobileNetV2 layers at strides 4, 8, 16, 32, renamed by stage below.
_MOBILENET_STAGE_OUTPUTS = ["block_2_add", "block_5_add", "block_12_add", "out_relu"]


@dataclasses.dataclass(frozen=True)
class InputConvention:
    """How a backbone wants its input: ``(rgb - mean) / std`` per channel (mean, std in RGB
    order, for RGB 0..255 pixels), then reversed to BGR when ``channels`` is "BGR"."""

    channels: str
    mean: tuple
    std: tuple

    @property
    def to_bgr(self):
        return self.channels == "BGR"


# keras.applications.imagenet_utils "caffe": RGB -> BGR, minus the ImageNet mean (BGR 103.939, 116.779, 123.68).
CAFFE = InputConvention("BGR", (123.68, 116.779, 103.939), (1.0, 1.0, 1.0))
# keras.applications.imagenet_utils "tf": x / 127.5 - 1.
TF_SCALE = InputConvention("RGB", (127.5, 127.5, 127.5), (127.5, 127.5, 127.5))
# RGB minus the ImageNet mean, no scaling: matterport's mold_image with its MEAN_PIXEL default.
MEAN_SUBTRACTED = InputConvention("RGB", (123.7, 116.8, 103.9), (1.0, 1.0, 1.0))
# torchvision: RGB / 255, minus (0.485, 0.456, 0.406), over (0.229, 0.224, 0.225); times 255 here.
IMAGENET_RGB = InputConvention("RGB", (123.675, 116.28, 103.53), (58.395, 57.12, 57.375))


# Layer names by stage: keras.applications' ResNets (conv3_block1_1_conv), and the backbones
# named like them (resnet_tiny, mobilenetv2 once renamed); matterport's (res3a_branch2a, bn3a_branch2a).
KERAS_STAGE_LAYERS = (r"conv{stage}_.*",)
MATTERPORT_STAGE_LAYERS = (r"res{stage}.*", r"bn{stage}.*")
# torchvision's ResNet: stage k is its module layer{k - 1}.
TORCHVISION_STAGE_LAYERS = (r"backbone\.body\.layer{layer}\..*",)


@dataclasses.dataclass(frozen=True)
class Backbone:
    """build(image [B, H, W, 3] normalised, train_bn, weights) -> the maps its FPN reads ([C2, C3,
    C4, C5] but for torchvision_mobilenet_v3_large); input: its InputConvention; imagenet: whether
    ``weights="imagenet"`` is available; stage_layers: patterns of its layer names per stage,
    ``{stage}`` standing for 2..5 (``{layer}`` for stage - 1, torchvision's numbering), or a
    function stage -> patterns; what TRAIN_LAYERS 3+, 4+, 5+ select (detection/engine/layer_selection.py)."""

    build: Callable
    input: InputConvention
    imagenet: bool
    stage_layers: tuple = KERAS_STAGE_LAYERS

    def stage_patterns(self, stage):
        """The regular expressions (re.fullmatch) of the layers of ``stage`` (2..5)."""
        if callable(self.stage_layers):
            return tuple(self.stage_layers(stage))
        return tuple(p.format(stage=stage, layer=stage - 1) for p in self.stage_layers)


def _keras_application(name, stage_outputs, rename=None):
    """rename(net): renames its layers in place after the feature maps are taken (or None)."""

    def build(image, train_bn, weights=None):
        constructor = {
            "resnet50": keras.applications.ResNet50,
            "resnet101": keras.applications.ResNet101,
            "mobilenetv2": keras.applications.MobileNetV2,
        }[name]
        try:
            net = constructor(include_top=False, weights="imagenet" if weights == "imagenet" else None,
                              input_tensor=image)
        except Exception as e:  # keras' download: URL fetch failure, checksum, no disk
            if weights != "imagenet":
                raise
            raise WeightsError(f"BACKBONE_WEIGHTS imagenet: {name}'s ImageNet weights could not be downloaded "
                               f"({' '.join(str(e).split())[:200]}); offline, copy the file into "
                               "~/.keras/models, or start from --weights FILE or BACKBONE_WEIGHTS none") from None
        if weights not in (None, "imagenet"):
            net.load_weights(weights)
        if not train_bn:
            normalization.freeze_batch_norm(net.layers)
        features = [net.get_layer(n).output for n in stage_outputs]
        if rename is not None:
            rename(net)
        return features

    return build


def _prefix_mobilenet_stages(net):
    """Renames MobileNetV2 layers ``convK_<name>`` by the stride stage they belong to."""
    stage = 1
    boundaries = {"block_1_expand": 2, "block_3_expand": 3, "block_6_expand": 4, "block_13_expand": 5}
    for layer in net.layers:
        stage = boundaries.get(layer.name, stage)
        if not isinstance(layer, keras.layers.InputLayer):
            layer.name = f"conv{stage}_{layer.name}"


def _resnet_tiny(width):
    def build(image, train_bn, weights=None):
        if weights not in (None, "none"):
            raise ValueError("resnet_tiny has no pretrained weights")
        return resnet_tiny(image, width, train_bn)

    return build


def resnet_tiny(image, width, train_bn):
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
        if stride != 1:
            # Subsample, then a 1x1 conv at stride 1: the same outputs as a 1x1 conv at ``stride``,
            # without oneDNN's strided 1x1 weight gradient, which for fewer than 16 (AVX-512) or 8
            # (AVX2) input channels writes past its workspace: a crash or wrong gradients
            # (oneDNN issue 6035; here, TINY_BACKBONE_WIDTH 8 at 1 image a batch).
            shortcut = keras.layers.MaxPooling2D(1, strides=stride, name=f"{prefix}_0_subsample")(shortcut)
        shortcut = keras.layers.Conv2D(filters, 1, use_bias=False, name=f"{prefix}_0_conv")(shortcut)
        shortcut = normalization.BatchNorm(name=f"{prefix}_0_bn", trainable=train_bn)(shortcut)
    y = keras.layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False, name=f"{prefix}_1_conv")(x)
    y = normalization.BatchNorm(name=f"{prefix}_1_bn", trainable=train_bn)(y)
    y = keras.layers.Activation("relu", name=f"{prefix}_1_relu")(y)
    y = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{prefix}_2_conv")(y)
    y = normalization.BatchNorm(name=f"{prefix}_2_bn", trainable=train_bn)(y)
    y = keras.layers.Add(name=f"{prefix}_add")([shortcut, y])
    return keras.layers.Activation("relu", name=f"{prefix}_out")(y)


def _matterport(depth):
    def build(image, train_bn, weights=None):
        if weights not in (None, "none"):
            raise ValueError(f"matterport_resnet{depth}: load matterport weights with --weights FILE.h5 instead")
        return matterport_resnet.resnet(image, depth, train_bn)

    return build


def _torchvision_resnet50(image, train_bn, weights=None):
    if weights not in (None, "none"):
        raise ValueError("torchvision_resnet50: load torchvision's weights with --weights FILE.pth instead")
    return torchvision_resnet.resnet50(image)


def _torchvision_mobilenet_v3_large(image, train_bn, weights=None):
    if weights not in (None, "none"):
        raise ValueError("torchvision_mobilenet_v3_large: load torchvision's weights with --weights FILE.pth instead")
    return torchvision_mobilenet.mobilenet_v3_large(image)


def backbones(tiny_width=32):
    """The registry: name (detection/choices.py BACKBONES) -> Backbone (resnet_tiny's width
    comes from TINY_BACKBONE_WIDTH)."""
    return {
        "resnet50": Backbone(_keras_application("resnet50", _RESNET_STAGE_OUTPUTS["resnet50"]), CAFFE, True),
        "resnet101": Backbone(_keras_application("resnet101", _RESNET_STAGE_OUTPUTS["resnet101"]), CAFFE, True),
        # Stage prefixes on MobileNet's own names, so "3+", "4+" select the right layers.
        "mobilenetv2": Backbone(_keras_application("mobilenetv2", _MOBILENET_STAGE_OUTPUTS, _prefix_mobilenet_stages),
                                TF_SCALE, True),
        "resnet_tiny": Backbone(_resnet_tiny(tiny_width), MEAN_SUBTRACTED, False),
        "matterport_resnet50": Backbone(_matterport(50), MEAN_SUBTRACTED, False, MATTERPORT_STAGE_LAYERS),
        "matterport_resnet101": Backbone(_matterport(101), MEAN_SUBTRACTED, False, MATTERPORT_STAGE_LAYERS),
        "torchvision_resnet50": Backbone(_torchvision_resnet50, IMAGENET_RGB, False, TORCHVISION_STAGE_LAYERS),
        "torchvision_mobilenet_v3_large": Backbone(_torchvision_mobilenet_v3_large, IMAGENET_RGB, False,
                                                   torchvision_mobilenet.stage_patterns),
    }


def input_convention(config):
    """The InputConvention the model normalises with: the backbone's, with MEAN_PIXEL and
    PIXEL_STD in its place when the config sets them."""
    convention = backbones()[config.BACKBONE].input
    return dataclasses.replace(
        convention,
        mean=tuple(config.MEAN_PIXEL) if config.MEAN_PIXEL is not None else convention.mean,
        std=tuple(config.PIXEL_STD) if config.PIXEL_STD is not None else convention.std)


def build_backbone(image, config, weights=None):
    """image: [B, H, W, 3] normalised input tensor -> the backbone's maps ([C2, C3, C4, C5] tensors).

    weights: None (random initialisation: building never downloads anything), "imagenet"
    (keras.applications' download, for a fresh training run), or a path to a weights file of
    the same backbone. With TRAIN_BN false every BatchNormalization layer is frozen
    (``trainable = False`` runs it in inference mode).
    """
    entry = backbones(config.TINY_BACKBONE_WIDTH)[config.BACKBONE]
    if weights == "imagenet" and not entry.imagenet:
        raise ValueError(f"BACKBONE {config.BACKBONE} has no ImageNet weights")
    return entry.build(image, config.TRAIN_BN, None if weights == "none" else weights)
