"""COCO AP on a validation subset at the end of every epoch (config EVAL_AP_IMAGES)."""

import keras


class CocoApCallback(keras.callbacks.Callback):
    """Adds val_bbox_AP, val_bbox_AP50 (and val_segm_AP with masks) to each epoch's logs,
    counting detections down to EVAL_MIN_CONFIDENCE (COCO's protocol) in the dataset's ids.

    detector_fn: returns the Detector being trained (its inference model shares the training
        model's weights, so nothing is copied). Its layers were built under the training's
        dtype policy, so with MIXED_PRECISION bfloat16 the evaluation runs in bfloat16 as
        tools/eval_coco.py does (detection/engine/precision.py); it runs padding-free.
    dataset: the validation Dataset; the first ``num_images`` records are evaluated.
    """

    def __init__(self, detector_fn, dataset, num_images, log=None):
        super().__init__()
        self.detector_fn = detector_fn
        self.dataset = dataset
        self.num_images = int(num_images)
        self.log = log or (lambda message: None)
        self._predictor = None

    def on_epoch_end(self, epoch, logs=None):
        from detection.engine.predictor import Predictor
        from detection.evaluation.detector_eval import evaluate_predictor

        if self._predictor is None:
            detector = self.detector_fn()
            self._predictor = Predictor(detector.config, detector=detector,
                                        score_threshold=detector.config.EVAL_MIN_CONFIDENCE)
        metrics, _ = evaluate_predictor(self._predictor, self.dataset, limit=self.num_images, progress=False,
                                        log=self.log)
        if logs is not None:
            for iou_type in ("bbox", "segm"):
                if iou_type in metrics:
                    logs[f"val_{iou_type}_AP"] = float(metrics[iou_type]["AP"])
                    logs[f"val_{iou_type}_AP50"] = float(metrics[iou_type]["AP50"])
