"""Training diagnostics, the Keras 3 successor of matterport's ``metrics_tensors``.

Each diagnostic is a ``keras.metrics.Mean`` owned by the layer that computes it, so Keras
averages it over the epoch, shows it in the progress bar, History, CSV and TensorBoard, and
adds a ``val_`` twin during validation. Values are per image:

  gt_num                  GT boxes (non-crowd) per image
  positive_anchor_num     anchors sampled as positive for the RPN loss, per image
  negative_anchor_num     anchors sampled as negative, per image
  miss_match_gt_num       GT boxes whose best anchor IoU is below RPN_POSITIVE_IOU, per image
  gt_match_min_iou        smallest best-anchor IoU over an image's GT boxes (images with GT only)
  gt_match_mean_iou       mean best-anchor IoU over an image's GT boxes (images with GT only)
  positive_roi_num        RoIs sampled as positive for the RCNN heads, per image
  negative_roi_num        RoIs sampled as negative, per image
  rcnn_miss_match_gt_num  GT boxes that no proposal reaches at IoU >= ROI_POSITIVE_IOU, per image

None is ever inf or NaN: IoU diagnostics are averaged with weight 0 for images without GT,
and Mean divides with divide_no_nan.
"""

import keras

RPN_DIAGNOSTICS = ("gt_num", "positive_anchor_num", "negative_anchor_num", "miss_match_gt_num",
                   "gt_match_min_iou", "gt_match_mean_iou")
RCNN_DIAGNOSTICS = ("positive_roi_num", "negative_roi_num", "rcnn_miss_match_gt_num")
# Averaged only over images that have GT boxes.
_GT_WEIGHTED = ("gt_match_min_iou", "gt_match_mean_iou")


def make_trackers(names):
    """{name: keras.metrics.Mean(name)} for the given diagnostics."""
    return {name: keras.metrics.Mean(name=name) for name in names}


def update_trackers(trackers, values, has_gt):
    """values: {name: [B] float32}; has_gt: [B] bool. Updates each tracker with the batch."""
    weight = keras.ops.cast(has_gt, "float32")
    for name, tracker in trackers.items():
        if name in _GT_WEIGHTED:
            tracker.update_state(values[name], sample_weight=weight)
        else:
            tracker.update_state(values[name])
