"""Pure tensor math with no Keras state: boxes, anchors, matching, sampling, batching."""
