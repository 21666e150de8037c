"""The configuration: every key with its default, its type and a one-line comment.

Keys keep matterport's names where the meaning is the same, so a Mask_RCNN config ports
by copying values. A run is configured by a YAML file (``configs/*.yaml``) that may name a
``_BASE_`` file to inherit from, then by ``--set KEY=VALUE`` overrides, each value parsed as
YAML (``--set RPN_ANCHOR_RATIOS=[0.5,1,2]``). Everything is validated on load: an unknown
key, a wrong type or a value out of range is a ``ConfigError`` naming the key and the
value; a misspelt key also names the closest valid key.

Example::

    config = Config.from_yaml("configs/shapes.yaml", overrides=["IMAGES_PER_GPU=4"])
    config.BATCH_SIZE            # IMAGES_PER_GPU x GPU_COUNT, derived
    config.dump("runs/x/config.yaml")

YAML is read with ``yaml.safe_load`` only: a config file never runs code.
"""

import dataclasses
import difflib
import math
import os
from typing import Any, Callable

import yaml

from detection import choices


class ConfigError(ValueError):
    """A config file or override is wrong. The message's last line names the key."""


# ----------------------------------------------------------------------------------------
# Value checkers. Each returns the normalised value or raises ConfigError.


@dataclasses.dataclass(frozen=True)
class Check:
    """A type/range check: `describe` says what is expected, `convert` normalises or raises."""

    describe: str
    convert: Callable[[Any], Any]


def _fail(expected):
    raise TypeError(expected)


def integer(minimum=None, maximum=None):
    def convert(v):
        if isinstance(v, bool) or not isinstance(v, int):
            if isinstance(v, float) and v.is_integer():
                v = int(v)
            else:
                _fail("")
        if (minimum is not None and v < minimum) or (maximum is not None and v > maximum):
            _fail("")
        return v

    return Check(_range_text("an integer", minimum, maximum), convert)


def number(minimum=None, maximum=None):
    def convert(v):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            _fail("")
        if (minimum is not None and v < minimum) or (maximum is not None and v > maximum):
            _fail("")
        return float(v)

    return Check(_range_text("a number", minimum, maximum), convert)


def _range_text(kind, minimum, maximum):
    if minimum is not None and maximum is not None:
        return f"{kind} in [{minimum}, {maximum}]"
    if minimum is not None:
        return f"{kind} >= {minimum}"
    if maximum is not None:
        return f"{kind} <= {maximum}"
    return kind


def boolean():
    def convert(v):
        if not isinstance(v, bool):
            _fail("")
        return v

    return Check("true or false", convert)


def text(choices=None, optional=False):
    def convert(v):
        if v is None and optional:
            return None
        if not isinstance(v, str) or (choices is not None and v not in choices):
            _fail("")
        return v

    what = "one of " + ", ".join(repr(c) for c in choices) if choices else "a string"
    return Check(what + (" or null" if optional else ""), convert)


def sequence(item, length=None, min_length=0, optional=False):
    def convert(v):
        if v is None and optional:
            return None
        if not isinstance(v, (list, tuple)):
            _fail("")
        if (length is not None and len(v) != length) or len(v) < min_length:
            _fail("")
        return [item.convert(x) for x in v]

    size = f"{length} " if length is not None else ""
    what = f"a list of {size}values, each {item.describe}"
    if min_length:
        what += f" (at least {min_length})"
    return Check(what + (" or null" if optional else ""), convert)


def mapping(value, keys=None):
    def convert(v):
        if not isinstance(v, dict):
            _fail("")
        if keys is not None and not set(v) <= set(keys):
            _fail("")
        return {k: value.convert(x) for k, x in v.items()}

    what = f"a mapping of names to {value.describe}"
    if keys is not None:
        what += " with keys from " + ", ".join(keys)
    return Check(what, convert)


DATASET_FORMATS = choices.DATASET_FORMATS
PYTHON_FORMAT = "python:MODULE:CLASS"


def split_python_format(value):
    """``"python:MODULE:CLASS"`` -> (MODULE, CLASS), or None when ``value`` has another form.

    MODULE is a dotted module name or a path to a .py file; a path may hold ':' itself
    (``C:\\data\\my.py``), so CLASS is what follows the LAST ':' and must be an identifier.
    """
    if not isinstance(value, str) or not value.startswith("python:"):
        return None
    module, sep, name = value[len("python:"):].rpartition(":")
    if not (sep and module.strip() and name.isidentifier()):
        return None
    return module, name


def dataset_format():
    """One of DATASET_FORMATS, or python:MODULE:CLASS (the module is imported only when a tool
    loads the dataset: validating a config never runs code)."""
    def convert(v):
        if v in DATASET_FORMATS or split_python_format(v):
            return v
        _fail("")

    return Check("one of " + ", ".join(repr(f) for f in DATASET_FORMATS) + f", or '{PYTHON_FORMAT}'", convert)


