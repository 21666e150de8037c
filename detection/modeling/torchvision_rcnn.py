"""torchvision's Faster / Mask R-CNN (ResNet-50-FPN, v1 and v2; MobileNetV3-Large-FPN), built in
Keras to run its weights.

Entry point: ``TorchvisionRCNN(config)`` when ``config.TORCHVISION_MODEL`` is set
(fasterrcnn_resnet50_fpn, maskrcnn_resnet50_fpn or their _v2, fasterrcnn_mobilenet_v3_large_fpn);
``load_pth(path)`` loads a torchvision state_dict (detection/modeling/torchvision_rcnn_weights.py) and
``detect(image)`` returns torchvision's detections of one image. Every layer is named after its torchvision module
(``backbone.body.layer1.0.conv1`` -> ``backbone_body_layer1_0_conv1``).

    image [H, W, 3] uint8 RGB -> detection/modeling/torchvision_transform.py (normalise, resize, pad /32)
      -> ResNet-50 (torchvision's: stride in the 3x3 conv, frozen BatchNorm eps 1e-5, symmetric
         padding) C2..C5 -> FPN (1x1 inner, nearest 2x top-down, 3x3 layer) P2..P5, P6 = P5[::2, ::2]
      -> RPN head (3x3 conv + ReLU, one logit and 4 deltas per anchor)
      -> proposals: per level the PRE_NMS_LIMIT best logits, decoded (weights 1, 1, 1, 1), clipped
         to the resized image, sides >= 1e-3, NMS RPN_NMS_THRESHOLD per level, the
         POST_NMS_ROIS_INFERENCE best
      -> MultiScaleRoIAlign 7 x 7 (detection/layers/torchvision_roi_align.py) -> TwoMLPHead
         (flatten in torch's channel-first order, fc6, fc7 with ReLU) -> cls_score, bbox_pred
      -> softmax, decode per class (weights 10, 10, 5, 5), clip, drop background, score >
         DETECTION_MIN_CONFIDENCE, sides >= 1e-2, NMS DETECTION_NMS_THRESHOLD per class, the
         DETECTION_MAX_INSTANCES best
      -> (Mask R-CNN) RoIAlign 14 x 14 of the detections -> four 3x3 conv + ReLU, 2x2 transposed
         conv + ReLU, 1x1 conv -> sigmoid of the detected class
      fasterrcnn_mobilenet_v3_large_fpn: the backbone and FPN of
         detection/modeling/torchvision_mobilenet.py (maps "0", "1" at stride 32, "pool" at 64),
         every anchor size (RPN_ANCHOR_SCALES) on each of the three maps (15 anchors per
         location), proposals scoring below TORCHVISION_RPN_SCORE_THRESHOLD (its 0.05) dropped
         before the NMS, RoIs all pooled from map "0" (MultiScaleRoIAlign's levels 5..5).
      v2 (the "improved" recipe's models): a BatchNorm after every FPN conv, two 3x3 convs in the
         RPN head, a box head of four 3x3 conv + BatchNorm + ReLU and one fc (1024), a BatchNorm
         after every mask head conv.
      -> boxes scaled to the original image, masks pasted (detection/modeling/torchvision_masks.py).

This is torchvision's inference, not ours: the config keys that apply are NUM_CLASSES,
RPN_ANCHOR_SCALES, RPN_ANCHOR_RATIOS (width / height; torchvision's (0.5, 1, 2) height / width
is [2, 1, 0.5] here, in its order), PRE_NMS_LIMIT (per level), POST_NMS_ROIS_INFERENCE,
RPN_NMS_THRESHOLD, RPN_BBOX_STD_DEV and BBOX_STD_DEV (the inverse box coder weights),
DETECTION_MIN_CONFIDENCE / _NMS_THRESHOLD / _MAX_INSTANCES, POOL_SIZE, MASK_POOL_SIZE, USE_MASK,
MEAN_PIXEL / PIXEL_STD (0..255), TORCHVISION_MIN_SIZE / _MAX_SIZE, TORCHVISION_RPN_SCORE_THRESHOLD.
"""

