"""train_detector: a detector trained on the dataset its config describes, in one call.

    config = Config.from_yaml("configs/shapes.yaml")
    result = train_detector(config, "runs/shapes")
    result.final_weights, result.config     # config.yaml of the run: classes and ids recorded

What tools/train.py does after parsing its flags: load the training (and validation) set and
report its problems, check NUM_CLASSES, record the training set's CLASS_NAMES and
CATEGORY_IDS in the run's config (so every output uses the dataset's own ids), build the
Detector (from BACKBONE_WEIGHTS only when the run starts fresh: a run that loads weights or
resumes never downloads anything), and hand it to the generic engine (trainer.train) with
the per-epoch COCO AP callback when EVAL_AP_IMAGES is set.
"""

from detection.config import ConfigError
from detection.data.datasets import load_dataset, same_files
from detection.data.pipeline import make_dataset, shard_seed
from detection.data.validation import DataError
from detection.engine import checkpoints
from detection.engine.distribute import ShardedInput, StrategyInfo, broadcast_from_chief
from detection.engine.trainer import train
from detection.modeling.detector import Detector


def with_dataset_categories(config, train_set, source="the config"):
    """The config with the training set's class names and category ids recorded; ConfigError
    when the config names others.

    Done before the val set loads: a loader that discovers names (VIA, LabelMe, VOC) then gives
    val the train set's classes and ids, whatever classes val happens to hold."""
    names, ids = list(train_set.class_names), [int(c) for c in train_set.category_ids]
    for key, ours in (("CLASS_NAMES", names), ("CATEGORY_IDS", ids)):
        given = getattr(config, key)
        if given is not None and list(given) != ours:
            raise ConfigError(f"{source}: {key} differs from the training set's ({train_set.name})\n"
                              f"{key}={list(given)!r}: expected {ours!r} (or leave it out)")
    return config.replace(CLASS_NAMES=names, CATEGORY_IDS=ids)


def check_same_categories(train_set, val_set):
    """DataError when the val set's classes are not the training set's (evaluation would then
    map class k to the wrong category)."""
    train_categories = list(zip(train_set.class_names, train_set.category_ids))
    val_categories = list(zip(val_set.class_names, val_set.category_ids))
    if train_categories != val_categories:
        raise DataError(f"{val_set.source}: the val set's {len(val_categories)} categories differ from the "
                        f"training set's {len(train_categories)} (first val {val_categories[:3]}, first train "
                        f"{train_categories[:3]}); give both subsets one category list")


def has_val_set(config):
    """Whether the config describes a validation set and wants validation steps."""
    described = (config.DATASET_FORMAT == "shapes" or config.DATASET_FORMAT.startswith("python:")
                 or config.VAL_ANNOTATIONS)
    return bool(config.VALIDATION_STEPS and described)


