"""torchvision state_dict -> the torchvision-named layers of a Detector, by name, with the same
LoadReport as legacy ``.h5`` files.

The torchvision entries of the registries (backbones torchvision_resnet50 and
torchvision_mobilenet_v3_large, FPN torchvision*, heads torchvision*) name each Keras layer after
its torchvision module: ``backbone.body.layer1.0.conv1`` is the layer of the keys
``backbone.body.layer1.0.conv1.weight`` etc. Arrays are converted by the layer's type:

  Conv2D          weight [out, in, kh, kw]  -> kernel [kh, kw, in, out]
  DepthwiseConv2D weight [C, 1, kh, kw]     -> kernel [kh, kw, C, 1] (MobileNetV3, groups = C)
  Conv2DTranspose weight [in, out, kh, kw]  -> kernel [kh, kw, out, in]
  Dense           weight [out, in]          -> kernel [in, out]
  BatchNorm       weight, bias, running_mean, running_var -> gamma, beta, moving_mean, moving_variance

and two rules by name, where torchvision's layout differs from ours:
  - ``*.bbox_pred`` (RPN and box predictor): torchvision's deltas are (dx, dy, dw, dh) per anchor
    or class, ours (dy, dx, dh, dw): the output channels are swapped pairwise in each group of 4
    (exact: a permutation);
  - the first fc after the RoI features (``roi_heads.box_head.fc6``, v2's ``roi_heads.box_head.5``)
    reads them flattened as (C, H, W) in torch, (H, W, C) here: its input rows are reordered
    (256 channels, torchvision's FPN width).

``num_batches_tracked`` (BatchNorm2d's counter, absent from FrozenBatchNorm2d files) is read and
ignored. When the file's class count (``roi_heads.box_predictor.cls_score.bias``) differs from
NUM_CLASSES, the class-specific layers the heads declare (cls_score, bbox_pred,
mask_fcn_logits) are left to their initialisation (fine-tuning) and reported. Any other
difference is a WeightsError of one line naming the file and the key: a key the model lacks
(another architecture's file), a key the file lacks, a shape that differs.
"""

import os
import re
import zipfile

import keras
import numpy as np

from detection.modeling.pth import read_state_dict
from detection.modeling.weights import LoadReport, WeightsError, weighted_layers

_CLASS_COUNT_KEY = "roi_heads.box_predictor.cls_score.bias"
_DELTA_LAYERS = re.compile(r".*\.bbox_pred")
_CHW_INPUT_LAYERS = re.compile(r"roi_heads\.box_head\.(fc6|5)")
_CHW_CHANNELS = 256
_PTH_SUFFIXES = (".pth", ".pt")


def is_pth(path):
    """True for a torch.save file: a ``.pth`` / ``.pt`` name, or a zip archive (torch's format;
    Keras' ``.weights.h5`` and legacy ``.h5`` files are HDF5)."""
    path = str(path)
    if path.endswith(_PTH_SUFFIXES):
        return True
    return os.path.isfile(path) and not path.endswith(".h5") and zipfile.is_zipfile(path)


def _parameters(layer):
    """The torch parameter names of a layer, in the order of its Keras weights."""
    if isinstance(layer, keras.layers.BatchNormalization):
        return ("weight", "bias", "running_mean", "running_var")
    return ("weight", "bias") if getattr(layer, "use_bias", False) else ("weight",)


def torch_layers(model):
    """{torch module name: Keras layer} of the model's torchvision-named layers (names with a dot)."""
    return {layer.name: layer for layer in weighted_layers(model) if "." in layer.name}


def expected_keys(model):
    """{state_dict key: (layer, parameter)} the model's torchvision-named layers need, in model order."""
    return {f"{name}.{p}": (layer, p) for name, layer in torch_layers(model).items() for p in _parameters(layer)}