import keras
import numpy as np
import tensorflow as tf

from detection.core import torchvision_boxes as tvb
from detection.layers.torchvision_roi_align import multiscale_roi_align
from detection.modeling import torchvision_mobilenet
from detection.modeling.torchvision_masks import paste_masks
from detection.modeling.torchvision_transform import transform_image

TORCHVISION_MODELS = ("fasterrcnn_resnet50_fpn", "maskrcnn_resnet50_fpn",
                      "fasterrcnn_resnet50_fpn_v2", "maskrcnn_resnet50_fpn_v2", "fasterrcnn_mobilenet_v3_large_fpn")
RESNET50_BLOCKS = (3, 4, 6, 3)
BN_EPSILON = 1e-5  # torchvision's FrozenBatchNorm2d / BatchNorm2d
RPN_MIN_SIZE = 1e-3
DETECTION_MIN_SIZE = 1e-2
SAMPLING_RATIO = 2


def _keras_name(torch_name):
    return torch_name.replace(".", "_")


class _Builder:
    """Creates layers named after torchvision modules and records {torch module: (layer, kind)}."""

    def __init__(self):
        self.modules = {}

    def add(self, torch_name, layer, kind):
        self.modules[torch_name] = (layer, kind)
        return layer

    def conv(self, x, torch_name, filters, kernel, stride=1, padding=0, bias=True):
        if padding:
            x = keras.layers.ZeroPadding2D(padding, name=_keras_name(torch_name) + "_pad")(x)
        layer = keras.layers.Conv2D(filters, kernel, strides=stride, padding="valid", use_bias=bias,
                                    name=_keras_name(torch_name))
        return self.add(torch_name, layer, "conv")(x)

    def bn(self, x, torch_name):
        layer = keras.layers.BatchNormalization(epsilon=BN_EPSILON, name=_keras_name(torch_name))
        layer.trainable = False  # FrozenBatchNorm2d: statistics and affine fixed
        layer.frozen_by_config = True
        return self.add(torch_name, layer, "bn")(x)


def _bottleneck(b, x, name, width, stride, downsample):
    relu = keras.layers.ReLU
    y = relu()(b.bn(b.conv(x, f"{name}.conv1", width, 1, bias=False), f"{name}.bn1"))
    y = relu()(b.bn(b.conv(y, f"{name}.conv2", width, 3, stride, padding=1, bias=False), f"{name}.bn2"))
    y = b.bn(b.conv(y, f"{name}.conv3", width * 4, 1, bias=False), f"{name}.bn3")
    if downsample:
        x = b.bn(b.conv(x, f"{name}.downsample.0", width * 4, 1, stride, bias=False), f"{name}.downsample.1")
    return relu()(keras.layers.Add()([x, y]))


def _conv_norm(b, x, name, filters, kernel, padding, v2, relu=False):
    """torchvision's Conv2dNormActivation: ``name.0`` conv (bias only without a norm), with v2
    ``name.1`` BatchNorm, then an optional ReLU."""
    x = b.conv(x, f"{name}.0", filters, kernel, padding=padding, bias=not v2)
    if v2:
        x = b.bn(x, f"{name}.1")
    return keras.layers.ReLU()(x) if relu else x