def anything(describe):
    return Check(describe, lambda v: v)


# ----------------------------------------------------------------------------------------
# The keys.


@dataclasses.dataclass(frozen=True)
class Key:
    name: str
    default: Any
    check: Check
    comment: str
    section: str


# From detection/choices.py, not from the registries: reading a config must not import TensorFlow.
BACKBONES = choices.BACKBONES
NO_PRETRAINED_BACKBONES = choices.NO_PRETRAINED_BACKBONES

LOSS_NAMES = ("rpn_class_loss", "rpn_bbox_loss", "rcnn_class_loss", "rcnn_bbox_loss", "mask_loss")

_KEYS: list[Key] = []


def _key(section, name, default, check, comment):
    _KEYS.append(Key(name, default, check, comment, section))


S = "General"
_key(S, "NAME", "detector", text(), "Name of the configuration; used in output folder names.")
_key(S, "SEED", 42, integer(0), "Seed for data order, augmentation, sampling and initialisation.")
_key(S, "GPU_COUNT", 1, integer(1), "Replicas to train on (set by tools/train.py from --gpus or --cpu-replicas).")
_key(S, "IMAGES_PER_GPU", 2, integer(1), "Images per replica per step; the global batch is IMAGES_PER_GPU x GPU_COUNT.")
_key(S, "CLUSTER_TIMEOUT", 600, integer(1),
     "Several hosts (TF_CONFIG): seconds a worker waits for all the others at start before it stops with one line "
     "naming the addresses that did not answer.")
_key(S, "HEARTBEAT_TIMEOUT", 10, integer(1),
     "Several hosts (TF_CONFIG): seconds without a heartbeat after which a worker counts as lost; the others then "
     "stop with one line naming it (restart all with --resume).")
_key(S, "NUM_CLASSES", 4, integer(2), "Number of classes including background (class id 0).")
_key(S, "CLASS_NAMES", None, sequence(text(), optional=True),
     "Names of classes 1..NUM_CLASSES-1; null takes them from the dataset.")
_key(S, "CATEGORY_IDS", None, sequence(integer(), optional=True),
     "The dataset's own id of each class 1..NUM_CLASSES-1 (COCO's run 1..90 for 80 classes), used in every output; "
     "null: 1..NUM_CLASSES-1. tools/train.py records the training set's.")

S = "Backbone and FPN"
_key(S, "BACKBONE", "resnet50", text(BACKBONES),
     "Backbone network (detection/modeling/backbones.py): keras.applications' resnet50, resnet101, mobilenetv2; "
     "resnet_tiny, a small ResNet for CPU work and tests; matterport_resnet50 / _resnet101, matterport's, with its "
     "layer names; torchvision_resnet50, torchvision_mobilenet_v3_large, torchvision's (its layer names, frozen "
     "BatchNorm, for its .pth weights; the MobileNetV3 gives its FPN two maps at stride 32).")
_key(S, "FPN", "standard", text(choices.FPNS),
     "Feature pyramid (detection/modeling/fpn.py): standard (fpn_* layers); torchvision (its layer names, for its "
     ".pth weights); torchvision_v2 (a BatchNorm after each conv, as its _v2 models); torchvision_mobilenet (its FPN "
     "over torchvision_mobilenet_v3_large's two maps: maps at strides 32, 32, 64, the RoI heads read the first two).")
_key(S, "BACKBONE_WEIGHTS", "none", text(),
     "Backbone weights a fresh training run starts from: imagenet, none, or a path to a weights file of the backbone. "
     "Never used when weights are loaded (inference, --weights, --resume).")
_key(S, "BACKBONE_STRIDES", [4, 8, 16, 32, 64], sequence(integer(1), min_length=1),
     "Strides of the pyramid levels (P2..P6) in input pixels: the FPN's, which it declares "
     "(torchvision_mobilenet: [32, 32, 64]).")
_key(S, "TRAIN_BN", False, boolean(),
     "Train BatchNorm layers; false freezes them (the usual choice for small batches).")
_key(S, "TOP_DOWN_PYRAMID_SIZE", 256, integer(8), "Channels of the FPN feature maps.")
_key(S, "TINY_BACKBONE_WIDTH", 32, integer(4), "Channels of the first stage of resnet_tiny (doubled at each stage).")

S = "Anchors and RPN"
_key(S, "RPN_ANCHOR_SCALES", [32, 64, 128, 256, 512], sequence(number(0.5), min_length=1),
     "Side in input pixels of the ratio-1 anchor at each level P2..P6 (one per BACKBONE_STRIDES level), or with "
     "ANCHOR_SCALES_ON_EVERY_LEVEL the sides used on every level.")
