"""matterport-layout weight files for tests, from ../shared/matterport/coco_resnet101_manifest.json.

``manifest_layers`` gives matterport's layers with weights, in model order, for a backbone and
class count (the manifest is ResNet-101 with 81 classes: ResNet-50 drops res4g..res4w, and
only the three class-specific layers change with NUM_CLASSES). ``random_arrays`` fills them
with seeded NumPy values scaled so that activations stay near unit size through the network
and the heads give confident, varied outputs: a model whose detections are worth comparing,
the same bytes on every machine.
"""
import json

import numpy as np

from tests.conftest import REPO

MANIFEST = REPO.parent / "shared" / "matterport" / "coco_resnet101_manifest.json"
CLASS_SPECIFIC = {"mrcnn_class_logits": 1, "mrcnn_bbox_fc": 4, "mrcnn_mask": 1}  # outputs per class
# Stage-4 blocks ResNet-50 keeps: a..f.
_RESNET50_STAGE4 = set("abcdef")


def manifest_layers(backbone="resnet101", num_classes=81):
    """[(group name, [(weight name, shape), ...])] of matterport's model, in order."""
    layers = []
    for entry in json.loads(MANIFEST.read_text())["layers"]:
        name = entry["layer"]
        if backbone == "resnet50" and name.startswith(("res4", "bn4")) and _stage4_block(name) not in _RESNET50_STAGE4:
            continue
        weights = [(w, list(shape)) for w, shape in entry["weights"]]
        if name in CLASS_SPECIFIC:
            per_class = CLASS_SPECIFIC[name]
            weights = [(w, shape[:-1] + [num_classes * per_class]) for w, shape in weights]
        layers.append((name, weights))
    return layers


def _stage4_block(name):
    """'res4k_branch2a' / 'bn4k_branch2a' -> 'k'."""
    return name[4] if name.startswith("res") else name[3]


# Scales of the kernels (times sqrt(1 / fan_in)) and biases, chosen once with our model so
# that each head's outputs are confident but varied (about 10-40 detections at 0.7 on a
# shapes image); the file then fixes them.
_KERNEL_GAIN = {"conv1": 1 / 60.0, "rpn_class_raw": 4.0, "rpn_bbox_pred": 1.0, "mrcnn_class_logits": 4.0,
                "mrcnn_bbox_fc": 0.5, "mrcnn_mask": 4.0}


def random_arrays(layers, seed=0):
    """{group name: [(weight name, array float32), ...]} for ``layers`` (manifest_layers)."""
    rng = np.random.default_rng(seed)
    groups = {}
    for name, weights in layers:
        arrays = []
        for weight_name, shape in weights:
            variable = weight_name.split("/")[-1].split(":")[0]
            owner = weight_name.split("/")[0]
            if variable == "kernel":
                fan_in = (int(np.prod(shape[:-1])) if owner != "mrcnn_mask_deconv"
                          else int(np.prod(shape[:2]) * shape[3]))
                value = rng.normal(0.0, np.sqrt(1.0 / fan_in), shape) * _KERNEL_GAIN.get(owner, 1.0)
            elif variable == "bias":
                value = rng.normal(0.0, 0.02, shape)
            elif variable in ("gamma", "moving_variance"):
                value = rng.uniform(0.6, 1.4, shape)
            else:  # beta, moving_mean
                value = rng.normal(0.0, 0.1, shape)
            arrays.append((weight_name, value.astype(np.float32)))
        groups[name] = arrays
    return groups
