"""Which layers train: matterport's names (heads, 3+, 4+, 5+, all) or a regular expression.

The detector names its layers: backbone stages like keras.applications ResNet (conv1_*,
conv2_block*, ..., conv5_block*) or matterport's (conv1, res2a_branch2a, bn2a_branch2a, ...),
FPN fpn_*, RPN rpn_*, second stage rcnn_* and mask_* (matterport's heads: mrcnn_*). Each
backbone and head declares its own in its registry entry (Backbone.stage_layers,
HeadFamily.layers), and the selections below are built from them.
A name or regex is matched with re.fullmatch against each layer that has weights, inside
nested models too (a backbone built as its own keras.Model).

BatchNormalization layers frozen by the model stay frozen whatever the selection: those
marked `frozen_by_config = True` (detection.modeling.normalization.freeze_batch_norm, under
TRAIN_BN false) and those whose `trainable` was False when set_trainable first saw them (it
tags them then, so call it first on a freshly built model; the trainer does).

Changing trainability takes effect only after model.compile (Keras rebuilds the train
function). Keras 3 optimizers refuse variables they were not built with, so a staged run
builds its optimizer once over the union of every stage's variables (stage_variables) and
recompiles with that same optimizer: momentum of layers trained in both stages carries over.

Example::

    set_trainable(model, "heads")   # -> ["fpn_c5p5", ..., "rpn_conv_shared", ..., "mask_conv1", ...]
    plan_stages(config)             # TRAIN_STAGES [{layers: heads, epochs: 2}, {layers: all, epochs: 3}]
                                    # -> [Stage("heads", 0, 2), Stage("all", 2, 5)]
"""
import dataclasses
import re

import keras

from detection.modeling import fpn, heads
from detection.modeling.backbones import backbones
from detection.modeling.weights import weighted_layers


def _alternatives(patterns):
    return "|".join(f"({p})" for p in dict.fromkeys(patterns))


def _heads():
    """The FPN's and every registered head's layer-name patterns (heads.HeadFamily.layers)."""
    return _alternatives(fpn.layer_patterns() + heads.head_layer_patterns())


def _stages(*stages):
    """The layers of backbone ``stages`` (every registered Backbone's stage_layers), then the heads."""
    return _alternatives([p for k in stages for b in backbones().values() for p in b.stage_patterns(k)]) + "|" + HEADS


# Derived from what is registered: a new backbone or head declares its layer names in its
# registry entry and these follow.
HEADS = _heads()
LAYER_REGEX = {
    "heads": HEADS,
    "3+": _stages(3, 4, 5),
    "4+": _stages(4, 5),
    "5+": _stages(5),
    "all": r".*",
}

# Set on each BatchNormalization layer the first time set_trainable sees it.
_FROZEN_AT_BUILD = "_detection_frozen_at_build"


def layer_regex(layers):
    """A selection name or a regex -> the compiled regex; a bad regex is a ValueError."""
    pattern = LAYER_REGEX.get(layers, layers)
    try:
        return re.compile(pattern)
    except re.error as e:
        raise ValueError(
            f"TRAIN_LAYERS {layers!r} is neither one of {', '.join(LAYER_REGEX)} "
            f"nor a valid regular expression: {e}") from None


def set_trainable(model, layers):
    """Makes the layers selected by `layers` (name or regex) trainable and every other frozen.

    Returns the names of the layers that now have trainable weights, in model order.
    Raises ValueError for an invalid regex or one that matches no layer with weights.
    """
    regex = layer_regex(layers)
    leaves = weighted_layers(model)
    for layer in leaves:
        if isinstance(layer, keras.layers.BatchNormalization) and not hasattr(layer, _FROZEN_AT_BUILD):
            setattr(layer, _FROZEN_AT_BUILD, not layer.trainable)
    selected = [layer for layer in leaves if regex.fullmatch(layer.name)]
    if not selected:
        names = ", ".join(layer.name for layer in leaves[:8])
        raise ValueError(f"TRAIN_LAYERS {layers!r} matches no layer with weights; layers are: {names}, ...")
    model.trainable = True  # containers must be trainable for their layers' variables to count
    chosen = {id(layer) for layer in selected}
    for layer in leaves:
        frozen = getattr(layer, _FROZEN_AT_BUILD, False) or getattr(layer, "frozen_by_config", False)
        layer.trainable = id(layer) in chosen and not frozen
    return [layer.name for layer in leaves if layer.trainable_weights]


@dataclasses.dataclass(frozen=True)
class Stage:
    """Train `layers` from epoch `start` (inclusive) to `end` (exclusive), 0-based."""

    layers: str
    start: int
    end: int


def plan_stages(config):
    """TRAIN_STAGES (or TRAIN_LAYERS for EPOCHS) -> consecutive Stages covering the run."""
    if not config.TRAIN_STAGES:
        return [Stage(config.TRAIN_LAYERS, 0, config.EPOCHS)]
    plan, start = [], 0
    for stage in config.TRAIN_STAGES:
        plan.append(Stage(stage["layers"], start, start + stage["epochs"]))
        start += stage["epochs"]
    return plan


def stage_variables(model, plan):
    """The variables any stage trains, in model order: what to build the optimizer over.

    Leaves the model with the last stage's selection; callers set the stage they start in.
    """
    ids = set()
    for stage in plan:
        set_trainable(model, stage.layers)
        ids.update(id(v) for v in model.trainable_variables)
    return [v for v in model.weights if id(v) in ids]
