"""The detector: a training model and an inference model that share every weight.

Both are functional keras.Models built on the same layers (and, when both are built, the
same image input), matterport-style:

    image -> NormalizeImage -> backbone C2..C5 -> FPN P2..P6 -> RPN head -> ProposalLayer
    (the FPN entry declares its maps' strides and which of them the RoI heads read: P2..P5 of
    P2..P6, or torchvision's MobileNetV3 FPN's two stride-32 maps of three)
    training:  RPNTargetLayer, DetectionTargetLayer -> box / mask heads on sampled RoIs
               -> five WeightedLoss layers (add_loss) ; diagnostics tracked by the target layers
    inference: box head on proposals -> DetectionLayer -> mask head on detections

The backbone, the FPN and the three heads come from registries by config name (BACKBONE, FPN,
RPN_HEAD, BOX_HEAD, MASK_HEAD); every layer gets the explicit values it uses, never the whole Config.

Inputs (B static: batch_slice needs it; IMAGES_PER_GPU per replica when training):
    image        [B, H, W, 3] float32 RGB 0..255, resized and padded (H, W static in square mode)
    image_meta   [B, 12] float32 (detection.core.image_meta)
    gt_class_ids [B, M] int32, 0 = padding, < 0 = crowd          (training only)
    gt_boxes     [B, M, 4] float32 input pixels                   (training only)
    gt_masks     [B, M, mh, mw] float32 mini masks (MINI_MASK_SHAPE; ignored when USE_MASK false)
The inference model returns a dict of: boxes [B, D, 4] original-image pixels, boxes_input
[B, D, 4] input pixels, class_ids [B, D] int32, scores [B, D], num_detections [B], and with
USE_MASK masks [B, D, 28, 28] float32 probabilities inside each box; also proposals [B, P, 4]
input pixels.

Weights: ``save_weights`` / ``load_weights`` go through the inference model, whose layer
structure is the same for every batch size and mode, so a file saved by training loads into
an inference-only detector and back. Legacy Keras 2 ``.h5`` files (matterport's) load by
layer name (detection/modeling/weights.py), torchvision ``.pth`` files onto the layers its
registry entries name after torchvision's modules (detection/modeling/torchvision_weights.py).
"""

import os

import keras
import tensorflow as tf

from detection import choices
from detection.config import ConfigError
from detection.core.anchors import AnchorSpec
from detection.core.frames import from_frame, to_frame
from detection.layers.detections import DetectionLayer
from detection.layers.padding import PadRows, TrimLike, TrimPaddingRows
from detection.layers.proposals import ProposalLayer
from detection.layers.rcnn_target import DetectionTargetLayer
from detection.layers.roi_align import roi_align_mode
from detection.layers.rpn_target import RPNTargetLayer, image_hw
from detection.modeling.backbones import build_backbone, input_convention
from detection.modeling.fpn import FPNS
from detection.modeling.heads import BOX_HEADS, MASK_HEADS, RPN_HEADS
from detection.modeling.keras_saving import cache_attr_skipsets
from detection.modeling.losses import WeightedLoss
from detection.modeling.normalization import NormalizeImage, ZeroOutsideWindow
from detection.modeling.torchvision_weights import is_pth, load_state_dict_file
from detection.modeling.weights import WeightsError, is_legacy_h5, load_weights_by_name


@keras.saving.register_keras_serializable(package="detection")
class SelectClassMasks(keras.layers.Layer):
    """mask_logits [B, D, h, w, NC], class_ids [B, D] -> sigmoid masks [B, D, h, w] of each class."""

    def call(self, mask_logits, class_ids):
        logits = tf.gather(tf.transpose(mask_logits, [0, 1, 4, 2, 3]), class_ids, axis=2, batch_dims=2)
        return tf.sigmoid(tf.cast(logits, tf.float32))

    def compute_output_spec(self, mask_logits, class_ids):
        return keras.KerasTensor(mask_logits.shape[:4], "float32")