_key(S, "ANCHOR_SCALES_ON_EVERY_LEVEL", False, boolean(),
     "true: every RPN_ANCHOR_SCALES side on each level, scales x ratios anchors per location (torchvision's "
     "MobileNetV3: 5 x 3); false: one scale per level.")
_key(S, "RPN_ANCHOR_RATIOS", [0.5, 1.0, 2.0], sequence(number(0.01), min_length=1),
     "Anchor aspect ratios, width / height.")
_key(S, "RPN_ANCHOR_STRIDE", 1, integer(1),
     "Anchors at every RPN_ANCHOR_STRIDE-th feature map cell (the RPN conv runs with this stride).")
_key(S, "ANCHOR_OFFSET", 0.5, number(0, 1),
     "Anchor centres at (cell + ANCHOR_OFFSET) x stride: 0.5 the cell centre, 0 its corner (matterport).")
_key(S, "ANCHOR_GENERATOR", "standard", text(choices.ANCHOR_GENERATORS),
     "standard: anchors as RPN_ANCHOR_SCALES, RPN_ANCHOR_RATIOS and ANCHOR_OFFSET say; torchvision: its "
     "AnchorGenerator (base anchors rounded to whole pixels, centres at i x (padded side // level side)).")
_key(S, "RPN_HEAD", "standard", text(choices.RPN_HEADS),
     "standard: 3x3 conv of TOP_DOWN_PYRAMID_SIZE channels, one sigmoid logit per anchor; matterport: 512 channels, "
     "two softmax logits (its layer names); torchvision / torchvision_v2: torchvision's (one or two 3x3 convs, "
     "its layer names).")
_key(S, "RPN_POSITIVE_IOU", 0.7, number(0, 1), "An anchor whose IoU with a GT box is at least this is positive.")
_key(S, "RPN_NEGATIVE_IOU", 0.3, number(0, 1), "An anchor whose best IoU with every GT box is below this is negative.")
_key(S, "RPN_MATCH_LOW_QUALITY", True, boolean(),
     "Each GT box also claims its best anchor(s), even below RPN_POSITIVE_IOU.")
_key(S, "RPN_TRAIN_ANCHORS_PER_IMAGE", 256, integer(2), "Anchors sampled per image for the RPN losses.")
_key(S, "RPN_POSITIVE_FRACTION", 0.5, number(0, 1), "Largest fraction of positives among the sampled anchors.")
_key(S, "RPN_BBOX_STD_DEV", [0.1, 0.1, 0.2, 0.2], sequence(number(1e-6), length=4),
     "Divisors of the RPN box deltas (dy, dx, log dh, log dw).")
_key(S, "RPN_NMS_THRESHOLD", 0.7, number(0, 1), "IoU threshold of the NMS over proposals.")
_key(S, "PRE_NMS_LIMIT", 6000, integer(1), "Highest-scoring anchors kept per image before NMS.")
_key(S, "POST_NMS_ROIS_TRAINING", 2000, integer(1), "Proposals kept per image after NMS in training.")
_key(S, "POST_NMS_ROIS_INFERENCE", 1000, integer(1), "Proposals kept per image after NMS in inference.")
_key(S, "PROPOSAL_SELECTION", "standard", text(choices.PROPOSAL_SELECTIONS),
     "standard: the PRE_NMS_LIMIT best anchors of the image, one NMS; torchvision: the PRE_NMS_LIMIT best of EACH "
     "level, boxes under 1e-3 px dropped, NMS within each level, then the best.")
_key(S, "RPN_SCORE_THRESHOLD", 0.0, number(0, 1),
     "Proposals whose objectness probability is below this are dropped before the NMS (torchvision's "
     "rpn_score_thresh: 0.05 for its MobileNetV3 model); 0 drops none.")

S = "Second stage (RCNN heads)"
_key(S, "TRAIN_ROIS_PER_IMAGE", 200, integer(1), "RoIs sampled per image for the box and mask heads.")
_key(S, "ROI_POSITIVE_RATIO", 0.33, number(0, 1), "Largest fraction of positive RoIs among the sampled ones.")
_key(S, "ROI_POSITIVE_IOU", 0.5, number(0, 1), "A RoI whose IoU with a GT box is at least this is positive.")
_key(S, "ROI_NEGATIVE_IOU", 0.5, number(0, 1), "A RoI whose best IoU with every GT box is below this is negative.")
_key(S, "BBOX_STD_DEV", [0.1, 0.1, 0.2, 0.2], sequence(number(1e-6), length=4),
     "Divisors of the RCNN box deltas (dy, dx, log dh, log dw).")
_key(S, "POOL_SIZE", 7, integer(1), "Side of the RoIAlign output for the box head.")
_key(S, "ROI_ALIGN_MODE", "crop_and_resize", text(choices.ROI_ALIGN_MODES),
     "RoIAlign: crop_and_resize (aligned, 2x2 samples per bin; fast on CPU/GPU without XLA), gather (the same numbers "
     "with static shapes, compiles with XLA / jit_compile), matterport (its level rule with round() and one corner-"
     "aligned sample per bin), torchvision (MultiScaleRoIAlign: sampling ratio 2, not aligned, its level mapper).")
