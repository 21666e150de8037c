"""torchvision's paste_masks_in_image (for its weights): 28 x 28 mask probabilities -> image masks.

Each mask gets a one-pixel zero border (30 x 30) and its box grows by the same factor
(30 / 28) about its centre; the box's corners are truncated to integers (toward zero), the mask
resized bilinearly (torch's interpolate, align_corners=False) to ``x2 - x1 + 1`` by
``y2 - y1 + 1`` pixels and written where it falls inside the image. Probabilities are returned;
threshold them at 0.5 as torchvision's users do.
"""

import numpy as np
import tensorflow as tf


def paste_masks(masks, boxes, height, width, padding=1):
    """masks [N, M, M] probabilities; boxes [N, 4] xyxy original-image pixels ->
    [N, height, width] float32 probabilities."""
    masks = np.asarray(masks, np.float32)
    boxes = np.asarray(boxes, np.float32)
    out = np.zeros((len(masks), height, width), np.float32)
    if not len(masks):
        return out
    m = masks.shape[-1]
    scale = np.float32((m + 2 * padding) / m)
    padded = np.pad(masks, ((0, 0), (padding, padding), (padding, padding)))
    half_w = (boxes[:, 2] - boxes[:, 0]) * np.float32(0.5) * scale
    half_h = (boxes[:, 3] - boxes[:, 1]) * np.float32(0.5) * scale
    ctr_x = (boxes[:, 2] + boxes[:, 0]) * np.float32(0.5)
    ctr_y = (boxes[:, 3] + boxes[:, 1]) * np.float32(0.5)
    expanded = np.stack([ctr_x - half_w, ctr_y - half_h, ctr_x + half_w, ctr_y + half_h], axis=1)
    expanded = np.trunc(expanded).astype(np.int64)
    for i, (x1, y1, x2, y2) in enumerate(expanded):
        w, h = max(int(x2 - x1 + 1), 1), max(int(y2 - y1 + 1), 1)
        resized = tf.image.resize(padded[i][None, :, :, None], (h, w), method="bilinear", antialias=False)
        resized = resized.numpy()[0, :, :, 0]
        x_0, x_1 = max(x1, 0), min(x2 + 1, width)
        y_0, y_1 = max(y1, 0), min(y2 + 1, height)
        if x_1 > x_0 and y_1 > y_0:
            out[i, y_0:y_1, x_0:x_1] = resized[y_0 - y1:y_1 - y1, x_0 - x1:x_1 - x1]
    return out