@keras.saving.register_keras_serializable(package="detection")
class BoxFrameConversion(keras.layers.Layer):
    """boxes [B, N, 4], image [B, H, W, 3] (for its size) -> the boxes converted between input
    pixels and the box frame: ``to_frame`` true converts pixels -> frame, else frame -> pixels.
    Zero rows (padding) stay zero."""

    def __init__(self, frame="pixels", to_frame=True, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.frame = frame
        self.to_frame = bool(to_frame)

    def call(self, boxes, image):
        boxes = tf.cast(boxes, tf.float32)
        hw = image_hw(image)
        converted = to_frame(boxes, hw, self.frame) if self.to_frame else from_frame(boxes, hw, self.frame)
        return tf.where(tf.reduce_all(tf.equal(boxes, 0.0), axis=-1, keepdims=True), 0.0, converted)

    def compute_output_spec(self, boxes, image):
        return keras.KerasTensor(boxes.shape, "float32")

    def get_config(self):
        return {**super().get_config(), "frame": self.frame, "to_frame": self.to_frame}


def fpn_of(config):
    """The FPN entry of ``config``; a ConfigError when BACKBONE_STRIDES are not the strides of its maps."""
    fpn = choices.lookup(FPNS, config.FPN, "FPN")
    if tuple(config.BACKBONE_STRIDES) != fpn.strides:
        raise ConfigError(f"BACKBONE_STRIDES {list(config.BACKBONE_STRIDES)}: FPN {config.FPN} outputs maps at "
                          f"strides {list(fpn.strides)}, where the anchors must be")
    return fpn


def model_min_confidence(config):
    """The default score threshold of the inference model: min(DETECTION_MIN_CONFIDENCE,
    EVAL_MIN_CONFIDENCE). A lower threshold never changes which detections pass a higher one
    (the NMS only lets a box suppress lower-scoring ones), so filtering after is exact."""
    return min(config.DETECTION_MIN_CONFIDENCE, config.EVAL_MIN_CONFIDENCE)


class Detector:
    """Builds the models for ``config``.

    batch_size: static images per call (default IMAGES_PER_GPU, the per-replica batch).
    training: also build ``training_model`` (inference_model is always built).
    backbone_weights: None (random initialisation; nothing is downloaded: use it whenever
        weights will be loaded anyway), "imagenet" or a backbone weights file, for a fresh
        training run (tools/train.py passes BACKBONE_WEIGHTS then).
    min_confidence: the inference model's score threshold, default the lower of
        DETECTION_MIN_CONFIDENCE and EVAL_MIN_CONFIDENCE, so one model serves pictures and
        evaluation (the Predictor filters its outputs at the threshold it is asked for).
    padding_free: the inference model's box head runs on the proposals that exist and its
        mask head on the detections that exist (the largest count in the batch; dynamic
        shapes, detection/layers/padding.py), not on every padded slot. The outputs keep
        their static sizes and the same values on the real rows (mask rows past
        num_detections are zero). False: the heads on every slot, all shapes static, for the
        SavedModel export (detection/export.py) and XLA; the Predictor, the AP callback and
        the tools other than export run padding-free.
    """

    def __init__(self, config, batch_size=None, training=True, backbone_weights=None, min_confidence=None,
                 padding_free=True):
        self.config = config
        self.padding_free = bool(padding_free)
        self.batch_size = batch_size or config.IMAGES_PER_GPU
        self.min_confidence = model_min_confidence(config) if min_confidence is None else float(min_confidence)
        c = config
        height, width = c.IMAGE_SHAPE[0], c.IMAGE_SHAPE[1]
        b = self.batch_size
        self.inputs = {
            "image": keras.Input(batch_shape=(b, height, width, 3), name="image"),
            "image_meta": keras.Input(batch_shape=(b, c.IMAGE_META_SIZE), name="image_meta"),
        }
        self.anchors = AnchorSpec.from_config(c)
        image = self.inputs["image"]
        convention = input_convention(c)
        normalized = NormalizeImage(convention.mean, convention.std, to_bgr=convention.to_bgr,
                                    name="normalize_image")(image)
        if c.IMAGE_RESIZE_METHOD in choices.NORMALIZED_PADDING_RESIZE_METHODS:
            normalized = ZeroOutsideWindow(name="zero_padding")(normalized, self.inputs["image_meta"])
        fpn = fpn_of(c)
        backbone_maps = build_backbone(normalized, c, backbone_weights)
        if len(backbone_maps) != fpn.inputs:
            raise ConfigError(f"FPN {c.FPN} reads {fpn.inputs} backbone maps; BACKBONE {c.BACKBONE} gives "
                              f"{len(backbone_maps)} (configs/torchvision_*.yaml pair them)")
        self.feature_maps = fpn.build(backbone_maps, c.TOP_DOWN_PYRAMID_SIZE, c.TRAIN_BN)
        rcnn_maps = self.feature_maps[:fpn.roi_maps]  # the others (P6) feed only the RPN
        self.rpn_head = RPN_HEADS[c.RPN_HEAD](c)
        self.rpn_logits, self.rpn_probs, self.rpn_deltas = self.rpn_head(self.feature_maps)
        self.box_head = BOX_HEADS[c.BOX_HEAD](c)
        self.mask_head = MASK_HEADS[c.MASK_HEAD](c) if c.USE_MASK else None

        self.inference_model = self._build_inference(rcnn_maps)
        self.training_model = self._build_training(rcnn_maps) if training else None
        cache_attr_skipsets()  # its weights files and checkpoints save and load faster

    # -- graphs -------------------------------------------------------------------------

    def _proposals(self, count, name):
        c = self.config
        return ProposalLayer(self.anchors, count, pre_nms_limit=c.PRE_NMS_LIMIT, nms_threshold=c.RPN_NMS_THRESHOLD,
                             bbox_std=c.RPN_BBOX_STD_DEV, frame=c.BOX_FRAME, selection=c.PROPOSAL_SELECTION,
                             score_threshold=c.RPN_SCORE_THRESHOLD, name=name)(
            self.rpn_probs, self.rpn_deltas, self.inputs["image"], self.inputs["image_meta"])

    def _build_inference(self, rcnn_maps):
        c = self.config
        image, image_meta = self.inputs["image"], self.inputs["image_meta"]
        proposals = self._proposals(c.POST_NMS_ROIS_INFERENCE, "inference_proposals")
        # Padding-free: the heads see only the rows that exist (layers/padding.py).
        rois = TrimPaddingRows(name="inference_proposals_trim")(proposals) if self.padding_free else proposals
        _, probs, deltas = self.box_head(rois, rcnn_maps, prefix="inference")
        boxes_frame, boxes_input, boxes, class_ids, scores, num = DetectionLayer(
            c.DETECTION_MAX_INSTANCES, self.min_confidence, c.DETECTION_NMS_THRESHOLD, c.BBOX_STD_DEV,
            classes_per_roi=c.DETECTION_CLASSES_PER_ROI, frame=c.BOX_FRAME, min_size=c.DETECTION_MIN_SIZE,
            name="detections")(
            rois, probs, deltas, image_meta)
        proposals_input = BoxFrameConversion(c.BOX_FRAME, to_frame=False, name="proposals_input")(proposals, image)
        outputs = {"boxes": boxes, "boxes_input": boxes_input, "class_ids": class_ids, "scores": scores,
                   "num_detections": num, "proposals": proposals_input}
        if self.mask_head is not None:
            if self.padding_free:
                detected = TrimPaddingRows(name="detections_trim")(boxes_frame, num)
                mask_logits = self.mask_head(detected, rcnn_maps, prefix="inference")
                detected_ids = TrimLike(name="detection_class_ids_trim")(class_ids, detected)
                masks = SelectClassMasks(name="detection_masks_trimmed")(mask_logits, detected_ids)
                outputs["masks"] = PadRows(c.DETECTION_MAX_INSTANCES, name="detection_masks")(masks)
            else:
                mask_logits = self.mask_head(boxes_frame, rcnn_maps, prefix="inference")
                outputs["masks"] = SelectClassMasks(name="detection_masks")(mask_logits, class_ids)
        return keras.Model(dict(self.inputs), outputs, name="detector_inference")

    def _build_training(self, rcnn_maps):
        c = self.config
        b, m = self.batch_size, c.MAX_GT_INSTANCES
        inputs = dict(self.inputs)
        inputs["gt_class_ids"] = keras.Input(batch_shape=(b, m), dtype="int32", name="gt_class_ids")
        inputs["gt_boxes"] = keras.Input(batch_shape=(b, m, 4), name="gt_boxes")
        inputs["gt_masks"] = keras.Input(batch_shape=(b, m, None, None), name="gt_masks")
        image = inputs["image"]
        gt_boxes = BoxFrameConversion(c.BOX_FRAME, name="gt_boxes_in_frame")(inputs["gt_boxes"], image)

        rpn_labels, rpn_target_deltas = RPNTargetLayer(
            self.anchors, c.BOX_FRAME, c.RPN_POSITIVE_IOU, c.RPN_NEGATIVE_IOU, c.RPN_MATCH_LOW_QUALITY,
            c.RPN_TRAIN_ANCHORS_PER_IMAGE, c.RPN_POSITIVE_FRACTION, c.RPN_BBOX_STD_DEV, name="rpn_targets")(
            image, inputs["gt_class_ids"], gt_boxes)
        proposals = self._proposals(c.POST_NMS_ROIS_TRAINING, "training_proposals")
        rois, target_class_ids, target_deltas, target_masks, roi_weights = DetectionTargetLayer(
            c.TRAIN_ROIS_PER_IMAGE, c.ROI_POSITIVE_RATIO, c.ROI_POSITIVE_IOU, c.ROI_NEGATIVE_IOU, c.BBOX_STD_DEV,
            c.MASK_SHAPE, aligned_masks=roi_align_mode(c.ROI_ALIGN_MODE).aligned_masks, use_mask=c.USE_MASK,
            mini_mask_shape=c.MINI_MASK_SHAPE, name="rcnn_targets")(
            proposals, inputs["gt_class_ids"], gt_boxes, inputs["gt_masks"])
        class_logits, _, deltas = self.box_head(rois, rcnn_maps, prefix="training")

        w = c.LOSS_WEIGHTS
        losses = [
            WeightedLoss("rpn_class_loss", w["rpn_class_loss"])(rpn_labels, self.rpn_logits),
            WeightedLoss("rpn_bbox_loss", w["rpn_bbox_loss"])(rpn_labels, rpn_target_deltas, self.rpn_deltas),
            WeightedLoss("rcnn_class_loss", w["rcnn_class_loss"])(target_class_ids, class_logits, roi_weights),
            WeightedLoss("rcnn_bbox_loss", w["rcnn_bbox_loss"])(target_class_ids, target_deltas, deltas),
        ]
        if self.mask_head is not None:
            # Only positives train the mask head, and the sampler puts them first, at most
            # int(T x ROI_POSITIVE_RATIO): run the (costly) head on those rows only.
            n = max(1, int(c.TRAIN_ROIS_PER_IMAGE * c.ROI_POSITIVE_RATIO))
            mask_logits = self.mask_head(rois[:, :n], rcnn_maps, prefix="training")
            losses.append(WeightedLoss("mask_loss", w["mask_loss"])(
                target_class_ids[:, :n], target_masks[:, :n], mask_logits))
        return keras.Model(inputs, losses, name="detector_training")

    # -- training -----------------------------------------------------------------------

    def compile(self, optimizer, **compile_args):
        """Compiles ``training_model`` with ``optimizer`` (the losses are its own, added by
        ``add_loss``: no ``loss=``) and builds the optimizer's variables now, over the
        trainable weights. ``compile_args``: keras.Model.compile's others (e.g. jit_compile).

        Why build now: an optimizer with slots (SGD with momentum, Adam) otherwise creates
        them inside the first training step, and TensorFlow then traces that step twice (the
        tiny shapes detector's first step at 4 images a batch: 20.4 -> 12.0 CPU s,
        bench/first_step.py in docs/BENCHMARKS.md). Call it
        under the strategy's scope when there is one; tools/train.py builds its optimizer
        the same way (detection/engine/trainer.py).
        """
        if self.training_model is None:
            raise ValueError("Detector(training=False) has no training model to compile")
        self.training_model.compile(optimizer, **compile_args)
        optimizer = self.training_model.optimizer  # under mixed_float16, Keras' LossScaleOptimizer around it
        if not optimizer.built:
            optimizer.build(self.training_model.trainable_variables)

    # -- weights ------------------------------------------------------------------------

    def save_weights(self, path):
        """Saves every weight to a Keras ``.weights.h5`` file (via the inference model),
        atomically: written beside it under a temporary name, then renamed."""
        path = str(path)
        if not path.endswith(".weights.h5"):
            raise ValueError(f"{path}: a weights file name must end in .weights.h5")
        temporary = f"{path[:-len('.weights.h5')]}.tmp-{os.getpid()}.weights.h5"
        self.inference_model.save_weights(temporary)
        os.replace(temporary, path)

    def load_weights(self, path, exclude=(), log=print):
        """Loads a weights file; returns the LoadReport of a legacy or torchvision file (None for ours).

        path: a ``.weights.h5`` of ``save_weights`` (loaded by structure), a legacy Keras 2
        ``.h5`` such as matterport's (loaded by layer name, see detection/modeling/weights.py),
        or a torchvision ``.pth`` (a state_dict or a checkpoint holding one, mapped by name onto
        the torchvision-named layers: detection/modeling/torchvision_weights.py); what was
        loaded is passed to ``log``. exclude: layer names or regular expressions not to load
        from a legacy file (matterport's ``exclude=``).
        """
        path = str(path)
        if is_pth(path):
            if exclude:
                raise WeightsError(f"{path}: --exclude applies to legacy Keras 2 .h5 files; a .pth loads whole "
                                   "(its class-specific layers are left out by themselves when NUM_CLASSES differs)")
            report = load_state_dict_file(self.inference_model, path, self.config.NUM_CLASSES)
            if log:
                log(report.summary())
            return report
        if is_legacy_h5(path):
            report = load_weights_by_name(self.inference_model, path, exclude, self.config.NUM_CLASSES)
            if log:
                log(report.summary())
            return report
        if exclude:
            raise WeightsError(f"{path}: --exclude applies to legacy Keras 2 .h5 files (loaded by layer name); "
                               "this is a .weights.h5 file, loaded whole")
        self.inference_model.load_weights(path)
        return None