_key(S, "BOX_FRAME", "pixels", text(choices.BOX_FRAMES),
     "Frame of the box math inside the model: pixels (pixel edges) or normalized (matterport's (y2 - 1) / (H - 1) "
     "coordinates: its weights need it; proposals clipped to the whole input, outputs rounded to whole pixels), "
     "torchvision (pixels, back to the original image per axis: original side / resized side).")
_key(S, "BOX_HEAD", "fc", text(choices.BOX_HEADS),
     "fc: two fully connected layers (rcnn_fc1/2); matterport: its conv + BatchNorm head (mrcnn_class_conv1/2, "
     "mrcnn_class_bn1/2); torchvision: TwoMLPHead (fc6, fc7); torchvision_v2: four 3x3 conv + BatchNorm, one fc.")
_key(S, "MASK_HEAD", "fcn", text(choices.MASK_HEADS),
     "fcn: four 3x3 convs (mask_conv1..4); matterport: the same with a BatchNorm after each (mrcnn_mask_conv1..4, "
     "mrcnn_mask_bn1..4); torchvision / torchvision_v2: torchvision's (v2: with BatchNorm), its layer names.")
_key(S, "MASK_POOL_SIZE", 14, integer(1), "Side of the RoIAlign output for the mask head.")
_key(S, "MASK_SHAPE", [28, 28], sequence(integer(1), length=2), "Side of the predicted masks (twice MASK_POOL_SIZE).")
_key(S, "FPN_CLASSIF_FC_LAYERS_SIZE", 1024, integer(1), "Width of the two fully connected layers of the box head.")
_key(S, "USE_MASK", True, boolean(), "Add the mask head (Mask R-CNN); false gives Faster R-CNN.")

S = "Detection (inference)"
_key(S, "DETECTION_MAX_INSTANCES", 100, integer(1), "Most detections returned per image.")
_key(S, "DETECTION_MIN_CONFIDENCE", 0.7, number(0, 1),
     "Detections scoring below this are dropped (inference and pictures; evaluation uses EVAL_MIN_CONFIDENCE).")
_key(S, "DETECTION_NMS_THRESHOLD", 0.3, number(0, 1), "IoU threshold of the per-class NMS over detections.")
_key(S, "DETECTION_MIN_SIZE", 0.0, number(0),
     "Detections with a side under this many input pixels are dropped before the NMS (torchvision: 0.01).")
_key(S, "DETECTION_CLASSES_PER_ROI", "all", text(choices.CLASSES_PER_ROI),
     "all: every class of a RoI scoring at least the threshold may become a detection (Detectron2); top: only the "
     "RoI's most probable class, background included (matterport).")
_key(S, "EVAL_MIN_CONFIDENCE", 0.05, number(0, 1),
     "Score threshold of every evaluation (eval_coco, the per-epoch AP): COCO AP counts detections down to low scores,"
     " up to DETECTION_MAX_INSTANCES per image.")
_key(S, "MASK_PASTE", "bilinear", text(choices.MASK_PASTES),
     "How a 28x28 mask is pasted into its box: bilinear (OpenCV, edges replicated) or matterport (its resize with zero"
     " borders at the box rounded to whole pixels) or torchvision (paste_masks_in_image: one pixel of border, box "
     "widened by 30 / 28), thresholded at 0.5.")

S = "Images"
_key(S, "IMAGE_RESIZE_MODE", "square", text(choices.RESIZE_MODES),
     "square: resize and pad to IMAGE_MAX_DIM^2; pad64: resize, pad to a multiple of 64; pad32: resize, pad to a "
     "multiple of 32 (torchvision); none: as is.")
_key(S, "IMAGE_MIN_DIM", 800, integer(1), "The shorter side is scaled up to at least this.")
_key(S, "IMAGE_MAX_DIM", 1024, integer(64),
     "The longer side is scaled down to at most this; a multiple of 64 (any size in pad32 mode).")
_key(S, "IMAGE_MIN_SCALE", 0.0, number(0), "Smallest allowed scale-up factor (0: no limit).")
_key(S, "IMAGE_RESIZE_METHOD", "opencv", text(choices.RESIZE_METHODS),
     "opencv: bilinear cv2.resize (large JPEGs decoded at 1/2..1/8 first); matterport: scikit-image's bilinear with "
     "zero borders, truncated to uint8, as matterport's resize_image; torchvision: its GeneralizedRCNNTransform (the "
     "shorter side to IMAGE_MIN_DIM, up or down, the longer at most IMAGE_MAX_DIM, sizes floored, torch's bilinear in "
     "float, padding zero after normalisation).")
