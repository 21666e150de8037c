"""COCO AP on a validation subset at the end of every epoch (config EVAL_AP_IMAGES)."""

import math

import keras


class CocoApCallback(keras.callbacks.Callback):
    """Adds val_bbox_AP, val_bbox_AP50 (and val_segm_AP with masks) to each epoch's logs,
    counting detections down to EVAL_MIN_CONFIDENCE (COCO's protocol) in the dataset's ids.

    detector_fn: returns the Detector being trained (its inference model shares the training
        model's weights, so nothing is copied). Its layers were built under the training's
        dtype policy, so with MIXED_PRECISION bfloat16 the evaluation runs in bfloat16 as
        tools/eval_coco.py does (detection/engine/precision.py); it runs padding-free.
    dataset: the validation Dataset; the first ``num_images`` records are evaluated. None on a
        worker that does not evaluate (several workers: only the chief does).
    share: None, or values -> values: on several workers, makes every worker log the chief's
        figures (distribute.broadcast_from_chief), so callbacks that monitor them agree.
    """

    def __init__(self, detector_fn, dataset, num_images, log=None, share=None):
        super().__init__()
        self.detector_fn = detector_fn
        self.dataset = dataset
        self.num_images = int(num_images)
        self.log = log or (lambda message: None)
        self.share = share
        self._predictor = None

    def on_epoch_end(self, epoch, logs=None):
        detector = self.detector_fn()
        keys = [f"val_{t}_{m}" for t in ("bbox", "segm")[:1 + bool(detector.config.USE_MASK)] for m in ("AP", "AP50")]
        values = self._evaluate(detector, keys) if self.dataset is not None else [math.nan] * len(keys)
        if self.share is not None:
            values = self.share(values)  # several workers: the chief's figures, on every worker
        if logs is not None:
            logs.update({key: value for key, value in zip(keys, values) if not math.isnan(value)})

    def _evaluate(self, detector, keys):
        """[AP, AP50 of each IoU type in keys' order] on the first num_images records; NaN where
        the evaluation gave no figure (e.g. no masks in the val set)."""
        from detection.engine.predictor import Predictor
        from detection.evaluation.detector_eval import evaluate_predictor

        if self._predictor is None:
            self._predictor = Predictor(detector.config, detector=detector,
                                        score_threshold=detector.config.EVAL_MIN_CONFIDENCE)
        metrics, _ = evaluate_predictor(self._predictor, self.dataset, limit=self.num_images, progress=False,
                                        log=self.log)
        values = []
        for key in keys:
            _, iou_type, metric = key.split("_")
            values.append(float(metrics[iou_type][metric]) if iou_type in metrics else math.nan)
        return values
