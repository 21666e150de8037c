"""Trains the shapes detector from random initialisation for at most M minutes, then measures
COCO AP on a held-out shapes set made with another seed.

    python bench/shapes_ap.py --minutes 15 --json shapes_ap.json

Writes {"bbox_AP", "bbox_AP50", "segm_AP", "train_seconds", "steps", ...}. The learning rate
follows a cosine over the wall-clock budget (after a linear warm-up), so the schedule ends
when time does, whatever the machine's speed.
"""

import argparse
import json
import math
import os
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

from detection.config import Config  # noqa: E402
from detection.data.datasets import load_dataset  # noqa: E402
from detection.data.pipeline import make_dataset  # noqa: E402
from detection.engine.predictor import Predictor  # noqa: E402
from detection.evaluation.detector_eval import evaluate_predictor  # noqa: E402
from detection.modeling.detector import Detector  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]


class WallClockSchedule(keras.callbacks.Callback):
    """Sets the learning rate from elapsed time: linear warm-up over ``warmup_steps``, then a
    cosine from ``base_lr`` to 0 over ``seconds``; stops training when the time is up."""

    def __init__(self, base_lr, seconds, warmup_steps=100):
        super().__init__()
        self.base_lr, self.seconds, self.warmup_steps = base_lr, seconds, warmup_steps
        self.start = None
        self.steps = 0

    def on_train_begin(self, logs=None):
        self.start = time.monotonic()

    def on_train_batch_begin(self, batch, logs=None):
        fraction = min((time.monotonic() - self.start) / self.seconds, 1.0)
        lr = self.base_lr * 0.5 * (1.0 + math.cos(math.pi * fraction))
        if self.steps < self.warmup_steps:
            lr *= (self.steps + 1) / self.warmup_steps
        self.model.optimizer.learning_rate.assign(lr)

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1
        if time.monotonic() - self.start >= self.seconds:
            self.model.stop_training = True


def train_and_evaluate(config, minutes, log=print):
    """Trains ``config`` (a shapes config) for ``minutes`` and evaluates it on the val set.

    Returns (result dict, Detector)."""
    keras.utils.set_random_seed(config.SEED)
    train = load_dataset(config, "train")
    val = load_dataset(config, "val")
    detector = Detector(config)
    optimizer = keras.optimizers.SGD(config.LEARNING_RATE, momentum=config.LEARNING_MOMENTUM,
                                     global_clipnorm=config.GRADIENT_CLIP_NORM or None)
    detector.training_model.compile(optimizer)
    schedule = WallClockSchedule(config.LEARNING_RATE, minutes * 60.0, config.LR_WARMUP_STEPS)
    started = time.monotonic()
    detector.training_model.fit(make_dataset(train, config, training=True), epochs=10**6,
                                steps_per_epoch=config.STEPS_PER_EPOCH, callbacks=[schedule], verbose=2)
    train_seconds = time.monotonic() - started
    predictor = Predictor(config, detector=detector)  # its inference model shares the trained weights
    metrics, _ = evaluate_predictor(predictor, val, progress=False, log=log)
    result = {
        "bbox_AP": metrics["bbox"]["AP"], "bbox_AP50": metrics["bbox"]["AP50"],
        "bbox_AP75": metrics["bbox"]["AP75"],
        "segm_AP": metrics["segm"]["AP"] if "segm" in metrics else None,
        "train_seconds": round(train_seconds, 1), "steps": schedule.steps,
        "images_seen": schedule.steps * config.BATCH_SIZE, "val_images": len(val.records),
    }
    return result, detector


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=15.0, help="wall-clock training budget")
    parser.add_argument("--config", default=str(REPO / "configs" / "shapes.yaml"))
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    parser.add_argument("--json", help="write the result here")
    parser.add_argument("--weights", help="also save the trained weights here (.weights.h5)")
    args = parser.parse_args(argv)
    config = Config.from_yaml(args.config, overrides=args.set)
    result, detector = train_and_evaluate(config, args.minutes)
    if args.weights:
        detector.save_weights(args.weights)
    print(json.dumps(result, indent=2))
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