_key(S, "MEAN_PIXEL", None, sequence(number(), length=3, optional=True),
     "Per-channel RGB mean subtracted from the image; null: the backbone's own input convention (see docs/config.md).")
_key(S, "PIXEL_STD", None, sequence(number(1e-6), length=3, optional=True),
     "Per-channel divisor applied after the mean; null: the backbone's own.")
_key(S, "MAX_GT_INSTANCES", 100, integer(1),
     "GT boxes per image, padded to this; more are an error or dropped (see STRICT_DATA).")
_key(S, "MINI_MASK_SHAPE", [56, 56], sequence(integer(1), length=2),
     "GT masks are stored cropped to their box and resized to this.")

S = "Dataset"
_key(S, "DATASET_FORMAT", "shapes", dataset_format(),
     "Dataset format: shapes (synthetic), coco (JSON), voc (XML), via (VGG Image Annotator JSON), labelme (JSON per "
     "image), or python:MODULE:CLASS (a CustomDataset subclass; see docs/custom_data.md).")
_key(S, "TRAIN_IMAGES", None, text(optional=True), "Folder of training images (coco, voc, via, labelme).")
_key(S, "TRAIN_ANNOTATIONS", None, text(optional=True),
     "COCO or VIA JSON file, or VOC / LabelMe annotation folder, for training.")
_key(S, "TRAIN_SPLIT", None, text(optional=True), "Optional file of image stems for training (voc, labelme).")
_key(S, "VAL_IMAGES", None, text(optional=True), "Folder of validation images (coco, voc, via, labelme).")
_key(S, "VAL_ANNOTATIONS", None, text(optional=True),
     "COCO or VIA JSON file, or VOC / LabelMe annotation folder, for validation.")
_key(S, "VAL_SPLIT", None, text(optional=True), "Optional file of image stems for validation (voc, labelme).")
_key(S, "VIA_CLASS_ATTRIBUTE", None, text(optional=True),
     "via: the region attribute holding each region's class name; null: the only region attribute there is (none: see "
     "CLASS_NAMES in docs/custom_data.md).")
_key(S, "SHAPES_TRAIN_COUNT", 500, integer(1), "Images in the synthetic shapes training set.")
_key(S, "SHAPES_VAL_COUNT", 50, integer(1), "Images in the synthetic shapes validation set (made with another seed).")
_key(S, "SHAPES_IMAGE_SIZE", 128, integer(16), "Side of the synthetic shapes images in pixels.")
_key(S, "KEEP_EMPTY_IMAGES", True, boolean(), "Keep images without GT boxes as negative samples.")
_key(S, "STRICT_DATA", False, boolean(),
     "Any data problem is an error naming file and field, instead of a counted repair.")
_key(S, "AUGMENTATION", [], sequence(anything("a mapping")),
     "Augmentations, applied in order: a list of {name: ..., p: ..., other arguments}.")
_key(S, "MIN_BOX_VISIBILITY", 0.3, number(0, 1),
     "After augmentation, boxes keeping less than this fraction of their area are dropped.")

S = "Training"
_key(S, "EPOCHS", 10, integer(1), "Epochs to train (the sum of TRAIN_STAGES when stages are given).")
_key(S, "STEPS_PER_EPOCH", 1000, integer(1), "Training steps per epoch.")
_key(S, "VALIDATION_STEPS", 50, integer(0), "Validation steps at the end of each epoch (0: none).")
_key(S, "LEARNING_RATE", 0.01, number(0), "Base learning rate for the global batch.")
_key(S, "LEARNING_MOMENTUM", 0.9, number(0, 1), "Momentum of SGD.")
_key(S, "WEIGHT_DECAY", 0.0001, number(0), "L2 weight decay; BatchNorm gamma and beta and all biases are excluded.")
_key(S, "GRADIENT_CLIP_NORM", 5.0, number(0), "Clip the global gradient norm to this (0: no clipping).")
_key(S, "LR_SCHEDULE", "cosine", text(["constant", "step", "cosine"]),
     "Learning-rate decay after warm-up, per iteration.")
_key(S, "LR_WARMUP_STEPS", 100, integer(0), "Steps of linear warm-up from LR_WARMUP_FACTOR x LEARNING_RATE.")
_key(S, "LR_WARMUP_FACTOR", 0.001, number(0, 1), "Learning-rate multiplier at the first warm-up step.")
_key(S, "LR_STEP_EPOCHS", [], sequence(integer(1)),
     "For step decay: epochs at which the rate is multiplied by LR_STEP_FACTOR.")
_key(S, "LR_STEP_FACTOR", 0.1, number(0, 1), "For step decay: the multiplier.")
_key(S, "LOSS_WEIGHTS", {n: 1.0 for n in LOSS_NAMES}, mapping(number(0), keys=LOSS_NAMES),
     "Weight of each loss in the total.")