def resnet50_fpn(b, image, v2=False):
    """torchvision's ResNet-50-FPN: image [1, H, W, 3] Keras tensor (normalised, H, W multiples
    of 32) -> [P2..P6] ([1, H/4, W/4, 256] ... [1, H/64 rounded up, ., 256]); v2: the FPN's
    convs carry a BatchNorm."""
    x = b.conv(image, "backbone.body.conv1", 64, 7, 2, padding=3, bias=False)
    x = keras.layers.ReLU()(b.bn(x, "backbone.body.bn1"))
    # max pooling 3x3 / 2 with padding 1: after a ReLU, zero padding never wins a maximum
    x = keras.layers.MaxPooling2D(3, 2)(keras.layers.ZeroPadding2D(1)(x))
    stages = []
    for stage, (blocks, width) in enumerate(zip(RESNET50_BLOCKS, (64, 128, 256, 512)), start=1):
        for block in range(blocks):
            stride = 2 if block == 0 and stage > 1 else 1
            x = _bottleneck(b, x, f"backbone.body.layer{stage}.{block}", width, stride, downsample=block == 0)
        stages.append(x)
    inner = [_conv_norm(b, c, f"backbone.fpn.inner_blocks.{i}", 256, 1, 0, v2) for i, c in enumerate(stages)]
    last = inner[3]
    outputs = [_conv_norm(b, last, "backbone.fpn.layer_blocks.3", 256, 3, 1, v2)]
    for i in (2, 1, 0):
        last = keras.layers.Add()([inner[i], keras.layers.UpSampling2D(2, interpolation="nearest")(last)])
        outputs.insert(0, _conv_norm(b, last, f"backbone.fpn.layer_blocks.{i}", 256, 3, 1, v2))
    outputs.append(keras.layers.MaxPooling2D(1, 2, name="fpn_p6")(outputs[-1]))  # LastLevelMaxPool
    return outputs


def build_features(b, num_anchors, v2=False, mobilenet=False):
    """The dense part: image [1, H, W, 3] (normalised, H, W multiples of 32) -> a keras.Model
    returning the FPN maps (resnet50_fpn's P2..P6, or with mobilenet the three maps of
    detection/modeling/torchvision_mobilenet.py), the RPN logits of each level [1, h, w, A]
    and its deltas [1, h, w, 4A] ((dx, dy, dw, dh) per anchor). v2: the FPN's convs carry a
    BatchNorm, the RPN head has two 3x3 convs."""
    image = keras.Input(shape=(None, None, 3), name="image")
    outputs = torchvision_mobilenet.mobilenet_v3_large_fpn(b, image) if mobilenet else resnet50_fpn(b, image, v2)
    rpn_convs = [b.add(f"rpn.head.conv.{i}.0", keras.layers.Conv2D(256, 3, padding="same", activation="relu",
                                                                   name=f"rpn_head_conv_{i}_0"), "conv")
                 for i in range(2 if v2 else 1)]
    rpn_logits = b.add("rpn.head.cls_logits", keras.layers.Conv2D(num_anchors, 1, name="rpn_head_cls_logits"),
                       "conv")
    rpn_deltas = b.add("rpn.head.bbox_pred", keras.layers.Conv2D(4 * num_anchors, 1, name="rpn_head_bbox_pred"),
                       "conv")
    shared = outputs
    for conv in rpn_convs:
        shared = [conv(p) for p in shared]
    return keras.Model(image, {"features": outputs, "rpn_logits": [rpn_logits(s) for s in shared],
                               "rpn_deltas": [rpn_deltas(s) for s in shared]}, name="torchvision_features")


