"""Trains the shapes detector from random initialisation for at most M minutes, then measures
COCO AP on a held-out shapes set made with another seed.

    python bench/shapes_ap.py --minutes 15 --json shapes_ap.json

Writes {"bbox_AP", "bbox_AP50", "segm_AP", "train_seconds", "steps", ...}. The learning rate
follows a cosine over the wall-clock budget (after a linear warm-up), so the schedule ends
when time does, whatever the machine's speed (bench/wallclock_training.py, shared with
bench/real_ap.py). COCO AP counts detections down to EVAL_MIN_CONFIDENCE (0.05); the figures
in docs/BENCHMARKS.md before 2026-11-30 were taken at DETECTION_MIN_CONFIDENCE (0.5 in
configs/shapes.yaml): `--set EVAL_MIN_CONFIDENCE=0.5` measures as they did.
"""

import argparse
import json
import os
import pathlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
from wallclock_training import evaluate_detector, train_for_budget

from detection.config import Config
from detection.data.datasets import load_dataset

REPO = pathlib.Path(__file__).resolve().parents[1]


def train_and_evaluate(config, minutes, log=print):
    """Trains ``config`` (a shapes config) for ``minutes`` and evaluates it on the val set.

    Returns (result dict, Detector)."""
    train = load_dataset(config, "train")
    val = load_dataset(config, "val")
    # Plain Keras SGD (no L2), as when the figures in docs/BENCHMARKS.md were taken.
    optimizer = keras.optimizers.SGD(config.LEARNING_RATE, momentum=config.LEARNING_MOMENTUM,
                                     global_clipnorm=config.GRADIENT_CLIP_NORM or None)
    detector, run = train_for_budget(config, train, minutes, optimizer=optimizer)
    metrics = evaluate_detector(config, detector, val, log=log)
    result = {
        "bbox_AP": metrics["bbox"]["AP"], "bbox_AP50": metrics["bbox"]["AP50"],
        "bbox_AP75": metrics["bbox"]["AP75"],
        "segm_AP": metrics["segm"]["AP"] if "segm" in metrics else None,
        "train_seconds": run["train_seconds"], "steps": run["steps"],
        "images_seen": run["images_seen"], "val_images": len(val.records),
        "score_threshold": config.EVAL_MIN_CONFIDENCE,
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
