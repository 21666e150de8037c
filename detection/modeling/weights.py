"""Loading weight files into a model: ours by structure, legacy Keras 2 ``.h5`` files by layer name.

Two formats reach ``--weights``:

  ``.weights.h5``  written by Detector.save_weights (Keras 3): loaded by structure, all or
                   nothing, as Keras does.
  legacy ``.h5``   written by Keras 2's ``save_weights`` (matterport's ``mask_rcnn_coco.h5``
                   and every model trained with its code): loaded by LAYER NAME, array by
                   array, as matterport's ``load_weights(path, by_name=True, exclude=...)``.

Legacy layout (Keras 2): the root attribute ``layer_names`` lists every layer; each has a
group whose attribute ``weight_names`` lists its arrays (``conv1/kernel:0``, ...), each a
dataset of the group. A nested model (matterport's ``rpn_model``, or the whole model under a
multi-GPU wrapper) is one group holding the arrays of its inner layers; a file written by
``model.save`` keeps all this under ``model_weights``. Arrays are attributed to the layer
named in their weight name (the path component before the variable name), so nesting does
not matter, and matched to a model layer's variables by variable name (kernel, bias, gamma,
beta, moving_mean, moving_variance).

What is loaded is reported (``LoadReport.summary``): N of the file's M arrays, the layers
excluded (``exclude``: names or regular expressions, full match), the class-specific layers
left to their initialisation because the file was trained with another NUM_CLASSES (the
fine-tuning case: ``mrcnn_class_logits``, ``mrcnn_bbox_fc``, ``mrcnn_mask`` and our
``rcnn_class_logits``, ``rcnn_bbox_fc``, ``mask_logits``), other shape mismatches, model layers
the file does not have, file layers the model does not have. A file of which nothing loads
is a WeightsError (one line) naming the file and a few layer names of each side.

Example::

    report = load_weights_by_name(detector.inference_model, "mask_rcnn_coco.h5", num_classes=5)
    print(report.summary())
    # loaded 684 of 690 arrays from mask_rcnn_coco.h5 (230 layers); left initialised, trained
    # for 81 classes, not 5: mrcnn_class_logits, mrcnn_bbox_fc, mrcnn_mask
"""

import collections
import dataclasses
import os
import re

import h5py
import numpy as np

# Layers whose shapes depend on NUM_CLASSES (matterport's names and ours).
CLASS_SPECIFIC_LAYERS = ("mrcnn_class_logits", "mrcnn_bbox_fc", "mrcnn_mask",
                         "rcnn_class_logits", "rcnn_bbox_fc", "mask_logits")
# The layer whose output size is NUM_CLASSES, read to learn the file's class count.
_CLASS_COUNT_LAYERS = ("mrcnn_class_logits", "rcnn_class_logits")


class WeightsError(ValueError):
    """A weights file cannot be read or nothing in it fits the model (one line)."""


def is_legacy_h5(path):
    """True for a Keras 2 HDF5 weights (or whole-model) file, False for a Keras 3 ``.weights.h5``.

    Raises WeightsError when the file is missing or not HDF5."""
    try:
        with h5py.File(path, "r") as f:
            return "layer_names" in f.attrs or ("model_weights" in f and "layer_names" in f["model_weights"].attrs)
    except FileNotFoundError:
        raise WeightsError(f"{path}: weights file not found") from None
    except OSError as e:
        raise WeightsError(f"{path}: not an HDF5 weights file ({e})") from None


def read_legacy_h5(path):
    """{layer name: {variable name: array}} of a legacy file, in file order.

    The layer of an array is the path component before its variable name in the weight
    name ('rpn_conv_shared/kernel:0' -> layer 'rpn_conv_shared', variable 'kernel'), or the
    group's name for a bare variable name."""
    layers = collections.OrderedDict()
    with h5py.File(path, "r") as f:
        root = f if "layer_names" in f.attrs else f["model_weights"]
        for group_name in _strings(root.attrs["layer_names"]):
            group = root[group_name]
            for weight_name in _strings(group.attrs.get("weight_names", [])):
                parts = weight_name.split("/")
                variable = parts[-1].split(":")[0]
                owner = parts[-2] if len(parts) > 1 else group_name
                layers.setdefault(owner, collections.OrderedDict())[variable] = np.asarray(group[weight_name])
    return layers


def _strings(values):
    return [v.decode("utf8") if isinstance(v, bytes) else str(v) for v in values]


