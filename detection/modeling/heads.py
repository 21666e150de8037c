"""The RPN head (shared over pyramid levels), the box head and the mask head.

Layer names start with ``rpn_``, ``rcnn_`` and ``mask_`` so that layer selection (``heads``)
finds them. The heads are built once and called on both the training and the inference
graph, so the two models share their weights.
"""

import keras
from keras import ops

from detection.layers.roi_align import PyramidROIAlign


class RPNHead:
    """3x3 conv then 1x1 objectness logits and box deltas for A anchors per location.

    ``__call__(feature_maps)`` with P2..P6 [B, h_k, w_k, C] returns
    logits [B, N] (foreground logit per anchor), probs [B, N], deltas [B, N, 4], with N the
    anchors of all levels in (level, y, x, anchor) order, as detection.core.anchors lays them out.
    """

    def __init__(self, anchors_per_location, channels):
        self.conv = keras.layers.Conv2D(channels, 3, padding="same", activation="relu", name="rpn_conv_shared")
        self.logits = keras.layers.Conv2D(anchors_per_location, 1, name="rpn_class_raw")
        self.deltas = keras.layers.Conv2D(4 * anchors_per_location, 1, name="rpn_bbox_pred")

    def __call__(self, feature_maps):
        logits, deltas = [], []
        for level, p in enumerate(feature_maps):
            shared = self.conv(p)
            logits.append(keras.layers.Reshape((-1,), name=f"rpn_logits_flat_p{level + 2}")(self.logits(shared)))
            deltas.append(keras.layers.Reshape((-1, 4), name=f"rpn_deltas_flat_p{level + 2}")(self.deltas(shared)))
        logits = keras.layers.Concatenate(axis=1, name="rpn_class_logits", dtype="float32")(logits)
        deltas = keras.layers.Concatenate(axis=1, name="rpn_bbox", dtype="float32")(deltas)
        probs = keras.layers.Activation("sigmoid", name="rpn_probs", dtype="float32")(logits)
        return logits, probs, deltas


@keras.saving.register_keras_serializable(package="detection")
class FoldRoIs(keras.layers.Layer):
    """[B, R, ...] <-> [B * R, ...] so that per-RoI convolutions run as one batch.

    ``unfold=False``: x [B, R, ...] -> [B * R, ...]; ``unfold=True`` needs ``num_rois``:
    x [B * R, ...] -> [B, R, ...]. Cheaper than TimeDistributed and XLA-friendly.
    """

    def __init__(self, unfold=False, num_rois=None, **kwargs):
        super().__init__(**kwargs)
        self.unfold = bool(unfold)
        self.num_rois = num_rois

    def call(self, x):
        if self.unfold:
            return ops.reshape(x, (-1, self.num_rois) + tuple(x.shape[1:]))
        return ops.reshape(x, (-1,) + tuple(x.shape[2:]))

    def compute_output_shape(self, shape):
        if self.unfold:
            return (None, self.num_rois) + tuple(shape[1:])
        rows = None if shape[0] is None or shape[1] is None else shape[0] * shape[1]
        return (rows,) + tuple(shape[2:])

    def get_config(self):
        return {**super().get_config(), "unfold": self.unfold, "num_rois": self.num_rois}


class BoxHead:
    """RoIAlign (POOL_SIZE) then two fully connected layers (FPN_CLASSIF_FC_LAYERS_SIZE).

    ``__call__(rois [B, R, 4], P2..P5)`` returns class logits [B, R, NC], class probs
    [B, R, NC] and class-specific box deltas [B, R, NC, 4].
    """

    def __init__(self, config):
        self.num_classes = config.NUM_CLASSES
        self.pool_size = config.POOL_SIZE
        self.align = PyramidROIAlign(config.POOL_SIZE, config.BACKBONE_STRIDES[:4], mode=config.ROI_ALIGN_MODE,
                                     name="rcnn_roi_align")
        self.fc1 = keras.layers.Dense(config.FPN_CLASSIF_FC_LAYERS_SIZE, activation="relu", name="rcnn_fc1")
        self.fc2 = keras.layers.Dense(config.FPN_CLASSIF_FC_LAYERS_SIZE, activation="relu", name="rcnn_fc2")
        self.class_logits = keras.layers.Dense(config.NUM_CLASSES, name="rcnn_class_logits")
        self.bbox = keras.layers.Dense(config.NUM_CLASSES * 4, name="rcnn_bbox_fc")

    def __call__(self, rois, feature_maps, prefix):
        num_rois = rois.shape[1]
        pooled = self.align(rois, *feature_maps)
        flat = keras.layers.Reshape((num_rois, -1), name=f"{prefix}_rcnn_flatten")(pooled)
        x = self.fc2(self.fc1(flat))
        logits = keras.layers.Activation("linear", dtype="float32", name=f"{prefix}_rcnn_class_logits_f32")(
            self.class_logits(x))
        probs = keras.layers.Activation("softmax", dtype="float32", name=f"{prefix}_rcnn_class_probs")(logits)
        deltas = keras.layers.Reshape((num_rois, self.num_classes, 4), dtype="float32",
                                      name=f"{prefix}_rcnn_bbox")(self.bbox(x))
        return logits, probs, deltas


class MaskHead:
    """RoIAlign (MASK_POOL_SIZE), four 3x3 convs, a 2x transposed conv, a 1x1 conv per class.

    ``__call__(rois [B, R, 4], P2..P5)`` returns mask logits [B, R, 2 * MASK_POOL_SIZE,
    2 * MASK_POOL_SIZE, NC] float32.
    """

    def __init__(self, config):
        channels = config.TOP_DOWN_PYRAMID_SIZE
        self.align = PyramidROIAlign(config.MASK_POOL_SIZE, config.BACKBONE_STRIDES[:4], mode=config.ROI_ALIGN_MODE,
                                     name="mask_roi_align")
        self.convs = [keras.layers.Conv2D(channels, 3, padding="same", activation="relu", name=f"mask_conv{i}")
                      for i in range(1, 5)]
        self.deconv = keras.layers.Conv2DTranspose(channels, 2, strides=2, activation="relu", name="mask_deconv")
        self.logits = keras.layers.Conv2D(config.NUM_CLASSES, 1, name="mask_logits")

    def __call__(self, rois, feature_maps, prefix):
        num_rois = rois.shape[1]
        x = FoldRoIs(name=f"{prefix}_mask_fold")(self.align(rois, *feature_maps))
        for conv in self.convs:
            x = conv(x)
        x = self.logits(self.deconv(x))
        x = keras.layers.Activation("linear", dtype="float32", name=f"{prefix}_mask_logits_f32")(x)
        return FoldRoIs(unfold=True, num_rois=num_rois, name=f"{prefix}_mask_unfold")(x)
