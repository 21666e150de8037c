"""The dataset flags every tool shares (train, eval, stat_gt, infer).

    parser = argparse.ArgumentParser()
    add_dataset_flags(parser)
    args = parser.parse_args()
    config = config_with_dataset_flags(config, args, subset="val")
    dataset = load_dataset(config, "val")

A flag overrides the config key of the subset the tool works on: --images sets TRAIN_IMAGES
for subset "train" and VAL_IMAGES for "val"; --format sets DATASET_FORMAT; --strict sets
STRICT_DATA. A flag left out leaves the config as it is.
"""

import argparse

from detection.config import KEYS
from detection.data.datasets import SUBSETS


def dataset_format(value):
    """--format's type: the value when DATASET_FORMAT accepts it, else an argparse error of one
    line listing the valid values."""
    check = KEYS["DATASET_FORMAT"].check
    try:
        return check.convert(value)
    except TypeError:
        raise argparse.ArgumentTypeError(f"{value!r}: expected {check.describe}") from None


def add_dataset_flags(parser):
    """Adds --format, --images, --annotations, --split and --strict to an argparse parser."""
    group = parser.add_argument_group("dataset (override the config's DATASET_FORMAT and TRAIN_/VAL_ keys)")
    group.add_argument("--format", type=dataset_format, default=None, metavar="FORMAT",
                       help=f"dataset format (config DATASET_FORMAT): {KEYS['DATASET_FORMAT'].check.describe}")
    group.add_argument("--images", metavar="DIR", default=None,
                       help="image folder (config TRAIN_IMAGES or VAL_IMAGES)")
    group.add_argument("--annotations", metavar="FILE_OR_DIR", default=None,
                       help="COCO or VIA JSON file, VOC annotation folder or root, or LabelMe folder "
                            "(config TRAIN_/VAL_ANNOTATIONS)")
    group.add_argument("--split", metavar="FILE", default=None,
                       help="VOC, LabelMe: file of image stems to use (config TRAIN_SPLIT or VAL_SPLIT); "
                            "with --images or --annotations and no --split, every image of that dataset")
    group.add_argument("--strict", action="store_true", default=None,
                       help="any data problem is an error naming file and field (config STRICT_DATA)")
    return parser


def config_with_dataset_flags(config, args, subset):
    """A new Config with the dataset flags in ``args`` applied to ``subset`` ("train" or "val")."""
    if subset not in SUBSETS:
        raise ValueError(f"subset must be one of {SUBSETS}, got {subset!r}")
    prefix = subset.upper()
    changes = {}
    if getattr(args, "format", None) is not None:
        changes["DATASET_FORMAT"] = args.format
    for flag, key in (("images", "IMAGES"), ("annotations", "ANNOTATIONS"), ("split", "SPLIT")):
        if getattr(args, flag, None) is not None:
            changes[f"{prefix}_{key}"] = getattr(args, flag)
    # The config's split list names images of the config's dataset; pointed at another dataset
    # without --split, all of its images are used (a VOC config's train.txt is not yours).
    if changes.keys() & {f"{prefix}_IMAGES", f"{prefix}_ANNOTATIONS"} and getattr(args, "split", None) is None:
        changes[f"{prefix}_SPLIT"] = None
    if getattr(args, "strict", None):
        changes["STRICT_DATA"] = True
    return config.replace(**changes) if changes else config