@dataclasses.dataclass
class LoadReport:
    """What load_weights_by_name did. Lists hold layer names in model (or file) order."""

    path: str
    file_arrays: int
    loaded_arrays: int = 0
    loaded_layers: list = dataclasses.field(default_factory=list)
    excluded: list = dataclasses.field(default_factory=list)
    class_specific: list = dataclasses.field(default_factory=list)
    file_classes: int = None
    model_classes: int = None
    mismatched: list = dataclasses.field(default_factory=list)  # (layer, variable, model shape, file shape)
    not_in_file: list = dataclasses.field(default_factory=list)
    not_in_model: list = dataclasses.field(default_factory=list)

    def summary(self):
        name = os.path.basename(self.path)
        lines = [f"loaded {self.loaded_arrays} of {self.file_arrays} arrays from {name} "
                 f"({len(self.loaded_layers)} layers)"]
        if self.class_specific:
            lines.append(f"left initialised, trained for {self.file_classes} classes, not {self.model_classes}: "
                         + ", ".join(self.class_specific))
        if self.excluded:
            lines.append("excluded: " + ", ".join(self.excluded))
        if self.mismatched:
            lines.append("shape mismatch, not loaded: " + "; ".join(
                f"{layer}/{var} model {list(ours)} file {list(theirs) if theirs is not None else 'missing'}"
                for layer, var, ours, theirs in self.mismatched))
        if self.not_in_file:
            lines.append(f"model layers not in the file (left initialised): {_some(self.not_in_file)}")
        if self.not_in_model:
            lines.append(f"file layers not in the model (ignored): {_some(self.not_in_model)}")
        return "\n".join(lines)


def _some(names, limit=12):
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def _excluded(name, patterns):
    return any(name == p or re.fullmatch(p, name) for p in patterns)


def weighted_layers(model):
    """Layers with weights, depth first, descending into nested models."""
    found = []
    for layer in model.layers:
        if hasattr(layer, "layers") and layer.layers:
            found.extend(weighted_layers(layer))
        elif layer.weights:
            found.append(layer)
    return found


def load_weights_by_name(model, path, exclude=(), num_classes=None):
    """Loads a legacy Keras 2 ``.h5`` into ``model``'s layers of the same names; returns a LoadReport.

    exclude: layer names or regular expressions (full match) not to load.
    num_classes: the model's NUM_CLASSES; when the file's differs, the class-specific layers
        are left to their initialisation (and reported) instead of failing on their shapes.
    Raises WeightsError when no array of the file fits the model.
    """
    path = os.fspath(path)
    try:
        file_layers = read_legacy_h5(path)
    except (OSError, KeyError) as e:
        raise WeightsError(f"{path}: cannot read as a Keras 2 weights file ({e})") from None
    report = LoadReport(path, sum(len(v) for v in file_layers.values()), model_classes=num_classes)
    report.file_classes = next((int(file_layers[n]["bias"].shape[0]) for n in _CLASS_COUNT_LAYERS
                                if n in file_layers and "bias" in file_layers[n]), None)
    skip_class_specific = (num_classes is not None and report.file_classes is not None
                           and report.file_classes != num_classes)
    model_names = set()
    for layer in weighted_layers(model):
        model_names.add(layer.name)
        arrays = file_layers.get(layer.name)
        if arrays is None:
            report.not_in_file.append(layer.name)
            continue
        if _excluded(layer.name, exclude):
            report.excluded.append(layer.name)
            continue
        if skip_class_specific and layer.name in CLASS_SPECIFIC_LAYERS:
            report.class_specific.append(layer.name)
            continue
        report.loaded_arrays += _assign(layer, arrays, report)
    report.not_in_model = [name for name in file_layers if name not in model_names]
    if report.loaded_arrays == 0:
        raise WeightsError(
            f"{path}: no array of the file fits the model (file layers: {_some(list(file_layers), 5)}; "
            f"model layers: {_some([layer.name for layer in weighted_layers(model)], 5)}); "
            "check BACKBONE and the heads (configs/matterport.yaml for matterport's files)")
    return report


def _assign(layer, arrays, report):
    """Assigns the file's arrays to ``layer``'s variables of the same names, all or none."""
    values = []
    for variable in layer.weights:
        name = variable.name.split("/")[-1].split(":")[0]
        array = arrays.get(name)
        if array is None:
            report.mismatched.append((layer.name, name, tuple(variable.shape), None))
            return 0
        if tuple(array.shape) != tuple(variable.shape):
            report.mismatched.append((layer.name, name, tuple(variable.shape), tuple(array.shape)))
            return 0
        values.append(array)
    for variable, value in zip(layer.weights, values):
        variable.assign(value.astype(variable.dtype))
    report.loaded_layers.append(layer.name)
    return len(values)


def add_weights_flags(parser, required=True):
    """--weights and --exclude, the same on every tool."""
    parser.add_argument("--weights", required=required, metavar="FILE",
                        help="weights: a .weights.h5 written by tools/train.py, or a legacy Keras 2 .h5 "
                             "(matterport's mask_rcnn_coco.h5 or any model trained with its code), loaded by "
                             "layer name (use a config based on configs/matterport.yaml), or a torchvision .pth "
                             "(state_dict or checkpoint; configs/torchvision_*.yaml, docs/pretrained.md)")
    parser.add_argument("--exclude", nargs="+", default=[], metavar="NAME_OR_REGEX",
                        help="legacy .h5 only: layers not to load, by name or regular expression (matterport's "
                             "exclude=); class-specific layers are left out by themselves when NUM_CLASSES differs")
    return parser
