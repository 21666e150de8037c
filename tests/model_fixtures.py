"""A tiny detector config and hand-made batches for model tests (64 px images)."""
import numpy as np

from detection.config import Config
from detection.core.image_meta import compose_image_meta

SIZE = 64

# A tiny detector at 128 px, for runs of the tools on real images (a few steps on a CPU).
TINY_128_YAML = """
BACKBONE: resnet_tiny
TINY_BACKBONE_WIDTH: 8
TOP_DOWN_PYRAMID_SIZE: 16
FPN_CLASSIF_FC_LAYERS_SIZE: 32
IMAGE_RESIZE_MODE: square
IMAGE_MIN_DIM: 128
IMAGE_MAX_DIM: 128
RPN_ANCHOR_SCALES: [8, 16, 32, 64, 128]
PRE_NMS_LIMIT: 300
POST_NMS_ROIS_TRAINING: 64
POST_NMS_ROIS_INFERENCE: 64
TRAIN_ROIS_PER_IMAGE: 16
RPN_TRAIN_ANCHORS_PER_IMAGE: 64
MAX_GT_INSTANCES: 40
DETECTION_MAX_INSTANCES: 20
LR_WARMUP_STEPS: 0
"""


def tiny_config(**changes):
    values = dict(
        NAME="tiny", BACKBONE="resnet_tiny", TINY_BACKBONE_WIDTH=16, TOP_DOWN_PYRAMID_SIZE=16,
        NUM_CLASSES=3, IMAGE_MIN_DIM=SIZE, IMAGE_MAX_DIM=SIZE, IMAGES_PER_GPU=2,
        RPN_ANCHOR_SCALES=[8, 16, 32, 64, 128], PRE_NMS_LIMIT=200, POST_NMS_ROIS_TRAINING=64,
        POST_NMS_ROIS_INFERENCE=32, TRAIN_ROIS_PER_IMAGE=16, FPN_CLASSIF_FC_LAYERS_SIZE=32,
        MAX_GT_INSTANCES=4, MINI_MASK_SHAPE=[16, 16], DETECTION_MAX_INSTANCES=10,
        DETECTION_MIN_CONFIDENCE=0.0, RPN_TRAIN_ANCHORS_PER_IMAGE=64,
    )
    values.update(changes)
    return Config(values)


def batch(config, boxes_per_image, classes_per_image=None, seed=0):
    """Inputs dict for len(boxes_per_image) images of SIZE x SIZE; boxes in input pixels.
    Masks are the full mini mask (the object fills its box)."""
    rng = np.random.default_rng(seed)
    b, m = len(boxes_per_image), config.MAX_GT_INSTANCES
    mh, mw = config.MINI_MASK_SHAPE
    out = {
        "image": rng.uniform(0, 255, (b, SIZE, SIZE, 3)).astype("float32"),
        "image_meta": np.stack([compose_image_meta(i, (SIZE, SIZE, 3), (SIZE, SIZE, 3), (0, 0, SIZE, SIZE), 1.0)
                                for i in range(b)]),
        "gt_class_ids": np.zeros((b, m), "int32"),
        "gt_boxes": np.zeros((b, m, 4), "float32"),
        "gt_masks": np.zeros((b, m, mh, mw), "float32"),
    }
    for i, boxes in enumerate(boxes_per_image):
        classes = classes_per_image[i] if classes_per_image else [1] * len(boxes)
        for j, (box, cls) in enumerate(zip(boxes, classes)):
            out["gt_boxes"][i, j] = box
            out["gt_class_ids"][i, j] = cls
            out["gt_masks"][i, j] = 1.0
            y1, x1, y2, x2 = [int(v) for v in box]
            out["image"][i, y1:y2, x1:x2] = 255.0 * (cls % 2)  # a flat object the model can see
    return out


def numpy_iou(a, b):
    """Brute-force IoU [N, M] for [y1, x1, y2, x2] boxes, independent of detection.core."""
    out = np.zeros((len(a), len(b)))
    for i, p in enumerate(a):
        for j, q in enumerate(b):
            ih = max(0.0, min(p[2], q[2]) - max(p[0], q[0]))
            iw = max(0.0, min(p[3], q[3]) - max(p[1], q[1]))
            inter = ih * iw
            union = (p[2] - p[0]) * (p[3] - p[1]) + (q[2] - q[0]) * (q[3] - q[1]) - inter
            out[i, j] = inter / union if union > 0 else 0.0
    return out