def keras_arrays(layer, arrays):
    """torch arrays of one module ({parameter: array}) -> the layer's weights, in order."""
    if isinstance(layer, keras.layers.BatchNormalization):
        return [arrays[p] for p in _parameters(layer)]
    weight = arrays["weight"]
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        kernel = weight.transpose(2, 3, 0, 1)
    elif isinstance(layer, (keras.layers.Conv2D, keras.layers.Conv2DTranspose)):
        kernel = weight.transpose(2, 3, 1, 0)
    elif _CHW_INPUT_LAYERS.fullmatch(layer.name):
        side = int(round((weight.shape[1] / _CHW_CHANNELS) ** 0.5))
        kernel = (weight.reshape(weight.shape[0], _CHW_CHANNELS, side, side)
                  .transpose(2, 3, 1, 0).reshape(-1, weight.shape[0]))
    else:
        kernel = weight.T
    values = [kernel] + ([arrays["bias"]] if "bias" in arrays else [])
    if _DELTA_LAYERS.fullmatch(layer.name):
        values = [_swap_xy(v) for v in values]
    return values


def _swap_xy(array):
    """[..., 4 G] (dx, dy, dw, dh) per group -> (dy, dx, dh, dw): channels swapped pairwise."""
    order = np.arange(array.shape[-1]).reshape(-1, 4)[:, [1, 0, 3, 2]].reshape(-1)
    return array[..., order]


def load_state_dict(model, state_dict, path, num_classes=None):
    """Assigns ``state_dict`` ({key: numpy array}) to ``model``'s torchvision-named layers;
    returns a LoadReport. num_classes: the model's NUM_CLASSES (None: no class-count check)."""
    from detection.modeling.heads import class_specific_layers

    name = os.fspath(path)
    arrays = {k: v for k, v in state_dict.items() if not k.endswith(".num_batches_tracked")}
    wanted = expected_keys(model)
    extra = [k for k in arrays if k not in wanted]
    if extra:
        raise WeightsError(f"{name}: key {extra[0]} is not in the model ({len(extra)} such keys): a file of another "
                           "architecture? the config's BACKBONE, FPN, heads and USE_MASK must be the file's "
                           "(configs/torchvision_*.yaml, docs/pretrained.md)")
    missing = [k for k in wanted if k not in arrays]
    if missing:
        raise WeightsError(f"{name}: key {missing[0]} is missing from the file ({len(missing)} missing keys): "
                           "a file of another architecture? (configs/torchvision_*.yaml)")
    report = LoadReport(name, len(arrays), model_classes=num_classes)
    if _CLASS_COUNT_KEY in arrays:
        report.file_classes = int(arrays[_CLASS_COUNT_KEY].shape[0])
    skip_class_specific = (num_classes is not None and report.file_classes is not None
                           and report.file_classes != num_classes)
    class_specific = set(class_specific_layers())
    for module, layer in torch_layers(model).items():
        if skip_class_specific and module in class_specific:
            report.class_specific.append(module)
            continue
        by_parameter = {p: np.asarray(arrays[f"{module}.{p}"], np.float32) for p in _parameters(layer)}
        try:
            values = keras_arrays(layer, by_parameter)
        except ValueError:  # fc6 of another pool size or width
            values = []
        if len(values) != len(layer.weights) or any(tuple(v.shape) != a.shape for v, a in zip(layer.weights, values)):
            shapes = ", ".join(f"{p} {list(a.shape)}" for p, a in by_parameter.items())
            raise WeightsError(f"{name}: key {module}.weight does not fit the model's layer {module} ({shapes} in "
                               f"the file; model {[list(v.shape) for v in layer.weights]}): another architecture, "
                               "or another NUM_CLASSES / POOL_SIZE?")
        for variable, value in zip(layer.weights, values):
            variable.assign(value.astype(variable.dtype))
        report.loaded_arrays += len(values)
        report.loaded_layers.append(module)
    return report


def load_state_dict_file(model, path, num_classes=None):
    """Reads a .pth (state_dict or checkpoint; detection/modeling/pth.py) into ``model``."""
    return load_state_dict(model, read_state_dict(path), path, num_classes)
