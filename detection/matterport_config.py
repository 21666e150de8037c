"""A matterport Config, as its ``config.display()`` printed it, turned into our YAML config.

matterport prints every attribute of its config when training starts (``"{:30} {}"`` per
line, after "Configurations:"); that text is what most users still have of a model trained
years ago. ``convert_display`` reads it and writes a config based on configs/matterport.yaml
holding the values that differ from it, so that the model's .h5 loads and runs as matterport
ran it::

    text = open("training_log.txt").read()
    yaml_text, notes = convert_display(text, base="configs/matterport.yaml")

Rules (``notes`` says each one it applied):
  * a key of the same name and meaning is copied (NUM_CLASSES, IMAGE_MIN_DIM, RPN_ANCHOR_SCALES, ...);
  * BACKBONE resnet50 / resnet101 becomes matterport_resnet50 / _resnet101 (its layer names);
  * LOSS_WEIGHTS' mrcnn_class_loss, mrcnn_bbox_loss, mrcnn_mask_loss become rcnn_class_loss,
    rcnn_bbox_loss, mask_loss; TRAIN_BN None (train them) becomes true;
  * derived or fixed values are skipped (BATCH_SIZE, IMAGE_SHAPE, IMAGE_META_SIZE,
    IMAGE_CHANNEL_COUNT 3, USE_RPN_ROIS true, USE_MINI_MASK), other names are left out and
    listed (attributes a user's subclass added).
Values print as Python (tuples, dicts, None) or NumPy arrays ("[123.7 116.8 103.9]"); both parse.
"""

import ast
import os
import re

import yaml

from detection.config import KEYS, Config

RENAMED_LOSSES = {"mrcnn_class_loss": "rcnn_class_loss", "mrcnn_bbox_loss": "rcnn_bbox_loss",
                  "mrcnn_mask_loss": "mask_loss"}
# matterport attributes with no key here, and why.
SKIPPED = {
    "BATCH_SIZE": "derived (IMAGES_PER_GPU x GPU_COUNT)",
    "IMAGE_SHAPE": "derived from IMAGE_RESIZE_MODE and IMAGE_MAX_DIM",
    "IMAGE_META_SIZE": "our image_meta has its own layout",
    "IMAGE_CHANNEL_COUNT": "images are always made 3-channel RGB",
    "USE_MINI_MASK": "mini masks are always used",
    "USE_RPN_ROIS": "proposals always come from the RPN",
    "COMPUTE_BACKBONE_SHAPE": "backbone shapes are computed from the input",
}
_LINE = re.compile(r"^([A-Z][A-Z0-9_]*)\s+(.*?)\s*$")
_NUMPY_ARRAY = re.compile(r"^\[\s*[-+0-9.eE\s]+\]$")


def parse_display(text):
    """{NAME: value} of the lines ``NAME   value`` of a display() dump (after "Configurations:"
    when present)."""
    if "Configurations:" in text:
        text = text.split("Configurations:", 1)[1]
    values = {}
    for line in text.splitlines():
        match = _LINE.match(line.strip())
        if match:
            values[match.group(1)] = _parse_value(match.group(2))
    return values


def _parse_value(raw):
    if _NUMPY_ARRAY.match(raw):  # NumPy's str(): "[123.7 116.8 103.9]", "[1024 1024    3]"
        return [ast.literal_eval(v) for v in raw.strip("[]").split()]
    try:
        return ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return raw  # a bare string: resnet101, square, shapes


def _as_yaml_value(value):
    if isinstance(value, tuple):
        return [_as_yaml_value(v) for v in value]
    if isinstance(value, list):
        return [_as_yaml_value(v) for v in value]
    if isinstance(value, dict):
        return {k: _as_yaml_value(v) for k, v in value.items()}
    return value


def convert_values(values):
    """matterport's {NAME: value} -> ({our KEY: value}, notes [str])."""
    ours, notes = {}, []
    for name, value in values.items():
        if name in SKIPPED:
            continue
        if name == "BACKBONE":
            if value not in ("resnet50", "resnet101"):
                notes.append(f"BACKBONE {value!r}: only matterport's resnet50 and resnet101 are supported; left out")
                continue
            ours[name] = f"matterport_{value}"
            notes.append(f"BACKBONE {value} -> matterport_{value} (its layer names)")
        elif name == "LOSS_WEIGHTS" and isinstance(value, dict):
            ours[name] = {RENAMED_LOSSES.get(k, k): float(v) for k, v in value.items()}
        elif name == "TRAIN_BN":
            ours[name] = value is not False  # None: BatchNorm trains
            if value is None:
                notes.append("TRAIN_BN None (train BatchNorm) -> true")
        elif name == "GPU_COUNT":
            ours[name] = int(value)
        elif name in KEYS:
            ours[name] = _as_yaml_value(value)
        else:
            notes.append(f"{name}: not a config key here; left out")
    return ours, notes


def convert_display(text, base, output_dir="."):
    """A display() dump -> (YAML text based on ``base``, notes). Only values that differ from
    ``base``'s are written; ``_BASE_`` is ``base`` relative to ``output_dir`` (where the YAML
    will be). Raises ConfigError naming the key when a value is not valid here."""
    values, notes = convert_values(parse_display(text))
    if not values:
        raise ValueError("no 'NAME  value' lines of matterport's config.display() found")
    base_config = Config.from_yaml(base)
    changed = {k: v for k, v in values.items() if _normalised(k, v) != base_config.to_dict()[k]}
    base_config.replace(**changed)  # validates the whole, cross-key checks included
    document = {"_BASE_": os.path.relpath(os.path.abspath(base), os.path.abspath(output_dir)), **changed}
    text = ("# Converted from matterport's config.display() by tools/matterport_config.py\n"
            + yaml.safe_dump(document, sort_keys=False, default_flow_style=None))
    return text, notes


def _normalised(name, value):
    try:
        return KEYS[name].check.convert(value)
    except (TypeError, ValueError):
        return value  # invalid: kept as changed, so that validation names it