_key(S, "TRAIN_LAYERS", "all", text(),
     "Layers to train: heads, 3+, 4+, 5+, all, or a regular expression over layer names.")
_key(S, "TRAIN_STAGES", [], sequence(anything("a mapping {layers, epochs}")),
     "Staged schedule: a list of {layers: ..., epochs: N}; overrides TRAIN_LAYERS.")
_key(S, "MIXED_PRECISION", "none", text(["none", "float16", "bfloat16"]),
     "Compute dtype of convolutions; variables, losses, NMS and RoIAlign stay float32. bfloat16 also applies at "
     "inference (the tools' --precision overrides it; detection/engine/precision.py).")
_key(S, "DETERMINISTIC_OPS", "cpu", text(["cpu", "always", "never"]),
     "TF op determinism in training: cpu = when no GPU is visible (crop_and_resize's CPU gradient otherwise drops "
     "contributions of overlapping RoIs, TF #42033); always needs ROI_ALIGN_MODE gather on GPUs.")
_key(S, "EARLY_STOPPING_PATIENCE", 0, integer(0),
     "Stop after this many epochs without improvement of MONITOR (0: off).")
_key(S, "REDUCE_LR_PATIENCE", 0, integer(0),
     "Divide the rate by 10 after this many epochs without improvement (0: off).")
_key(S, "MONITOR", "val_loss", text(), "Metric for the best checkpoint, early stopping and rate reduction.")
_key(S, "EVAL_AP_IMAGES", 0, integer(0), "Validation images on which COCO AP is computed at each epoch's end (0: off).")


KEYS: dict[str, Key] = {k.name: k for k in _KEYS}
DERIVED = ("BATCH_SIZE", "IMAGE_SHAPE", "IMAGE_META_SIZE")


def _closest(name):
    match = difflib.get_close_matches(name.upper(), list(KEYS), n=1, cutoff=0.5)
    return match[0] if match else None


