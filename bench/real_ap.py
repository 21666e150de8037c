"""Trains from random initialisation on real datasets (bccd, raccoon) for a wall-clock budget
each, then measures COCO AP on their held-out splits.

    python bench/real_ap.py --datasets bccd raccoon --minutes 30 --data ../shared/data --json real_ap.json

Each dataset trains its config (configs/bccd.yaml, configs/raccoon.yaml; --config-dir to use
others) with the learning rate on a cosine over the budget (bench/wallclock_training.py, as
bench/shapes_ap.py), then every image of the held-out split is evaluated with COCO AP,
AP50, AP75 and AP by size at EVAL_MIN_CONFIDENCE. The configs name their data under
``data/<dataset>/...`` (relative, for a user to replace); this script reads it from --data:

    bccd     standard VOC layout: trains on ImageSets/Main/trainval.txt, tests on test.txt
    raccoon  images/ + annotations/: trains on splits/train.txt, tests on splits/test.txt

Another dataset: write <name>.yaml (its paths absolute, or under ``data/<name>/``) into a
folder and pass ``--config-dir FOLDER --datasets <name>``.

--set KEY=VALUE overrides apply to every dataset (bccd:KEY=VALUE to one). --max-steps,
--train-images and --test-images make a small run (tests). The JSON holds, per dataset, the
metrics, the config values that matter, steps, images seen, seconds and the load average
(the 2 cores may be shared: figures are "AP after M minutes on this machine").
Exit status 2 with one line on stderr when a config, a data path or a dataset is missing or wrong.
"""

import argparse
import json
import math
import os
import pathlib
import platform
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from detection.config import Config, ConfigError  # noqa: E402
from detection.data.validation import DataError  # noqa: E402

DATASETS = ("bccd", "raccoon")
# Config keys whose relative "data/..." paths are rewritten to --data.
PATH_KEYS = ("TRAIN_IMAGES", "TRAIN_ANNOTATIONS", "TRAIN_SPLIT", "VAL_IMAGES", "VAL_ANNOTATIONS", "VAL_SPLIT")
# What the JSON records of each run's config.
REPORTED_KEYS = (
    "BACKBONE", "TINY_BACKBONE_WIDTH", "TRAIN_BN", "TOP_DOWN_PYRAMID_SIZE", "FPN_CLASSIF_FC_LAYERS_SIZE",
    "IMAGE_RESIZE_MODE", "IMAGE_MIN_DIM", "IMAGE_MAX_DIM", "RPN_ANCHOR_SCALES", "RPN_ANCHOR_RATIOS",
    "PRE_NMS_LIMIT", "POST_NMS_ROIS_TRAINING", "POST_NMS_ROIS_INFERENCE", "RPN_TRAIN_ANCHORS_PER_IMAGE",
    "TRAIN_ROIS_PER_IMAGE", "IMAGES_PER_GPU", "LEARNING_RATE", "LR_WARMUP_STEPS", "WEIGHT_DECAY",
    "GRADIENT_CLIP_NORM", "AUGMENTATION", "MIXED_PRECISION", "EVAL_MIN_CONFIDENCE", "DETECTION_MAX_INSTANCES",
    "SEED", "STEPS_PER_EPOCH", "EPOCHS",
)
METRICS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR100")


def with_data_root(config, root):
    """``config`` with every relative path key under ``data/`` moved to ``root`` (the folder
    holding bccd/ and raccoon/); absolute paths and other relative ones are left as given."""
    changes = {}
    for key in PATH_KEYS:
        value = getattr(config, key)
        if value and not os.path.isabs(value) and pathlib.PurePosixPath(value).parts[:1] == ("data",):
            changes[key] = str(pathlib.Path(root, *pathlib.PurePosixPath(value).parts[1:]))
    return config.replace(**changes) if changes else config


