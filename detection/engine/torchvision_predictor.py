"""A Predictor for torchvision's models (config.TORCHVISION_MODEL): the same interface as
detection/engine/predictor.py's Predictor (``detect``, ``predict_records``, ``categories``,
``score_threshold``), so tools/infer.py, tools/eval_coco.py and the library run a torchvision
``.pth`` as they run our weights. ``Predictor.from_weights`` hands such a config here.

Images run one at a time, at their own size (torchvision's GeneralizedRCNNTransform pads each
batch to its largest image; one image per batch gives each image torchvision's result alone).
Detections below ``score_threshold`` (default DETECTION_MIN_CONFIDENCE) are dropped after
torchvision's own post-processing, which runs at DETECTION_MIN_CONFIDENCE or the threshold,
whichever is lower.
"""

import numpy as np
from tqdm import tqdm

from detection.categories import model_categories
from detection.data.images import ImageReadError, read_image
from detection.data.validation import ValidationReport
from detection.engine.predictor import Predictor, inference_config
from detection.modeling.torchvision_rcnn import TorchvisionRCNN


class TorchvisionPredictor:
    """Runs a TorchvisionRCNN on records or arrays; results as Predictor's."""

    def __init__(self, config, model=None, score_threshold=None, mask_threshold=0.5, batch_size=None):
        self.config = inference_config(config)
        self.score_threshold = (self.config.DETECTION_MIN_CONFIDENCE if score_threshold is None
                                else float(score_threshold))
        if self.score_threshold < self.config.DETECTION_MIN_CONFIDENCE:
            self.config = self.config.replace(DETECTION_MIN_CONFIDENCE=self.score_threshold)
        self.mask_threshold = mask_threshold
        self.batch_size = 1
        self.model = model or TorchvisionRCNN(self.config)
        self._categories = None

    @classmethod
    def from_weights(cls, config, weights_path, score_threshold=None, log=print, **unused):
        """A predictor with weights from a torchvision ``.pth`` (state_dict or checkpoint) or a
        ``.weights.h5`` written by tools/convert_weights.py."""
        predictor = cls(config, score_threshold=score_threshold)
        predictor.model.load_weights(weights_path, log=log)
        return predictor

    @property
    def categories(self):
        if self._categories is None:
            self._categories = model_categories(self.config)
        return self._categories

    # Predictor.detect (matterport's detect) needs only categories and predict_records
    detect = Predictor.detect

    def predict_records(self, records, progress=False, report=None):
        """Yields one detection dict per readable record, as Predictor.predict_records
        (boxes [N, 4] [y1, x1, y2, x2] original pixels, class_ids 1..K, scores, masks [N, H, W]
        uint8 or None, proposals empty)."""
        if hasattr(records, "records"):
            report = report or records.report
            records = records.records
        report = report or ValidationReport("inference")
        for record in tqdm(records, desc="predict", unit="img", disable=not progress):
            try:
                if record.synthetic is not None:  # shapes
                    image = record.synthetic.render()[0]
                else:
                    image = record.image_loader() if record.image_loader is not None else read_image(record.path)
            except ImageReadError as e:
                report.add("unreadable_image", str(record.path), "", str(e).split(": ", 1)[-1], once=True)
                continue
            found = self.model.detect(image)
            keep = found["scores"] >= self.score_threshold
            masks = found.get("masks")
            yield {"image_id": record.image_id, "record": record, "boxes": found["boxes"][keep],
                   "class_ids": found["class_ids"][keep], "scores": found["scores"][keep],
                   "masks": None if masks is None else (masks[keep] >= self.mask_threshold).astype(np.uint8),
                   "proposals": np.zeros((0, 4), np.float32)}
