"""Keras layers built on detection.core: targets, proposals, RoIAlign, detections."""