class Config:
    """A validated set of values for every key in ``KEYS``, plus derived values.

    Attribute access returns values: ``config.RPN_ANCHOR_SCALES``. Derived values:
      BATCH_SIZE: IMAGES_PER_GPU x GPU_COUNT, the global batch of one step.
      IMAGE_SHAPE: [H, W, 3] of the model input (None for H, W with IMAGE_RESIZE_MODE none/pad64).
      IMAGE_META_SIZE: length of the image_meta vector (see detection.core.image_meta).
    """

    def __init__(self, values=None, source="<dict>"):
        resolved = {k.name: _copy(k.default) for k in _KEYS}
        for name, value in (values or {}).items():
            value = _validate(name, value, source)
            if isinstance(value, dict):
                value = {**resolved[name], **value}  # LOSS_WEIGHTS: set only what changes
            resolved[name] = value
        object.__setattr__(self, "_values", resolved)
        self._check_consistency(source)

    # -- construction -------------------------------------------------------------------

    @classmethod
    def from_yaml(cls, path, overrides=()):
        """Loads ``path`` (following ``_BASE_``), then applies ``KEY=VALUE`` overrides."""
        values = _read_yaml_chain(os.fspath(path), seen=())
        values.update(parse_overrides(overrides))
        return cls(values, source=os.fspath(path))

    def replace(self, **changes):
        """A new Config with some keys changed, validated again."""
        values = dict(self._values)
        values.update(changes)
        return Config(values, source="<replace>")

    def with_overrides(self, overrides):
        """A new Config with ``KEY=VALUE`` strings applied (values parsed as YAML)."""
        return self.replace(**parse_overrides(overrides))

    # -- access -------------------------------------------------------------------------

    def __getattr__(self, name):
        values = object.__getattribute__(self, "_values")
        if name in values:
            return values[name]
        if name == "BATCH_SIZE":
            return values["IMAGES_PER_GPU"] * values["GPU_COUNT"]
        if name == "IMAGE_SHAPE":
            if values["IMAGE_RESIZE_MODE"] in choices.FIXED_SIZE_RESIZE_MODES:
                return [values["IMAGE_MAX_DIM"], values["IMAGE_MAX_DIM"], 3]
            return [None, None, 3]
        if name == "IMAGE_META_SIZE":
            from detection.core.image_meta import IMAGE_META_SIZE

            return IMAGE_META_SIZE
        raise AttributeError(_unknown_message(name, "attribute access"))

    def __setattr__(self, name, value):
        raise AttributeError("Config is immutable; use config.replace(KEY=value)")

    def to_dict(self):
        """All keys with their values (derived values excluded), in declaration order."""
        return {k.name: _copy(self._values[k.name]) for k in _KEYS}

    def dump(self, path):
        """Writes the resolved config as YAML, atomically, with derived values as comments."""
        lines = [f"# Resolved config; derived: BATCH_SIZE={self.BATCH_SIZE}, IMAGE_SHAPE={self.IMAGE_SHAPE}"]
        body = yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None)
        tmp = f"{path}.tmp"
        with open(tmp, "w") as f:
            f.write("\n".join(lines) + "\n" + body)
        os.replace(tmp, path)

    def display(self):
        """A printable table of every key and value."""
        width = max(len(n) for n in KEYS)
        rows = [f"{n:<{width}}  {v!r}" for n, v in self.to_dict().items()]
        rows += [f"{n:<{width}}  {getattr(self, n)!r}" for n in DERIVED]
        return "\n".join(rows)

    def __eq__(self, other):
        return isinstance(other, Config) and self.to_dict() == other.to_dict()

    def __repr__(self):
        return f"Config(NAME={self.NAME!r})"

    # -- validation across keys ---------------------------------------------------------

    def _check_consistency(self, source):
        v = self._values
        problems = []
        if v["IMAGE_MAX_DIM"] % 64 != 0 and v["IMAGE_RESIZE_MODE"] not in choices.FREE_MAX_DIM_RESIZE_MODES:
            problems.append(("IMAGE_MAX_DIM", v["IMAGE_MAX_DIM"], "a multiple of 64 (the stride of P6)"))
        if v["IMAGE_MIN_DIM"] > v["IMAGE_MAX_DIM"]:
            problems.append(("IMAGE_MIN_DIM", v["IMAGE_MIN_DIM"], f"at most IMAGE_MAX_DIM ({v['IMAGE_MAX_DIM']})"))
        if v["RPN_NEGATIVE_IOU"] > v["RPN_POSITIVE_IOU"]:
            problems.append(("RPN_NEGATIVE_IOU", v["RPN_NEGATIVE_IOU"],
                             f"at most RPN_POSITIVE_IOU ({v['RPN_POSITIVE_IOU']})"))
        if v["ROI_NEGATIVE_IOU"] > v["ROI_POSITIVE_IOU"]:
            problems.append(("ROI_NEGATIVE_IOU", v["ROI_NEGATIVE_IOU"],
                             f"at most ROI_POSITIVE_IOU ({v['ROI_POSITIVE_IOU']})"))
        if v["MASK_SHAPE"] != [2 * v["MASK_POOL_SIZE"]] * 2:
            problems.append(("MASK_SHAPE", v["MASK_SHAPE"],
                             f"[{2 * v['MASK_POOL_SIZE']}, {2 * v['MASK_POOL_SIZE']}] (twice MASK_POOL_SIZE)"))
        if v["BACKBONE"] in NO_PRETRAINED_BACKBONES and v["BACKBONE_WEIGHTS"] != "none":
            problems.append(("BACKBONE_WEIGHTS", v["BACKBONE_WEIGHTS"], f"none with BACKBONE {v['BACKBONE']} "
                             "(no ImageNet weights; matterport weights load with --weights FILE.h5)"))
        matterport_heads = choices.MATTERPORT_NAMED_HEADS in (v["RPN_HEAD"], v["BOX_HEAD"], v["MASK_HEAD"])
        if matterport_heads and v["BACKBONE"] in choices.MATTERPORT_NAMED_BACKBONES:
            twin = choices.MATTERPORT_NAMED_BACKBONES[v["BACKBONE"]]
            problems.append(("BACKBONE", v["BACKBONE"], f"{twin} with matterport's heads: its "
                             "ResNet with its layer names (conv1, res2a_branch2a, ...), which its weights need"))
        if v["CATEGORY_IDS"] is not None and len(v["CATEGORY_IDS"]) != v["NUM_CLASSES"] - 1:
            problems.append(("CATEGORY_IDS", v["CATEGORY_IDS"], f"{v['NUM_CLASSES'] - 1} ids (NUM_CLASSES - 1)"))
        if v["CATEGORY_IDS"] is not None and len(set(v["CATEGORY_IDS"])) != len(v["CATEGORY_IDS"]):
            problems.append(("CATEGORY_IDS", v["CATEGORY_IDS"], "distinct ids"))
        if v["CLASS_NAMES"] is not None and len(v["CLASS_NAMES"]) != v["NUM_CLASSES"] - 1:
            problems.append(("CLASS_NAMES", v["CLASS_NAMES"], f"{v['NUM_CLASSES'] - 1} names (NUM_CLASSES - 1)"))
        if not v["ANCHOR_SCALES_ON_EVERY_LEVEL"] and len(v["RPN_ANCHOR_SCALES"]) != len(v["BACKBONE_STRIDES"]):
            problems.append(("RPN_ANCHOR_SCALES", v["RPN_ANCHOR_SCALES"], f"{len(v['BACKBONE_STRIDES'])} scales, one "
                             "per BACKBONE_STRIDES level (or ANCHOR_SCALES_ON_EVERY_LEVEL true)"))
        from detection.core.anchors import ANCHOR_GENERATORS  # NumPy only: reading a config stays TensorFlow-free

        generator = ANCHOR_GENERATORS.get(v["ANCHOR_GENERATOR"])
        if v["RPN_ANCHOR_STRIDE"] != 1 and generator is not None and not generator.anchor_stride:
            problems.append(("RPN_ANCHOR_STRIDE", v["RPN_ANCHOR_STRIDE"], f"1 with ANCHOR_GENERATOR "
                             f"{v['ANCHOR_GENERATOR']} (it puts anchors on every cell)"))
        if v["POST_NMS_ROIS_TRAINING"] > v["PRE_NMS_LIMIT"]:
            problems.append(("POST_NMS_ROIS_TRAINING", v["POST_NMS_ROIS_TRAINING"],
                             f"at most PRE_NMS_LIMIT ({v['PRE_NMS_LIMIT']})"))
        for stage in v["TRAIN_STAGES"]:
            if not (isinstance(stage, dict) and set(stage) == {"layers", "epochs"}
                    and isinstance(stage["layers"], str) and isinstance(stage["epochs"], int)
                    and stage["epochs"] > 0):
                problems.append(("TRAIN_STAGES", stage, "entries {layers: NAME_OR_REGEX, epochs: N > 0}"))
        for aug in v["AUGMENTATION"]:
            if not (isinstance(aug, dict) and isinstance(aug.get("name"), str)):
                problems.append(("AUGMENTATION", aug, "entries {name: AUGMENTATION_NAME, ...arguments}"))
        if problems:
            key, value, expected = problems[0]
            raise ConfigError(f"{source}: invalid value for {key}\n{key}={value!r}: expected {expected}")