def build_box_head(b, num_classes, pool_size, representation=1024, v2=False):
    """pooled [N, pool, pool, 256] -> (class logits [N, K], deltas [N, 4K]). TwoMLPHead (fc6,
    fc7), or with v2 FastRCNNConvFCHead (four 3x3 conv + BatchNorm + ReLU, one fc). The first fc
    reads the flattened features in torch's (C, H, W) order (the weight mapping reorders it)."""
    pooled = keras.Input(shape=(pool_size, pool_size, 256), name="box_features")
    if v2:
        x = pooled
        for i in range(4):
            x = _conv_norm(b, x, f"roi_heads.box_head.{i}", 256, 3, 1, v2, relu=True)
        x = b.add("roi_heads.box_head.5", keras.layers.Dense(representation, activation="relu",
                                                             name="roi_heads_box_head_5"), "linear_chw")(
            keras.layers.Flatten()(x))
    else:
        x = keras.layers.Flatten()(pooled)
        x = b.add("roi_heads.box_head.fc6", keras.layers.Dense(representation, activation="relu",
                                                               name="roi_heads_box_head_fc6"), "linear_chw")(x)
        x = b.add("roi_heads.box_head.fc7", keras.layers.Dense(representation, activation="relu",
                                                               name="roi_heads_box_head_fc7"), "linear")(x)
    logits = b.add("roi_heads.box_predictor.cls_score",
                   keras.layers.Dense(num_classes, name="roi_heads_box_predictor_cls_score"), "linear")(x)
    deltas = b.add("roi_heads.box_predictor.bbox_pred",
                   keras.layers.Dense(4 * num_classes, name="roi_heads_box_predictor_bbox_pred"), "linear")(x)
    return keras.Model(pooled, [logits, deltas], name="torchvision_box_head")


def build_mask_head(b, num_classes, pool_size, v2=False):
    """pooled [N, pool, pool, 256] -> mask logits [N, 2 pool, 2 pool, K]; v2: BatchNorm after each conv."""
    pooled = keras.Input(shape=(pool_size, pool_size, 256), name="mask_features")
    x = pooled
    for i in range(4):
        x = _conv_norm(b, x, f"roi_heads.mask_head.{i}", 256, 3, 1, v2, relu=True)
    x = b.add("roi_heads.mask_predictor.conv5_mask",
              keras.layers.Conv2DTranspose(256, 2, strides=2, activation="relu",
                                           name="roi_heads_mask_predictor_conv5_mask"), "conv_transpose")(x)
    logits = b.add("roi_heads.mask_predictor.mask_fcn_logits",
                   keras.layers.Conv2D(num_classes, 1, name="roi_heads_mask_predictor_mask_fcn_logits"), "conv")(x)
    return keras.Model(pooled, logits, name="torchvision_mask_head")


class _WeightsContainer(keras.Model):
    """The three models as one, for Keras' save_weights / load_weights (by structure)."""

    def __init__(self, models):
        super().__init__(name="torchvision_rcnn")
        self.parts = list(models)
        self.built = True

    def call(self, inputs):
        return inputs


