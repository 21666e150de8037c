"""Images per second of the whole training input pipeline: read or render, decode, augment,
resize, pad, mini masks, batch (detection.data.pipeline.make_dataset, training=True).

    python bench/input_pipeline.py [--datasets shapes raccoon bccd coco_tiny] [--runs 5]
                                   [--batches 20] [--warmup 5] [--no-augment] [--json OUT]

Each dataset runs at the sizes of its shipped config: shapes with configs/shapes.yaml (128 px,
batch 4, mini masks); raccoon and bccd with configs/voc_r50_fpn.yaml (600..1024 px, batch 2,
no masks); coco_tiny with configs/coco_r50_fpn.yaml (800..1024 px, batch 2, mini masks from
polygons and crowd RLE). Unless --no-augment, the training augmentation below is added (the
shipped configs have none): flip, scale jitter, brightness/contrast. A run pulls --batches
batches after --warmup batches pulled once per dataset; printed: each run's images/s and the
median. The real datasets come from ../shared/data (skipped when absent).

With --model-steps N the same run then times N training steps of the config's detector
(random initialisation, BACKBONE_WEIGHTS none: the speed is the same) on a batch taken from
that pipeline, after 2 warm-up steps, and prints input images/s over training images/s: the
input must outrun the model at least 4x.
"""

import argparse
import json
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")

from detection.config import Config  # noqa: E402
from detection.data.datasets import load_dataset  # noqa: E402
from detection.data.pipeline import make_dataset  # noqa: E402

SHARED = os.path.join(REPO, "..", "shared", "data")
AUGMENTATION = [
    {"name": "HorizontalFlip", "p": 0.5},
    {"name": "Affine", "p": 0.5, "scale": [0.8, 1.2]},
    {"name": "RandomBrightnessContrast", "p": 0.5},
]


def bench_configs():
    """{name: (config file, overrides of the dataset keys, folder that must exist)}."""
    def shared(*parts):
        return os.path.join(SHARED, *parts)

    return {
        "shapes": ("shapes.yaml", {}, None),
        "raccoon": ("voc_r50_fpn.yaml", {
            "NUM_CLASSES": 2, "TRAIN_IMAGES": shared("raccoon", "images"),
            "TRAIN_ANNOTATIONS": shared("raccoon", "annotations"),
            "TRAIN_SPLIT": shared("raccoon", "splits", "train.txt")}, shared("raccoon")),
        "bccd": ("voc_r50_fpn.yaml", {
            "NUM_CLASSES": 4, "TRAIN_IMAGES": shared("bccd", "JPEGImages"),
            "TRAIN_ANNOTATIONS": shared("bccd", "Annotations"),
            "TRAIN_SPLIT": shared("bccd", "ImageSets", "Main", "train.txt")}, shared("bccd")),
        "coco_tiny": ("coco_r50_fpn.yaml", {
            "TRAIN_IMAGES": shared("coco_tiny", "train2017"),
            "TRAIN_ANNOTATIONS": shared("coco_tiny", "annotations", "instances_train2017.json")},
            shared("coco_tiny")),
    }


def measure(config, runs, batches, warmup):
    """[images/s of each run] of make_dataset(training=True) for config's training subset."""
    dataset = load_dataset(config, "train")
    iterator = iter(make_dataset(dataset, config, training=True))
    for _ in range(warmup):
        next(iterator)
    rates = []
    for _ in range(runs):
        start = time.perf_counter()
        for _ in range(batches):
            next(iterator)
        rates.append(batches * config.BATCH_SIZE / (time.perf_counter() - start))
    return rates, dataset


def measure_train_step(config, dataset, steps):
    """Median images/s of the detector's training step for ``config`` on one fixed batch."""
    import models  # bench/models.py (imports TensorFlow, so only when asked)

    config = config.replace(BACKBONE_WEIGHTS="none")
    batch = next(iter(make_dataset(dataset, config, training=True)))
    times = models.time_train_steps(models.detector_training(config), batch, steps, warmup=2)
    return config.BATCH_SIZE / statistics.median(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=list(bench_configs()), choices=list(bench_configs()))
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--batches", type=int, default=20, help="batches per run")
    parser.add_argument("--warmup", type=int, default=5, help="batches pulled before timing")
    parser.add_argument("--no-augment", action="store_true", help="time without augmentation")
    parser.add_argument("--json", metavar="OUT", help="also write the results as JSON")
    parser.add_argument("--model-steps", type=int, default=0,
                        help="also time N training steps of the config's detector (0: skip)")
    args = parser.parse_args(argv)

    results = {"cpu_count": os.cpu_count(), "augmentation": [] if args.no_augment else AUGMENTATION, "datasets": {}}
    for name in args.datasets:
        config_file, overrides, folder = bench_configs()[name]
        if folder is not None and not os.path.isdir(folder):
            print(f"{name:10s} skipped: {folder} is absent")
            continue
        config = Config.from_yaml(os.path.join(REPO, "configs", config_file)).replace(
            **overrides, AUGMENTATION=[] if args.no_augment else AUGMENTATION)
        rates, dataset = measure(config, args.runs, args.batches, args.warmup)
        median = statistics.median(rates)
        results["datasets"][name] = {
            "config": config_file, "images": len(dataset), "batch_size": config.BATCH_SIZE,
            "input_shape": ([config.IMAGE_MAX_DIM, config.IMAGE_MAX_DIM] if config.IMAGE_RESIZE_MODE == "square"
                            else None),
            "masks": config.USE_MASK, "images_per_second_runs": [round(r, 1) for r in rates],
            "images_per_second_median": round(median, 1)}
        print(f"{name:10s} {config_file:18s} batch {config.BATCH_SIZE} input {config.IMAGE_MAX_DIM} px "
              f"masks {'yes' if config.USE_MASK else 'no ':3s}  images/s median {median:7.1f}  "
              f"runs {' '.join(f'{r:.1f}' for r in rates)}", flush=True)
        if args.model_steps:
            train_rate = measure_train_step(config, dataset, args.model_steps)
            results["datasets"][name]["train_images_per_second"] = round(train_rate, 2)
            results["datasets"][name]["input_over_train"] = round(median / train_rate, 1)
            print(f"{'':10s} training step of the same config: {train_rate:.2f} images/s; "
                  f"input / train = {median / train_rate:.1f}x", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return results


if __name__ == "__main__":
    main()
