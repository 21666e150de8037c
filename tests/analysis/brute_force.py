"""The independent brute-force reference stat_gt's fast matcher is checked against."""
import numpy as np


def brute_force_match(boxes, padded_shape, spec, positive_iou):
    """Every anchor the model uses for one input (``spec.anchors``, its ANCHOR_GENERATOR), the
    full IoU matrix, in float64.

    boxes: [G, 4] float32 [y1, x1, y2, x2] input pixels; padded_shape: (H, W); spec: AnchorSpec.
    Returns {best_iou [G], positive_anchors [G], level [G] of the first best anchor,
    group_best [G, L, S, R] best IoU of each (level, scale, ratio) group, anchor_num}.
    """
    anchors = spec.anchors(tuple(int(v) for v in padded_shape))
    per_location = spec.anchors_per_location
    # Locations of each level: every anchor_stride-th cell of the ceil(side / stride) feature map.
    sizes = [int(np.ceil(np.ceil(padded_shape[0] / s) / spec.anchor_stride))
             * int(np.ceil(np.ceil(padded_shape[1] / s) / spec.anchor_stride)) for s in spec.strides]
    assert sum(sizes) * per_location == len(anchors)
    levels = np.concatenate([np.full(n * per_location, i) for i, n in enumerate(sizes)])
    # Within a location: the standard generator's order is scale-major, torchvision's ratio-major.
    scales, ratios = len(spec.level_scales[0]), len(spec.ratios)
    slot = np.arange(per_location)
    scale_of_slot, ratio_of_slot = (divmod(slot, ratios) if spec.generator == "standard"
                                    else divmod(slot, scales)[::-1])
    within = np.concatenate([np.tile(slot, n) for n in sizes])
    a = anchors.astype(np.float64)
    g = np.asarray(boxes, np.float32).reshape(-1, 4).astype(np.float64)
    ih = np.maximum(np.minimum(g[:, None, 2], a[None, :, 2]) - np.maximum(g[:, None, 0], a[None, :, 0]), 0)
    iw = np.maximum(np.minimum(g[:, None, 3], a[None, :, 3]) - np.maximum(g[:, None, 1], a[None, :, 1]), 0)
    inter = ih * iw
    union = (((g[:, 2] - g[:, 0]) * (g[:, 3] - g[:, 1]))[:, None] + ((a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]))[None]
             - inter)
    iou = inter / union
    group_best = np.zeros((len(g), len(sizes), scales, ratios))
    for level in range(len(sizes)):
        for s in range(scales):
            for r in range(ratios):
                group = (levels == level) & (scale_of_slot[within] == s) & (ratio_of_slot[within] == r)
                group_best[:, level, s, r] = iou[:, group].max(axis=1)
    return {"best_iou": iou.max(axis=1), "positive_anchors": (iou >= positive_iou).sum(axis=1),
            "level": levels[iou.argmax(axis=1)], "group_best": group_best, "anchor_num": len(a)}
