"""The names of every choice a config key offers, written once.

config.py validates against these tuples and each registry (the module that implements the
choice, named beside each tuple) is keyed by them; tests/test_choices.py checks that every
name here has an implementation and every implementation a name here. This module imports
nothing, so reading a config never imports TensorFlow.

Adding a choice: its name here, its entry in the registry, and the tests of that registry.
"""

# BACKBONE: detection/modeling/backbones.py backbones()
BACKBONES = ("resnet50", "resnet101", "mobilenetv2", "resnet_tiny", "matterport_resnet50", "matterport_resnet101",
             "torchvision_resnet50", "torchvision_mobilenet_v3_large")
# The backbones without ImageNet weights (Backbone.imagenet false).
NO_PRETRAINED_BACKBONES = ("resnet_tiny", "matterport_resnet50", "matterport_resnet101", "torchvision_resnet50",
                           "torchvision_mobilenet_v3_large")
# FPN: detection/modeling/fpn.py FPNS
FPNS = ("standard", "torchvision", "torchvision_v2", "torchvision_mobilenet")

# RPN_HEAD, BOX_HEAD, MASK_HEAD: detection/modeling/heads.py RPN_HEADS, BOX_HEADS, MASK_HEADS
RPN_HEADS = ("standard", "matterport", "torchvision", "torchvision_v2")
BOX_HEADS = ("fc", "matterport", "torchvision", "torchvision_v2")
MASK_HEADS = ("fcn", "matterport", "torchvision", "torchvision_v2")
# The head choices with matterport's layer names, and the backbone with its names for each
# backbone of the same architecture under keras.applications' names: weight files trained
# with matterport's code need both (config validation says so).
MATTERPORT_NAMED_HEADS = "matterport"
MATTERPORT_NAMED_BACKBONES = {"resnet50": "matterport_resnet50", "resnet101": "matterport_resnet101"}

# ANCHOR_GENERATOR: detection/core/anchors.py ANCHOR_GENERATORS
ANCHOR_GENERATORS = ("standard", "torchvision")
# PROPOSAL_SELECTION: detection/layers/proposals.py PROPOSAL_SELECTIONS
PROPOSAL_SELECTIONS = ("standard", "torchvision")
# ROI_ALIGN_MODE: detection/layers/roi_align.py ROI_ALIGN_MODES
ROI_ALIGN_MODES = ("crop_and_resize", "gather", "matterport", "torchvision")
# BOX_FRAME: detection/core/frames.py BOX_FRAMES
BOX_FRAMES = ("pixels", "normalized", "torchvision")
# DETECTION_CLASSES_PER_ROI: detection/layers/detections.py CLASS_SELECTIONS
CLASSES_PER_ROI = ("all", "top")
# MASK_PASTE: detection/engine/predictor.py MASK_PASTERS
MASK_PASTES = ("bilinear", "matterport", "torchvision")
# IMAGE_RESIZE_METHOD: detection/data/resize.py RESIZE_METHODS
RESIZE_METHODS = ("opencv", "matterport", "torchvision")
# The methods whose padding is zero after normalisation (torchvision pads the normalised image):
# the Detector zeroes its normalised input outside the window for these.
NORMALIZED_PADDING_RESIZE_METHODS = ("torchvision",)
# IMAGE_RESIZE_MODE: detection/data/resize.py (padded_shape)
RESIZE_MODES = ("square", "pad64", "none", "pad32")
# The modes whose padded size does not come from IMAGE_MAX_DIM, which may then be any size
# (torchvision's 1333); the others need a multiple of 64.
FREE_MAX_DIM_RESIZE_MODES = ("pad32",)
# The modes whose model input has one fixed size, IMAGE_MAX_DIM x IMAGE_MAX_DIM (config.IMAGE_SHAPE;
# the others pad each image to its own size).
FIXED_SIZE_RESIZE_MODES = ("square",)

# DATASET_FORMAT: detection/data/datasets.py DATASET_FORMATS (and python:MODULE:CLASS, your own class)
DATASET_FORMATS = ("shapes", "coco", "voc", "via", "labelme")


def lookup(registry, name, key):
    """registry[name], or a ValueError naming the config ``key``, the value and the choices."""
    try:
        return registry[name]
    except KeyError:
        raise ValueError(f"unknown {key} {name!r}; expected one of {', '.join(registry)}") from None