def overrides_for(name, overrides, datasets=DATASETS):
    """The --set items for dataset ``name``: KEY=VALUE for all, NAME:KEY=VALUE for one
    (NAME one of ``datasets`` or of bccd, raccoon)."""
    chosen = []
    for item in overrides:
        prefix, sep, rest = item.partition(":")
        if sep and (prefix in datasets or prefix in DATASETS):
            if prefix == name:
                chosen.append(rest)
        else:
            chosen.append(item)
    return chosen


def load_config(name, args):
    config = Config.from_yaml(str(pathlib.Path(args.config_dir) / f"{name}.yaml"),
                              overrides=overrides_for(name, args.set, args.datasets))
    return with_data_root(config, args.data)


def missing_data_path(config):
    """The first (key, path) of the config's data paths that does not exist, or None."""
    for key in PATH_KEYS:
        value = getattr(config, key)
        if value and not os.path.exists(value):
            return key, value
    return None


def first(dataset, n):
    """The dataset with its first ``n`` records only (None: all)."""
    if n is None:
        return dataset
    import dataclasses

    return dataclasses.replace(dataset, records=list(dataset.records[:n]))


def run_dataset(name, args, log=print):
    """Trains and evaluates one dataset; returns its result dict."""
    import tensorflow as tf
    from wallclock_training import evaluate_detector, load_average, train_for_budget

    from detection.data.datasets import load_dataset
    from detection.engine.detector_training import check_same_categories, with_dataset_categories
    from detection.engine.determinism import OpDeterminism, wants_op_determinism

    config = load_config(name, args)
    train_set = load_dataset(config, "train")
    problems = train_set.report.summary(file=None)
    if train_set.num_classes != config.NUM_CLASSES:
        raise ConfigError(f"{name}: NUM_CLASSES={config.NUM_CLASSES}, the training set has "
                          f"{train_set.num_classes - 1} classes + background")
    config = with_dataset_categories(config, train_set, f"configs/{name}.yaml")
    test_set = load_dataset(config, "val")
    check_same_categories(train_set, test_set)
    train_set, test_set = first(train_set, args.train_images), first(test_set, args.test_images)
    log(f"== {name}: {len(train_set.records)} training images ({config.TRAIN_SPLIT}), "
        f"{len(test_set.records)} test images ({config.VAL_SPLIT}); budget {args.minutes:g} min"
        + (f" or {args.max_steps} steps" if args.max_steps else ""))
    load_before = load_average()
    started = time.time()
    # As tools/train.py: TF op determinism where no GPU is visible (DETERMINISTIC_OPS).
    with OpDeterminism(wants_op_determinism(config, bool(tf.config.list_logical_devices("GPU")))):
        detector, run = train_for_budget(config, train_set, args.minutes, max_steps=args.max_steps,
                                         verbose=0 if args.quiet else 2)
    load_after_training = load_average()
    eval_started = time.monotonic()
    metrics = evaluate_detector(config, detector, test_set, log=(lambda *a, **k: None) if args.quiet else log)
    if args.weights_dir:
        os.makedirs(args.weights_dir, exist_ok=True)
        detector.save_weights(os.path.join(args.weights_dir, f"{name}.weights.h5"))
    bbox = metrics["bbox"]
    return {
        "dataset": name,
        **{f"bbox_{k}": bbox[k] for k in METRICS},
        "per_category_AP": bbox.get("per_category"),
        "score_threshold": config.EVAL_MIN_CONFIDENCE,
        "minutes": args.minutes, "max_steps": args.max_steps,
        "train_seconds": run["train_seconds"], "eval_seconds": round(time.monotonic() - eval_started, 1),
        "steps": run["steps"], "images_seen": run["images_seen"],
        "seconds_per_step": round(run["train_seconds"] / max(run["steps"], 1), 3),
        "train_images": len(train_set.records), "test_images": len(test_set.records),
        "train_boxes": sum(r.num_boxes for r in train_set.records),
        "test_boxes": sum(r.num_boxes for r in test_set.records),
        "train_split": config.TRAIN_SPLIT, "test_split": config.VAL_SPLIT,
        "data_problems": problems.strip().splitlines()[1:],
        "test_data_problems": test_set.report.summary(file=None).strip().splitlines()[1:],
        "load_average": {"start": load_before, "after_training": load_after_training, "end": load_average()},
        "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)),
        "last_epoch_logs": {k: round(v, 4) for k, v in run["last_epoch_logs"].items()},
        "config": {k: getattr(config, k) for k in REPORTED_KEYS},
        "overrides": overrides_for(name, args.set, args.datasets),
    }