def _copy(value):
    if isinstance(value, list):
        return [_copy(x) for x in value]
    if isinstance(value, dict):
        return {k: _copy(x) for k, x in value.items()}
    return value


# Keys that existed once: what to write instead.
REMOVED_KEYS = {
    "IMAGE_PADDING": "the image's place in the padding follows IMAGE_RESIZE_METHOD (top-left for opencv, "
                     "centred for matterport); remove the key",
    **{key: "torchvision's MobileNetV3 model is our Detector with configs/torchvision_fasterrcnn_mobilenet_v3_large_"
            "fpn.yaml (IMAGE_MIN_DIM, IMAGE_MAX_DIM, RPN_SCORE_THRESHOLD); remove the key"
       for key in ("TORCHVISION_MODEL", "TORCHVISION_MIN_SIZE", "TORCHVISION_MAX_SIZE",
                   "TORCHVISION_RPN_SCORE_THRESHOLD")},
}


def _unknown_message(name, source):
    if name in REMOVED_KEYS:
        return f"{source}: config key {name} was removed: {REMOVED_KEYS[name]}"
    closest = _closest(name)
    hint = f"; did you mean {closest}?" if closest else ""
    return f"{source}: unknown config key {name}{hint}"


def _validate(name, value, source):
    if name not in KEYS:
        raise ConfigError(f"in {source}\n" + _unknown_message(name, source))
    key = KEYS[name]
    try:
        return key.check.convert(value)
    except (TypeError, ValueError, AttributeError):
        raise ConfigError(f"{source}: invalid value for {name}\n"
                          f"{name}={value!r}: expected {key.check.describe}") from None


def _read_yaml_chain(path, seen):
    if path in seen:
        raise ConfigError(f"{path}: _BASE_ chain loops back to itself ({' -> '.join(seen + (path,))})")
    try:
        with open(path) as f:
            data = yaml.safe_load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}:{where}: not valid YAML: {getattr(e, 'problem', e)}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of KEY: value, got {type(data).__name__}")
    values = {}
    base = data.pop("_BASE_", None)
    if base is not None:
        base_path = base if os.path.isabs(base) else os.path.join(os.path.dirname(path), base)
        values.update(_read_yaml_chain(base_path, seen + (path,)))
    for name, value in data.items():
        if name not in KEYS:
            raise ConfigError(f"in {path}\n" + _unknown_message(str(name), path))
        if isinstance(value, dict) and isinstance(values.get(name), dict):
            value = {**values[name], **value}  # LOSS_WEIGHTS: a child sets only what it changes
        values[name] = value
    return values


def parse_overrides(overrides):
    """``["KEY=VALUE", ...]`` -> {KEY: value}, each value parsed with yaml.safe_load."""
    values = {}
    for item in overrides or ():
        if "=" not in item:
            raise ConfigError(f"--set {item}: expected KEY=VALUE")
        name, raw = item.split("=", 1)
        name = name.strip()
        if name not in KEYS:
            raise ConfigError(f"in --set {item}\n" + _unknown_message(name, "--set"))
        try:
            values[name] = yaml.safe_load(raw)
        except yaml.YAMLError:
            raise ConfigError(f"--set {item}: the value is not valid YAML") from None
    return values
