"""detection: two-stage (Faster / Mask R-CNN) object detection on TensorFlow 2 and Keras 3.

The public API, one import away::

    from detection import Config, Predictor, display_instances, read_image, train_detector

    config = Config.from_yaml("configs/shapes.yaml")
    run = train_detector(config, "runs/shapes")
    predictor = Predictor.from_weights(run.config, run.final_weights)
    r = predictor.detect([read_image("photo.jpg")])[0]     # rois, class_ids, class_names, scores, masks

Names are imported when first used, so ``import detection`` (and reading a config, or
evaluating a results file) does not load TensorFlow.
"""

import importlib

__version__ = "0.1.0"

# name -> the module that defines it.
_EXPORTS = {
    "Config": "detection.config",
    "ConfigError": "detection.config",
    "load_dataset": "detection.data.datasets",
    "Dataset": "detection.data.records",
    "Record": "detection.data.records",
    "CustomDataset": "detection.data.custom_dataset",
    "DataError": "detection.data.validation",
    "read_image": "detection.data.images",
    "make_dataset": "detection.data.pipeline",
    "Detector": "detection.modeling.detector",
    "WeightsError": "detection.modeling.weights",
    "train_detector": "detection.engine.detector_training",
    "Predictor": "detection.engine.predictor",
    "evaluate_coco": "detection.evaluation.coco",
    "evaluate_predictor": "detection.evaluation.detector_eval",
    "display_instances": "detection.visualize",
    "export_saved_model": "detection.export",
    "load_serving": "detection.export",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'detection' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
