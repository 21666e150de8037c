"""torchvision state_dict -> the layers of TorchvisionRCNN (the MobileNetV3 model, TORCHVISION_MODEL),
by name (as torchvision's strict ``load_state_dict``), with the same LoadReport as legacy ``.h5``
files. (The ResNet-50 models are our Detector's: detection/modeling/torchvision_weights.py.)

Each torchvision module ``backbone.body.layer1.0.conv1`` has its Keras layer (recorded when
the model is built, detection/modeling/torchvision_rcnn.py); arrays are converted as:

  Conv2d weight [out, in, kh, kw]            -> kernel [kh, kw, in, out]
  ConvTranspose2d weight [in, out, kh, kw]   -> kernel [kh, kw, out, in]
  depthwise Conv2d weight [C, 1, kh, kw]     -> kernel [kh, kw, C, 1] (MobileNetV3, groups = C)
  Linear weight [out, in]                    -> kernel [in, out]; fc6's input is the RoI
                                                feature flattened as (C, H, W) in torch, (H, W, C) here
  BatchNorm weight, bias, running_mean, running_var -> gamma, beta, moving_mean, moving_variance

``num_batches_tracked`` (BatchNorm2d's counter, absent from FrozenBatchNorm2d files) is read
and ignored. The class-specific modules (cls_score, bbox_pred, mask_fcn_logits) are left to
their initialisation when the file was trained for another class count (fine-tuning); every
other difference is a WeightsError of one line naming the file and the key: a key the model
lacks (another architecture's file), a key the file lacks, a shape that differs.
"""

import os

import numpy as np

from detection.modeling.pth import read_state_dict
from detection.modeling.weights import LoadReport, WeightsError

CLASS_SPECIFIC_MODULES = ("roi_heads.box_predictor.cls_score", "roi_heads.box_predictor.bbox_pred",
                          "roi_heads.mask_predictor.mask_fcn_logits")
_CLASS_COUNT_KEY = "roi_heads.box_predictor.cls_score.bias"
_PARAMETERS = {
    "conv": ("weight", "bias"), "conv_transpose": ("weight", "bias"), "depthwise": ("weight", "bias"),
    "linear": ("weight", "bias"),
    "linear_chw": ("weight", "bias"), "bn": ("weight", "bias", "running_mean", "running_var"),
}


def keras_arrays(kind, arrays, layer):
    """torch arrays of one module (dict by parameter name) -> the layer's weights, in order."""
    if kind == "bn":
        return [arrays["weight"], arrays["bias"], arrays["running_mean"], arrays["running_var"]]
    weight = arrays["weight"]
    if kind == "conv":
        kernel = weight.transpose(2, 3, 1, 0)
    elif kind == "conv_transpose":
        kernel = weight.transpose(2, 3, 1, 0)
    elif kind == "depthwise":
        kernel = weight.transpose(2, 3, 0, 1)
    elif kind == "linear_chw":
        side_h, side_w, channels = _chw_shape(weight)
        kernel = (weight.reshape(weight.shape[0], channels, side_h, side_w)
                  .transpose(2, 3, 1, 0).reshape(-1, weight.shape[0]))
    else:
        kernel = weight.T
    return [kernel] + ([arrays["bias"]] if "bias" in arrays and len(layer.weights) > 1 else [])


def _chw_shape(weight):
    """(h, w, c) of the flattened input of fc6: a square pool of 256 channels."""
    side = int(round((weight.shape[1] / 256) ** 0.5))
    return side, side, 256


def expected_keys(model):
    """{state_dict key: (torch module, parameter)} the model needs."""
    keys = {}
    for module, (layer, kind) in model.modules.items():
        parameters = _PARAMETERS[kind]
        if kind in ("conv", "conv_transpose", "depthwise") and not layer.use_bias:
            parameters = ("weight",)
        for p in parameters:
            keys[f"{module}.{p}"] = (module, p)
    return keys


def load_state_dict(model, state_dict, path):
    """Assigns ``state_dict`` ({key: numpy array}) to ``model`` (a TorchvisionRCNN); returns a LoadReport."""
    name = os.fspath(path)
    arrays = {k: v for k, v in state_dict.items() if not k.endswith(".num_batches_tracked")}
    wanted = expected_keys(model)
    extra = [k for k in arrays if k not in wanted]
    if extra:
        raise WeightsError(f"{name}: key {extra[0]} is not in the model {model.config.TORCHVISION_MODEL} "
                           f"({len(extra)} such keys: a file of another architecture? check TORCHVISION_MODEL)")
    missing = [k for k in wanted if k not in arrays]
    if missing:
        raise WeightsError(f"{name}: key {missing[0]} of {model.config.TORCHVISION_MODEL} is missing from the file "
                           f"({len(missing)} missing keys)")
    report = LoadReport(name, len(arrays), model_classes=model.config.NUM_CLASSES)
    if _CLASS_COUNT_KEY in arrays:
        report.file_classes = int(arrays[_CLASS_COUNT_KEY].shape[0])
    skip_class_specific = report.file_classes is not None and report.file_classes != report.model_classes
    by_module = {}
    for key, (module, parameter) in wanted.items():
        by_module.setdefault(module, {})[parameter] = np.asarray(arrays[key], np.float32)
    for module, (layer, kind) in model.modules.items():
        if skip_class_specific and module in CLASS_SPECIFIC_MODULES:
            report.class_specific.append(module)
            continue
        try:
            values = keras_arrays(kind, by_module[module], layer)
        except ValueError:  # fc6 of another pool size or width
            values = []
        shapes_fit = len(values) == len(layer.weights) and all(
            tuple(variable.shape) == value.shape for variable, value in zip(layer.weights, values))
        if not shapes_fit:
            shapes = ", ".join(f"{p} {list(a.shape)}" for p, a in by_module[module].items())
            raise WeightsError(f"{name}: key {module}.weight does not fit the model's {layer.name} "
                               f"({shapes} in the file; model {[list(v.shape) for v in layer.weights]}): another "
                               "architecture, or another NUM_CLASSES / POOL_SIZE?")
        for variable, value in zip(layer.weights, values):
            variable.assign(value)
        report.loaded_arrays += len(by_module[module])
        report.loaded_layers.append(module)
    return report


def load_state_dict_file(model, path):
    """Reads a .pth (state_dict or checkpoint; detection/modeling/pth.py) into ``model``."""
    return load_state_dict(model, read_state_dict(path), path)
