"""detection: two-stage (Faster / Mask R-CNN) object detection on TensorFlow 2 and Keras 3."""

__version__ = "0.1.0"