def print_table(results, file=sys.stdout):
    print(f"{'dataset':10} {'AP':>6} {'AP50':>6} {'AP75':>6} {'APs':>6} {'APm':>6} {'APl':>6} "
          f"{'steps':>6} {'images':>7} {'train s':>8}", file=file)
    for r in results:
        cells = " ".join(f"{r[f'bbox_{k}']:6.3f}" for k in ("AP", "AP50", "AP75", "APs", "APm", "APl"))
        print(f"{r['dataset']:10} {cells} {r['steps']:6d} {r['images_seen']:7d} {r['train_seconds']:8.1f}",
              file=file)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("\n", " "),
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS),
                        help="names of <config-dir>/<name>.yaml configs (default: bccd raccoon)")
    parser.add_argument("--minutes", type=float, default=30.0, help="wall-clock training budget per dataset")
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data"),
                        help="folder holding the datasets (bccd/, raccoon/) that the configs' data/... paths "
                             "point into (default ../shared/data beside the checkout)")
    parser.add_argument("--config-dir", default=str(REPO / "configs"), help="folder of <dataset>.yaml configs")
    parser.add_argument("--set", action="append", nargs="+", default=[], metavar="[DATASET:]KEY=VALUE",
                        help="config override, value parsed as YAML (repeatable); DATASET: limits it to one")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--weights-dir", help="also save each trained model here as <dataset>.weights.h5")
    parser.add_argument("--max-steps", type=int, help="also stop after this many steps (the cosine ends there)")
    parser.add_argument("--train-images", type=int, help="train on the first N images of the split only")
    parser.add_argument("--test-images", type=int, help="evaluate on the first N images of the split only")
    parser.add_argument("--quiet", action="store_true", help="no per-epoch lines or COCO tables")
    args = parser.parse_args(argv)
    args.set = [item for group in args.set for item in group]
    for flag in ("max_steps", "train_images", "test_images"):
        if getattr(args, flag) is not None and getattr(args, flag) < 1:
            parser.error(f"--{flag.replace('_', '-')} must be at least 1")
    if args.minutes <= 0:
        parser.error("--minutes must be positive")
    return args


def main(argv=None):
    args = parse_args(argv)
    for name in args.datasets:
        config_path = pathlib.Path(args.config_dir) / f"{name}.yaml"
        if not config_path.is_file():
            print(f"real_ap: {config_path}: no config for dataset {name!r} (--config-dir)", file=sys.stderr)
            return 2
        try:
            missing = missing_data_path(load_config(name, args))
        except ConfigError as e:
            print(f"real_ap: {name}: {e}".splitlines()[0], file=sys.stderr)
            return 2
        if missing:
            print(f"real_ap: {name}: {missing[0]} {missing[1]}: not found (--data names the folder "
                  f"holding the datasets; a config's own absolute paths are used as they are)", file=sys.stderr)
            return 2
    results = []
    for name in args.datasets:
        try:
            results.append(run_dataset(name, args))
        except (ConfigError, DataError) as e:
            print(f"real_ap: {name}: {e}".splitlines()[0], file=sys.stderr)
            return 2
        print_table(results[-1:])
    output = {"command": "python bench/real_ap.py " + " ".join(sys.argv[1:] if argv is None else argv),
              "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
              "results": results}
    print_table(results)
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(output, indent=2, default=_json_default) + "\n")
    return 0


def _json_default(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


if __name__ == "__main__":
    sys.exit(main())
