"""Batched prediction on records or images, with outputs in original-image pixels.

    predictor = Predictor.from_weights(config, "runs/shapes/final.weights.h5")
    for det in predictor.predict_records(dataset, progress=True):
        det["boxes"]      # [N, 4] float32 [y1, x1, y2, x2], original-image pixels
        det["class_ids"]  # [N] int32 contiguous 1..K (Dataset.category_ids maps them back)
        det["scores"]     # [N] float32, descending
        det["masks"]      # None, or [N, H, W] uint8 {0, 1} at the original image size
        det["proposals"]  # [P, 4] float32 RPN proposals, original-image pixels, by score

The last partial batch is padded (the model's batch size is static) and the padding dropped.
"""

import cv2
import numpy as np
import tensorflow as tf
from tqdm import tqdm

from detection.core.image_meta import boxes_to_original
from detection.data.pipeline import make_inference_batches
from detection.modeling.detector import Detector
from detection.modeling.folding import fold_batch_norms


class Predictor:
    """Runs an inference-only Detector of a fixed batch size (default config.IMAGES_PER_GPU)."""

    def __init__(self, config, detector=None, batch_size=None, mask_threshold=0.5, fold_batch_norm=False):
        """detector: a Detector to run (default: a new one, random weights until loaded).

        fold_batch_norm: fold the BatchNormalizations into their convolutions now (see
        detection.modeling.folding): on ResNet-50-FPN at 832 x 1344, 26 % less op time per
        image on CPU, the same outputs within float32 rounding. The fold copies the weights it touches as they are now, so
        use it only when the detector's weights will not change (not during training, where
        the AP callback shares the training weights).
        """
        self.config = config
        self.batch_size = batch_size or config.IMAGES_PER_GPU
        self.detector = detector or Detector(config, batch_size=self.batch_size, training=False)
        self.mask_threshold = mask_threshold
        model = self.detector.inference_model
        if fold_batch_norm:
            model, _ = fold_batch_norms(model)
        self.model = model  # what predict_batch runs
        self._forward = tf.function(lambda inputs: model(inputs, training=False), reduce_retracing=True)

    @classmethod
    def from_weights(cls, config, weights_path, batch_size=None, fold_batch_norm=True):
        """A Predictor with weights from a ``.weights.h5`` file saved by Detector.save_weights,
        BatchNormalizations folded (``fold_batch_norm``, see __init__)."""
        detector = Detector(config, batch_size=batch_size, training=False)  # None: IMAGES_PER_GPU
        detector.load_weights(weights_path)
        return cls(config, detector=detector, batch_size=batch_size, fold_batch_norm=fold_batch_norm)

    def predict_batch(self, inputs):
        """inputs: {"image": [B, H, W, 3], "image_meta": [B, 12]} with B = batch_size ->
        the inference model's outputs as numpy arrays (see detection.modeling.detector)."""
        outputs = self._forward({k: tf.convert_to_tensor(inputs[k], tf.float32) for k in ("image", "image_meta")})
        outputs["proposals_original"] = boxes_to_original(outputs["proposals"], inputs["image_meta"])
        return {k: np.asarray(v) for k, v in outputs.items()}

    def predict_records(self, records, batch_size=None, progress=False, report=None):
        """Yields one detection dict per readable record (see the module docstring), in order.

        records: a detection.data.records.Dataset or a list of Records. Unreadable images are
        skipped and counted in ``report`` (default: the Dataset's report).
        """
        if batch_size not in (None, self.batch_size):
            raise ValueError(f"this Predictor runs batches of {self.batch_size}, not {batch_size}")
        total = len(records.records if hasattr(records, "records") else records)
        bar = tqdm(total=total, desc="predict", unit="img", disable=not progress)
        for batch in make_inference_batches(records, self.config, self.batch_size, report):
            outputs = self.predict_batch(batch.inputs)
            for i, record in enumerate(batch.records):
                yield self._one_image(outputs, i, record)
            bar.update(batch.num_real)
        bar.close()

    def _one_image(self, outputs, i, record):
        n = int(outputs["num_detections"][i])
        boxes = outputs["boxes"][i, :n]
        result = {
            "image_id": record.image_id,
            "record": record,
            "boxes": boxes,
            "class_ids": outputs["class_ids"][i, :n],
            "scores": outputs["scores"][i, :n],
            "masks": None,
            "proposals": _drop_padding(outputs["proposals_original"][i], outputs["proposals"][i]),
        }
        if "masks" in outputs:
            result["masks"] = paste_masks(outputs["masks"][i, :n], boxes, record.height, record.width,
                                          self.mask_threshold)
        return result


def _drop_padding(boxes, input_boxes):
    keep = (input_boxes[:, 2] > input_boxes[:, 0]) & (input_boxes[:, 3] > input_boxes[:, 1])
    return boxes[keep]


def paste_masks(masks, boxes, height, width, threshold=0.5):
    """Pastes box-relative soft masks into full images.

    masks: [N, h, w] float probabilities covering each box; boxes: [N, 4] [y1, x1, y2, x2]
    in the target image's pixels; height, width: the target image size.
    Returns [N, height, width] uint8 {0, 1}.
    """
    out = np.zeros((len(masks), height, width), np.uint8)
    for k, (mask, box) in enumerate(zip(masks, boxes)):
        y1, x1 = int(np.floor(box[0])), int(np.floor(box[1]))
        y2, x2 = int(np.ceil(box[2])), int(np.ceil(box[3]))
        if y2 <= y1 or x2 <= x1:
            continue
        # Resize over the integer-aligned span, then clip it to the image.
        resized = cv2.resize(mask.astype(np.float32), (x2 - x1, y2 - y1), interpolation=cv2.INTER_LINEAR)
        ty1, tx1, ty2, tx2 = max(y1, 0), max(x1, 0), min(y2, height), min(x2, width)
        if ty2 <= ty1 or tx2 <= tx1:
            continue
        crop = resized[ty1 - y1:ty2 - y1, tx1 - x1:tx2 - x1]
        out[k, ty1:ty2, tx1:tx2] = crop >= threshold
    return out
