"""``load_dataset``: the one entry point from a config to a Dataset, whatever the format.

config.DATASET_FORMAT picks the loader (DATASET_FORMATS, the registry at the end of this
file); the subset picks the TRAIN_* or VAL_* keys:

    format   IMAGES                  ANNOTATIONS               SPLIT
    coco     image folder            instances JSON file       (unused)
    voc      image folder            folder of XML files       optional file of image stems
    via      image folder (default   VIA JSON file             (unused)
             the JSON's folder)
    labelme  image folder (default   folder of JSON files      optional file of image stems
             the JSON folder)
    shapes   (unused: synthetic images, SHAPES_* keys)
    python:MODULE:CLASS              (yours: the class's load_subset reads them, or not)

Tools apply command-line flags to these keys first (detection/data/cli.py).
"""

import dataclasses
from typing import Callable

from detection.data.validation import DataError

SUBSETS = ("train", "val")


def subset_paths(config, subset):
    """(images, annotations, split) of ``subset`` from config's TRAIN_* or VAL_* keys."""
    if subset not in SUBSETS:
        raise ValueError(f"subset must be one of {SUBSETS}, got {subset!r}")
    prefix = subset.upper()
    return (getattr(config, f"{prefix}_IMAGES"), getattr(config, f"{prefix}_ANNOTATIONS"),
            getattr(config, f"{prefix}_SPLIT"))


def _shapes(config, subset, strict, paths, name):
    from detection.data.shapes import load_shapes

    return load_shapes(config, subset, strict=strict)


def _coco(config, subset, strict, paths, name):
    from detection.data.coco import load_coco

    images, annotations, _ = paths
    if images is None:
        raise DataError(f"DATASET_FORMAT coco: {subset.upper()}_IMAGES is not set (or pass --images)")
    return load_coco(annotations, images, config, strict=strict, name=name)


def _voc(config, subset, strict, paths, name):
    from detection.data.voc import load_voc

    images, annotations, split = paths
    return load_voc(annotations, images, split, config, strict=strict, name=name)


def _via(config, subset, strict, paths, name):
    from detection.data.via import load_via

    images, annotations, _ = paths
    return load_via(annotations, images, config, strict=strict, name=name)


def _labelme(config, subset, strict, paths, name):
    from detection.data.labelme import load_labelme

    images, annotations, split = paths
    return load_labelme(annotations, images, split, config, strict=strict, name=name)


@dataclasses.dataclass(frozen=True)
class DatasetFormat:
    """One DATASET_FORMAT: load(config, subset, strict, (images, annotations, split), name) ->
    a Dataset; annotated: it reads an annotation file or folder (so {SUBSET}_ANNOTATIONS must be set)."""

    load: Callable
    annotated: bool = True


# The DATASET_FORMAT registry (names: detection/choices.py DATASET_FORMATS); the loaders are
# imported when used, so a format's dependencies are needed only by its users.
DATASET_FORMATS = {
    "shapes": DatasetFormat(_shapes, annotated=False),
    "coco": DatasetFormat(_coco),
    "voc": DatasetFormat(_voc),
    "via": DatasetFormat(_via),
    "labelme": DatasetFormat(_labelme),
}


def same_files(config):
    """Whether ``config``'s val subset is its train subset: an annotated file format (not shapes or a
    Python dataset, whose subsets differ by name) with the same images, annotations and split.
    Then one loaded Dataset serves both (COCO train loaded twice took twice the time and memory)."""
    entry = DATASET_FORMATS.get(config.DATASET_FORMAT)
    return bool(entry and entry.annotated) and subset_paths(config, "train") == subset_paths(config, "val")


def load_dataset(config, subset="train", strict=None):
    """The Dataset of ``subset`` ("train" or "val") described by ``config``.

    strict: turn the first data problem into a DataError; default config.STRICT_DATA.
    Raises DataError when a required path key is not set.
    """
    strict = config.STRICT_DATA if strict is None else strict
    fmt = config.DATASET_FORMAT
    if fmt.startswith("python:"):
        from detection.data.python_format import load_python_dataset

        return load_python_dataset(fmt, subset, config, strict=strict)
    if fmt not in DATASET_FORMATS:
        raise DataError(f"unknown DATASET_FORMAT {fmt!r}")
    entry = DATASET_FORMATS[fmt]
    paths = subset_paths(config, subset)
    if entry.annotated and paths[1] is None:
        raise DataError(f"DATASET_FORMAT {fmt}: {subset.upper()}_ANNOTATIONS is not set (or pass --annotations)")
    return entry.load(config, subset, strict, paths, f"{fmt}/{subset}")