class TorchvisionRCNN:
    """torchvision's fasterrcnn_resnet50_fpn / maskrcnn_resnet50_fpn at inference (module doc)."""

    def __init__(self, config):
        if config.TORCHVISION_MODEL not in TORCHVISION_MODELS:
            raise ValueError(f"TORCHVISION_MODEL {config.TORCHVISION_MODEL!r}: one of {', '.join(TORCHVISION_MODELS)}")
        self.config = config
        c = config
        self.use_mask = c.TORCHVISION_MODEL.startswith("maskrcnn")
        v2 = c.TORCHVISION_MODEL.endswith("_v2")
        mobilenet = "mobilenet" in c.TORCHVISION_MODEL
        # ours are width / height, torchvision's height / width, same order
        self.ratios_hw = [1.0 / float(r) for r in c.RPN_ANCHOR_RATIOS]
        # anchor sizes of each FPN map: ResNet-50 one size per map; MobileNetV3 every size on each
        # of its three maps (torchvision: ((32, 64, 128, 256, 512),) * 3), ratio-major
        self.anchor_sizes = ([tuple(c.RPN_ANCHOR_SCALES)] * torchvision_mobilenet.NUM_LEVELS if mobilenet
                             else [(s,) for s in c.RPN_ANCHOR_SCALES])
        # level (log2 of the stride) of each map MultiScaleRoIAlign reads; its mapper clamps to the first..last
        self.roi_levels = torchvision_mobilenet.ROI_LEVELS if mobilenet else (2, 3, 4, 5)
        b = _Builder()
        self.features = build_features(b, len(self.anchor_sizes[0]) * len(self.ratios_hw), v2, mobilenet)
        self.box_head = build_box_head(b, c.NUM_CLASSES, c.POOL_SIZE, v2=v2)
        self.mask_head = build_mask_head(b, c.NUM_CLASSES, c.MASK_POOL_SIZE, v2) if self.use_mask else None
        self.modules = b.modules  # {torch module name: (keras layer, kind)}

    @property
    def models(self):
        return [m for m in (self.features, self.box_head, self.mask_head) if m is not None]

    # -- weights ------------------------------------------------------------------------

    def save_weights(self, path):
        """Writes every weight to a Keras ``.weights.h5`` (what tools/convert_weights.py makes)."""
        path = str(path)
        if not path.endswith(".weights.h5"):
            raise ValueError(f"{path}: a weights file name must end in .weights.h5")
        _WeightsContainer(self.models).save_weights(path)

    def load_weights(self, path, log=print):
        """A torchvision ``.pth`` (returns its LoadReport) or a ``.weights.h5`` of save_weights (None)."""
        if str(path).endswith(".weights.h5"):
            _WeightsContainer(self.models).load_weights(str(path))
            return None
        return self.load_pth(path, log=log)

    def load_pth(self, path, log=print):
        """Loads a torchvision state_dict (.pth or checkpoint); returns its LoadReport."""
        from detection.modeling.torchvision_rcnn_weights import load_state_dict_file

        report = load_state_dict_file(self, path)
        if log:
            log(report.summary())
        return report

    # -- inference ----------------------------------------------------------------------

    def detect(self, image):
        """image [H, W, 3] uint8 RGB -> dict of numpy arrays, in original-image pixels:
        boxes [D, 4] [y1, x1, y2, x2] float32, class_ids [D] int32 (1..NUM_CLASSES-1),
        scores [D] float32 by decreasing score, and with a mask model masks [D, H, W] float32
        probabilities (threshold at 0.5)."""
        c = self.config
        image = np.asarray(image)
        original_hw = image.shape[:2]
        batch, resized_hw = transform_image(image, c.TORCHVISION_MIN_SIZE, c.TORCHVISION_MAX_SIZE,
                                            mean=[m / 255.0 for m in c.MEAN_PIXEL],
                                            std=[s / 255.0 for s in c.PIXEL_STD])
        out = self.features(batch, training=False)
        features = [f[0] for f in out["features"]]
        proposals = self.proposals(out["rpn_logits"], out["rpn_deltas"], features, batch.shape[1:3], resized_hw)
        roi_features = features[:len(self.roi_levels)]
        boxes, scores, labels = self.detections(roi_features, proposals, resized_hw)
        result = {}
        if self.use_mask:
            result["masks"] = self.mask_probabilities(roi_features, boxes, labels)
        ratio_h = np.float32(original_hw[0]) / np.float32(resized_hw[0])
        ratio_w = np.float32(original_hw[1]) / np.float32(resized_hw[1])
        boxes = boxes.numpy() * np.array([ratio_w, ratio_h, ratio_w, ratio_h], np.float32)
        if self.use_mask:
            result["masks"] = paste_masks(result["masks"], boxes, original_hw[0], original_hw[1])
        result.update(boxes=boxes[:, [1, 0, 3, 2]], class_ids=labels.numpy().astype(np.int32),
                      scores=scores.numpy())
        return result

    def proposals(self, rpn_logits, rpn_deltas, features, padded_hw, resized_hw):
        """RegionProposalNetwork.filter_proposals for one image -> [P, 4] xyxy resized-image pixels."""
        c = self.config
        boxes, scores, levels = [], [], []
        for level, (logits, deltas, feature) in enumerate(zip(rpn_logits, rpn_deltas, features)):
            anchors = tvb.grid_anchors(feature.shape[:2], padded_hw, self.anchor_sizes[level], self.ratios_hw)
            logits = tf.reshape(logits, [-1])
            k = min(c.PRE_NMS_LIMIT, int(logits.shape[0]))
            top_logits, top = tf.math.top_k(logits, k)
            deltas = tf.gather(tf.reshape(deltas, [-1, 4]), top)
            std = c.RPN_BBOX_STD_DEV  # (dy, dx, dh, dw) -> weights (wx, wy, ww, wh)
            decoded = tvb.decode(deltas, tf.gather(anchors, top), (1 / std[1], 1 / std[0], 1 / std[3], 1 / std[2]))
            boxes.append(decoded[:, 0])
            scores.append(tf.sigmoid(top_logits))
            levels.append(tf.fill([k], level))
        boxes = tvb.clip_to_image(tf.concat(boxes, 0), resized_hw)
        scores, levels = tf.concat(scores, 0), tf.concat(levels, 0)
        keep = tf.where(tvb.large_enough(boxes, RPN_MIN_SIZE))[:, 0]
        boxes, scores, levels = tf.gather(boxes, keep), tf.gather(scores, keep), tf.gather(levels, keep)
        keep = tf.where(scores >= c.TORCHVISION_RPN_SCORE_THRESHOLD)[:, 0]  # torchvision's rpn_score_thresh
        boxes, scores, levels = tf.gather(boxes, keep), tf.gather(scores, keep), tf.gather(levels, keep)
        keep = tvb.batched_nms(boxes, scores, levels, c.RPN_NMS_THRESHOLD)[:c.POST_NMS_ROIS_INFERENCE]
        return tf.gather(boxes, keep)

    def detections(self, features, proposals, resized_hw):
        """RoIHeads.postprocess_detections -> boxes [D, 4] xyxy resized pixels, scores [D], labels [D]."""
        c = self.config
        pooled = multiscale_roi_align(features, proposals, c.POOL_SIZE, SAMPLING_RATIO, self.roi_levels)
        logits, deltas = self.box_head(pooled, training=False)
        std = c.BBOX_STD_DEV
        boxes = tvb.decode(deltas, proposals, (1 / std[1], 1 / std[0], 1 / std[3], 1 / std[2]))
        boxes = tvb.clip_to_image(boxes, resized_hw)[:, 1:]
        scores = tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1)[:, 1:]
        labels = tf.broadcast_to(tf.range(1, c.NUM_CLASSES), tf.shape(scores))
        boxes, scores, labels = tf.reshape(boxes, [-1, 4]), tf.reshape(scores, [-1]), tf.reshape(labels, [-1])
        keep = tf.where(scores > c.DETECTION_MIN_CONFIDENCE)[:, 0]
        boxes, scores, labels = tf.gather(boxes, keep), tf.gather(scores, keep), tf.gather(labels, keep)
        keep = tf.where(tvb.large_enough(boxes, DETECTION_MIN_SIZE))[:, 0]
        boxes, scores, labels = tf.gather(boxes, keep), tf.gather(scores, keep), tf.gather(labels, keep)
        keep = tvb.batched_nms(boxes, scores, labels, c.DETECTION_NMS_THRESHOLD)[:c.DETECTION_MAX_INSTANCES]
        return tf.gather(boxes, keep), tf.gather(scores, keep), tf.gather(labels, keep)

    def mask_probabilities(self, features, boxes, labels):
        """maskrcnn_inference -> [D, 28, 28] sigmoid of each detection's class."""
        if int(tf.shape(boxes)[0]) == 0:
            side = 2 * self.config.MASK_POOL_SIZE
            return np.zeros((0, side, side), np.float32)
        pooled = multiscale_roi_align(features, boxes, self.config.MASK_POOL_SIZE, SAMPLING_RATIO, self.roi_levels)
        logits = self.mask_head(pooled, training=False)  # [D, 28, 28, K]
        selected = tf.gather(tf.transpose(logits, [0, 3, 1, 2]), labels, axis=1, batch_dims=1)
        return tf.sigmoid(selected).numpy()
