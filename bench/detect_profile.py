"""Where the time of ``Predictor.detect`` goes, end to end, for one image.

    python bench/detect_profile.py [--model matterport|r50] [--size 1024x1024 ...]
        [--precision float32 bfloat16] [--runs 3] [--warmup 1] [--min-confidence C] [--static]
        [--json OUT]

The model has seeded random weights and DETECTION_MIN_CONFIDENCE 0 (every RoI whose top class
is not background is a detection, up to DETECTION_MAX_INSTANCES = 100, each with a mask),
BatchNormalizations folded as Predictor.from_weights does, batch 1:

  matterport  configs/matterport_coco.yaml (ResNet-101, matterport's heads, 81 classes,
              square 1024 inputs, matterport's mask pasting)
  r50         the benchmark ResNet-50-FPN (bench/models.py, 91 classes, masks, pad64 inputs:
              800 x 1333 -> 832 x 1344)

Each call is split into: decode (read_image of the image as a JPEG, what tools/infer.py adds
before detect), pipeline (detect's in_memory_batches, or make_inference_batches' tf.data
pipeline before it: resize, pad, image_meta), model
(Predictor.predict_batch: the forward pass and its outputs to numpy), paste (the masks into
full-image masks) and rest (the result dicts). Medians over ``--runs`` calls after
``--warmup``; ``outside_share`` = (detect - model) / detect, the issue's < 10 % target.
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import cv2
import keras
import models
import numpy as np

import detection.engine.predictor as predictor_module
from detection.data.images import read_image
from detection.engine.precision import bfloat16_warning, with_precision
from detection.engine.predictor import Predictor, inference_detector


def model_config(name, height, width):
    if name == "matterport":
        config = models.matterport_config(1024)
    else:
        config = models.bench_config(mask=True, batch_size=1, size=None)
    return config.replace(DETECTION_MIN_CONFIDENCE=0.0, EVAL_MIN_CONFIDENCE=0.0)


def synthetic_image(height, width, seed=0):
    """A smooth image with texture (JPEG-compresses like a photo, unlike uniform noise)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 / width, y * 255 / height, (x + y) * 127 / (height + width)], axis=-1)
    return np.clip(base + rng.normal(0, 12, (height, width, 3)), 0, 255).astype(np.uint8)


class _Timer:
    """Wraps a function so that the seconds spent in it are summed in ``self.seconds``."""

    def __init__(self, function):
        self.function, self.seconds = function, 0.0

    def __call__(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return self.function(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - start


class _GeneratorTimer(_Timer):
    """The same for a generator function: the time spent producing its items."""

    def __call__(self, *args, **kwargs):
        iterator = self.function(*args, **kwargs)
        while True:
            start = time.perf_counter()
            try:
                item = next(iterator)
            except StopIteration:
                self.seconds += time.perf_counter() - start
                return
            self.seconds += time.perf_counter() - start
            yield item


def profile(name, height, width, precision, runs, warmup, min_confidence=0.0, padding_free=True):
    config = with_precision(model_config(name, height, width), precision).replace(
        DETECTION_MIN_CONFIDENCE=min_confidence)
    keras.utils.set_random_seed(0)  # the same random weights, so the same detections, in every run
    detector = inference_detector(config, batch_size=1, min_confidence=min_confidence, padding_free=padding_free)
    predictor = Predictor(config, detector=detector, batch_size=1, fold_batch_norm=True)
    image = synthetic_image(height, width)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "image.jpg")
        cv2.imwrite(path, image[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])
        rows = []
        for index in range(warmup + runs):
            batches = getattr(predictor_module, "in_memory_batches", None) or predictor_module.make_inference_batches
            timers = {"pipeline": _GeneratorTimer(batches),
                      "model": _Timer(predictor.predict_batch),
                      "paste": _Timer(predictor_module.MASK_PASTERS[config.MASK_PASTE])}
            saved = (batches, dict(predictor_module.MASK_PASTERS))
            setattr(predictor_module, batches.__name__, timers["pipeline"])
            # The Predictor looks its paster up in the MASK_PASTE registry.
            predictor_module.MASK_PASTERS[config.MASK_PASTE] = timers["paste"]
            predictor.predict_batch = timers["model"]
            try:
                start = time.perf_counter()
                decoded = read_image(path)
                decode = time.perf_counter() - start
                start = time.perf_counter()
                result = predictor.detect([decoded])[0]
                detect = time.perf_counter() - start
            finally:
                setattr(predictor_module, batches.__name__, saved[0])
                predictor_module.MASK_PASTERS.update(saved[1])
                del predictor.predict_batch
            if index >= warmup:
                parts = {k: t.seconds for k, t in timers.items()}
                parts["rest"] = detect - sum(parts.values())
                rows.append({"decode": decode, "detect": detect, **parts, "detections": len(result["scores"])})
    median = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    median["outside_share"] = (median["detect"] - median["model"]) / median["detect"]
    return median


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=("matterport", "r50"), default="matterport")
    parser.add_argument("--size", nargs="+", default=["1024x1024", "800x1333"], help="HEIGHTxWIDTH of the image")
    parser.add_argument("--precision", nargs="+", choices=("float32", "bfloat16"), default=["float32"])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--min-confidence", type=float, default=0.0,
                        help="DETECTION_MIN_CONFIDENCE (0: up to 100 detections; 0.7: none on random weights)")
    parser.add_argument("--static", action="store_true",
                        help="heads on every padded slot (Detector(padding_free=False), the export's path)")
    parser.add_argument("--json", metavar="OUT")
    args = parser.parse_args(argv)
    if "bfloat16" in args.precision and bfloat16_warning("bfloat16"):
        print(bfloat16_warning("bfloat16"), file=sys.stderr)
    results = []
    for size in args.size:
        height, width = (int(v) for v in size.split("x"))
        for precision in args.precision:
            row = {"model": args.model, "size": size, "precision": precision, "static": args.static,
                   "min_confidence": args.min_confidence,
                   **profile(args.model, height, width, precision, args.runs, args.warmup, args.min_confidence,
                             not args.static)}
            results.append(row)
            label = f"{args.model} {size} {precision}{' static' if args.static else ''}"
            print(f"{label}: detect {row['detect']:.3f} s = model {row['model']:.3f} + "
                  f"pipeline {row['pipeline']:.3f} + paste {row['paste']:.3f} + rest {row['rest']:.3f}; "
                  f"outside the model {100 * row['outside_share']:.1f} %; decode {row['decode']:.3f} s; "
                  f"{row['detections']} detections", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