def train_detector(config, output_dir, weights=None, exclude=(), resume=False, strict=None, source="the config",
                   **options):
    """Trains a Detector on the datasets ``config`` describes; returns trainer.TrainResult.

    weights: None (BACKBONE_WEIGHTS for a fresh run), "last" (newest checkpoint under
    ``output_dir``), a checkpoint folder, a ``.weights.h5`` or a legacy Keras 2 ``.h5`` (loaded
    by layer name without ``exclude``). resume: continue from the newest checkpoint.
    strict: any data problem is an error (default STRICT_DATA). source: names the config in
    errors. options: trainer.train's (strategy, strategy_info, seed, debug, keep_checkpoints,
    callbacks, verbose, ...).
    """
    train_set = load_dataset(config, "train", strict=strict)
    train_set.report.summary()
    if train_set.num_classes != config.NUM_CLASSES:
        raise ConfigError(f"{source}: NUM_CLASSES does not fit the dataset's {len(train_set.class_names)} "
                          f"classes\nNUM_CLASSES={config.NUM_CLASSES}: expected {train_set.num_classes} "
                          "(classes + background)")
    config = with_dataset_categories(config, train_set, source)
    val_set = None
    if has_val_set(config) and same_files(config):
        val_set = train_set
        print(f"Dataset {config.DATASET_FORMAT}/val: the training files, loaded once")
    elif has_val_set(config):
        val_set = load_dataset(config, "val", strict=strict)
        val_set.report.summary()
        check_same_categories(train_set, val_set)

    if weights == "last":
        weights = checkpoints.find_last(output_dir)
        if weights is None:
            raise FileNotFoundError(f"--weights last: no checkpoint under {output_dir}")
    # A fresh run starts from BACKBONE_WEIGHTS (e.g. imagenet); one that loads weights (a
    # file, or the checkpoint it resumes from) never fetches them.
    fresh = weights is None and not (resume and checkpoints.find_last(output_dir))
    backbone_weights = config.BACKBONE_WEIGHTS if fresh and config.BACKBONE_WEIGHTS != "none" else None
    built = {}

    def build_detector(cfg):
        built["detector"] = Detector(cfg, backbone_weights=backbone_weights)
        return built["detector"]

    info = options.get("strategy_info") or StrategyInfo("default strategy", ("/cpu:0",), 1, 1, True)
    callbacks = list(options.pop("callbacks", ()))
    if config.EVAL_AP_IMAGES and val_set is not None:
        from detection.engine.ap_callback import CocoApCallback

        # On several workers the chief evaluates (whole val set) and sends the figures to the others.
        share = None if info.workers == 1 else (lambda values: broadcast_from_chief(options["strategy"], info, values))
        callbacks.append(CocoApCallback(lambda: built["detector"], val_set if info.is_chief else None,
                                        config.EVAL_AP_IMAGES, share=share))
    # Each worker keeps only its own share of the records (the chief also the whole val set, above).
    train_shard = train_set.shard(info.worker_index, info.workers)
    val_shard = val_set.shard(info.worker_index, info.workers) if val_set else None
    del train_set, val_set  # the whole sets: a worker keeps its shards (the AP callback its own reference)
    return train(
        build_detector, config, ShardedInput(_input_maker(train_shard, info, training=True)),
        ShardedInput(_input_maker(val_shard, info, training=False)) if val_shard else None,
        output_dir, resume=resume, weights=weights, weights_exclude=exclude, callbacks=callbacks, **options)


def _input_maker(shard_set, info, training):
    """make(config, shard) for ShardedInput: batches of this worker's records ``shard_set``."""

    said = []  # the split is said once, not at each stage's fit

    def make(config, shard):
        if (shard.index, shard.count) != (info.worker_index, info.workers):
            raise RuntimeError(f"input pipeline {shard.index} of {shard.count} on worker {info.worker_index} of "
                               f"{info.workers}: one input pipeline per worker expected")
        if training and not said:
            print(input_split_line(shard_set, shard, config), flush=True)
            said.append(True)
        return make_dataset(shard_set, config, training=training, repeat=True, batch_size=shard.batch_size,
                            seed=shard_seed(config.SEED, shard.index), start=shard.start if training else 0)

    return make


def input_split_line(shard_set, shard, config):
    """How the training data is split, said at start: which records this worker reads and what a step is."""
    replicas = config.BATCH_SIZE // shard.batch_size
    i, n = shard.index, shard.count
    where = (f"worker {i} of {n} reads images {i}, {i + n}, {i + 2 * n}, ..." if n > 1
             else "one input pipeline reads every image")
    return (f"Input: {where} ({len(shard_set)} images of {shard_set.name}); {shard.batch_size} images per replica x "
            f"{replicas} replica(s) = global batch {config.BATCH_SIZE}; an epoch is {config.STEPS_PER_EPOCH} steps = "
            f"{config.STEPS_PER_EPOCH * config.BATCH_SIZE} images over all workers")
