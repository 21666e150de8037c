"""Trains a detector.

    python tools/train.py --config configs/shapes.yaml --output runs/shapes
    python tools/train.py --config configs/coco_r50_fpn.yaml --gpus 4 --weights imagenet --layers heads
    python tools/train.py --config configs/voc_r50_fpn.yaml --format voc --images VOC/JPEGImages \\
        --annotations VOC/Annotations --split VOC/ImageSets/Main/train.txt \\
        --val-split VOC/ImageSets/Main/val.txt --output runs/voc
    python tools/train.py --config C --output runs/x --resume          # continue after an interruption

Several GPUs: ``--gpus N`` (IMAGES_PER_GPU images on each, global batch IMAGES_PER_GPU x N);
without --gpus or --cpu-replicas, a config's GPU_COUNT above 1 asks for that many GPUs.
Several hosts: set TF_CONFIG on each host and run the same command (MultiWorkerMirroredStrategy).
``--cpu-replicas N`` splits the CPU into N logical devices to exercise the multi-replica path.
Everything the run writes goes to --output: config.yaml, log.csv, logs/ (TensorBoard),
checkpoints/ (one per epoch, `last`, `best`), final.weights.h5.
"""

import argparse
import os
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def parse_args(argv=None):
    from detection.data.cli import add_dataset_flags

    parser = argparse.ArgumentParser(description="Train a two-stage detector.",
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--config", required=True, help="YAML config (see configs/ and docs/config.md)")
    parser.add_argument("--output", default=None, help="run folder (default runs/<NAME>)")
    devices = parser.add_mutually_exclusive_group()
    devices.add_argument("--gpus", type=int, help="train on N GPUs (MirroredStrategy)")
    devices.add_argument("--cpu-replicas", type=int, help="split the CPU into N logical devices")
    parser.add_argument("--weights", help="imagenet (backbone), last (newest checkpoint under --output), "
                                          "a checkpoint folder, a .weights.h5 file, or a legacy Keras 2 .h5 "
                                          "(matterport's mask_rcnn_coco.h5, loaded by layer name)")
    parser.add_argument("--exclude", nargs="+", default=[], metavar="NAME_OR_REGEX",
                        help="legacy .h5 only: layers not to load (matterport's exclude=); the class-specific "
                             "layers are left out by themselves when NUM_CLASSES differs")
    parser.add_argument("--layers", help="layers to train: heads, 3+, 4+, 5+, all, or a regex (TRAIN_LAYERS)")
    parser.add_argument("--epochs", type=int, help="EPOCHS")
    parser.add_argument("--steps-per-epoch", type=int, help="STEPS_PER_EPOCH")
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --output")
    parser.add_argument("--seed", type=int, help="SEED")
    parser.add_argument("--debug", action="store_true", help="tf.debugging.enable_check_numerics: name the first op "
                                                            "that makes a NaN or inf")
    parser.add_argument("--keep-checkpoints", type=int, default=None, help="newest epoch checkpoints kept")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override (YAML value)")
    group = add_dataset_flags(parser).add_argument_group(
        "validation data (default: the config's VAL_ keys; with the dataset flags above, that data)")
    group.add_argument("--val-images", metavar="DIR", help="validation image folder (default --images)")
    group.add_argument("--val-annotations", metavar="FILE_OR_DIR",
                       help="validation annotations (default --annotations)")
    group.add_argument("--val-split", metavar="FILE", help="VOC, LabelMe: validation image stems")
    return parser.parse_args(argv)


def validation_flags(args):
    """The dataset flags for the val subset: --val-* where given, else the training ones.
    Returns (namespace, note): note says when validation runs on the training data."""
    held_out = any(getattr(args, f) is not None for f in ("val_images", "val_annotations", "val_split"))
    val = argparse.Namespace(format=args.format, strict=args.strict,
                             images=args.val_images if args.val_images is not None else args.images,
                             annotations=args.val_annotations if args.val_annotations is not None
                             else args.annotations,
                             split=args.val_split if held_out else args.split)
    given = any(getattr(args, f) is not None for f in ("images", "annotations", "split"))
    note = None
    if given and not held_out:
        note = ("validation uses the training data given by --images/--annotations/--split; "
                "--val-split or --val-images/--val-annotations give a held-out set")
    return val, note


def resolve_config(args):
    """The Config from --config, --set and the shortcut flags."""
    from detection.config import Config

    overrides = list(args.set)
    for flag, key in (("layers", "TRAIN_LAYERS"), ("epochs", "EPOCHS"), ("steps_per_epoch", "STEPS_PER_EPOCH"),
                      ("seed", "SEED")):
        if getattr(args, flag) is not None:
            overrides.append(f"{key}={getattr(args, flag)}")
    if args.weights == "imagenet":
        overrides.append("BACKBONE_WEIGHTS=imagenet")
    return Config.from_yaml(args.config, overrides=overrides)


def main(argv=None):
    args = parse_args(argv)
    from detection.config import ConfigError
    from detection.data.validation import DataError
    from detection.engine.distribute import DeviceError
    from detection.modeling.weights import WeightsError

    try:
        config = resolve_config(args)  # reads YAML only: no TF op runs yet
        # The strategy before any TF op: logical CPU devices must be set up first.
        strategy, info = make_strategy_for(args, config)
        return run_guarded(args, config, strategy, info)
    except (ConfigError, DataError, DeviceError, WeightsError, FileExistsError, FileNotFoundError) as e:
        # A ConfigError's last line names the key; other errors are one line already.
        message = str(e) if isinstance(e, ConfigError) else str(e).splitlines()[0]
        print(f"error: {message}", file=sys.stderr)
        return 2


def make_strategy_for(args, config):
    """(strategy, StrategyInfo) that the flags, the config and TF_CONFIG ask for; call before any TF op."""
    from detection.engine.distribute import make_strategy

    gpus = args.gpus
    if gpus is None and args.cpu_replicas is None and config.GPU_COUNT > 1:
        gpus = config.GPU_COUNT
        print(f"GPU_COUNT {gpus} in {args.config}: training on {gpus} GPUs (as --gpus {gpus})", flush=True)
    strategy, info = make_strategy(gpus=gpus, cpu_replicas=args.cpu_replicas, cluster_timeout=config.CLUSTER_TIMEOUT,
                                   heartbeat_timeout=config.HEARTBEAT_TIMEOUT)
    if config.GPU_COUNT not in (1, strategy.num_replicas_in_sync):
        print(f"GPU_COUNT {config.GPU_COUNT} in {args.config} replaced by the {strategy.num_replicas_in_sync} "
              f"replica(s) of --gpus / --cpu-replicas", flush=True)
    return strategy, info


def run_guarded(args, config, strategy, info):
    """run(), and on several workers one line (exit code 3) when another worker is lost."""
    from detection.engine.distribute import is_cluster_failure, lost_worker_message

    try:
        return run(args, config, strategy, info)
    except Exception as e:
        if info.workers == 1 or not is_cluster_failure(e):
            raise
        # No wait in TF's shutdown barrier for a worker that is gone: exit at once.
        print(lost_worker_message(e, info), file=sys.stderr, flush=True)
        os._exit(3)


def run(args, config, strategy, info):
    result = train_from_args(args, config, strategy, info)
    print(result.message)
    print(f"run folder: {output_folder(args, config)}")
    if result.final_weights:
        print(f"final weights: {result.final_weights}")
    return 0 if result.stopped != "non_finite" else 1


def output_folder(args, config):
    return args.output or os.path.join("runs", config.NAME)


def train_from_args(args, config, strategy, info):
    """The run the flags describe, on ``strategy``; returns trainer.TrainResult."""
    from detection.data.cli import config_with_dataset_flags
    from detection.engine.detector_training import train_detector

    output = output_folder(args, config)
    # The dataset flags go into the config the run saves, so eval and infer on its
    # config.yaml see the data (and the format) it was trained on.
    val_args, note = validation_flags(args)
    config = config_with_dataset_flags(config_with_dataset_flags(config, args, "train"), val_args, "val")
    if note:
        print(f"note: {note}", flush=True)
    weights = None if args.weights == "imagenet" else args.weights  # imagenet: BACKBONE_WEIGHTS, set above
    return train_detector(config, output, weights=weights, exclude=args.exclude, resume=args.resume,
                          strict=args.strict or None, source=args.config, strategy=strategy, strategy_info=info,
                          seed=args.seed, debug=args.debug, keep_checkpoints=args.keep_checkpoints)


if __name__ == "__main__":
    sys.exit(main())
