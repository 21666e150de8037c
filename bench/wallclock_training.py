"""Training for a wall-clock budget, then COCO AP: what bench/shapes_ap.py and bench/real_ap.py share.

    detector, run = train_for_budget(config, train_set, minutes=30)          # or max_steps=N
    metrics = evaluate_detector(config, detector, test_set)                  # at EVAL_MIN_CONFIDENCE

The learning rate follows a cosine from LEARNING_RATE to 0 over the budget, after a linear
warm-up of LR_WARMUP_STEPS steps, so the schedule ends when time does whatever the machine's
speed. Figures from such runs compare as "AP after M minutes on this machine": a machine
twice as fast, or one not shared with other jobs, does more steps in the same minutes.
"""

import math
import os
import time

import keras

from detection.data.pipeline import make_dataset
from detection.engine.predictor import Predictor
from detection.evaluation.detector_eval import evaluate_predictor
from detection.modeling.detector import Detector


class WallClockSchedule(keras.callbacks.Callback):
    """Sets the learning rate from the progress through the budget: linear warm-up over
    ``warmup_steps``, then a cosine from ``base_lr`` to 0; stops training when the budget is
    spent.

    Progress is elapsed / ``seconds``, or steps / ``max_steps`` when that is further along
    (``max_steps`` None: time only), so a step-limited run (tests) is as deterministic as its
    steps and still ends its cosine at 0.
    """

    def __init__(self, base_lr, seconds, warmup_steps=100, max_steps=None):
        super().__init__()
        self.base_lr, self.seconds, self.warmup_steps = base_lr, seconds, warmup_steps
        self.max_steps = max_steps
        self.start = None
        self.steps = 0

    def progress(self):
        """Fraction of the budget spent, in [0, 1]."""
        fraction = (time.monotonic() - self.start) / self.seconds
        if self.max_steps:
            fraction = max(fraction, self.steps / self.max_steps)
        return min(fraction, 1.0)

    def on_train_begin(self, logs=None):
        self.start = time.monotonic()

    def on_train_batch_begin(self, batch, logs=None):
        lr = self.base_lr * 0.5 * (1.0 + math.cos(math.pi * self.progress()))
        if self.steps < self.warmup_steps:
            lr *= (self.steps + 1) / self.warmup_steps
        self.model.optimizer.learning_rate.assign(lr)

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1
        if self.progress() >= 1.0:
            self.model.stop_training = True


def train_for_budget(config, train_set, minutes, max_steps=None, optimizer=None, verbose=2):
    """Trains a fresh Detector on ``train_set`` for ``minutes`` of wall time (or ``max_steps``
    steps, whichever ends first).

    config: the Config (its BACKBONE_WEIGHTS are not loaded: from random initialisation).
    optimizer: a Keras optimizer with a float learning rate; default the trainer's
        (detection.engine.optimizer.make_optimizer: SGD, momentum, clipping, coupled L2).
    Returns (detector, run) with run = {"train_seconds", "steps", "images_seen",
    "last_epoch_logs": the losses and diagnostics averaged over the last logged epoch
    (STEPS_PER_EPOCH steps, or the partial one the budget ended in)}.
    """
    from detection.engine.optimizer import make_optimizer

    keras.utils.set_random_seed(config.SEED)
    detector = Detector(config)
    if optimizer is None:
        optimizer = make_optimizer(config, config.LEARNING_RATE)
    detector.training_model.compile(optimizer)
    schedule = WallClockSchedule(config.LEARNING_RATE, minutes * 60.0, config.LR_WARMUP_STEPS, max_steps)
    started = time.monotonic()
    history = detector.training_model.fit(make_dataset(train_set, config, training=True), epochs=10**6,
                                          steps_per_epoch=config.STEPS_PER_EPOCH, callbacks=[schedule],
                                          verbose=verbose, shuffle=False)  # the dataset shuffles itself
    train_seconds = time.monotonic() - started
    last = {k: float(v[-1]) for k, v in history.history.items() if v}
    return detector, {"train_seconds": round(train_seconds, 1), "steps": schedule.steps,
                      "images_seen": schedule.steps * config.BATCH_SIZE, "last_epoch_logs": last}


def evaluate_detector(config, detector, dataset, score_threshold=None, log=print):
    """COCO metrics of ``detector`` on every record of ``dataset``: {"bbox": {...}, maybe "segm"}.

    Detections down to ``score_threshold`` count (default EVAL_MIN_CONFIDENCE, as
    tools/eval_coco.py: COCO AP needs the low-scoring ones too).
    """
    threshold = config.EVAL_MIN_CONFIDENCE if score_threshold is None else score_threshold
    # The predictor's inference model shares the trained weights (no copy, no fold).
    predictor = Predictor(config, detector=detector, score_threshold=threshold)
    metrics, _ = evaluate_predictor(predictor, dataset, progress=False, log=log)
    return metrics


def load_average():
    """The 1-minute load average (None where the OS has none): how shared the cores were."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None
