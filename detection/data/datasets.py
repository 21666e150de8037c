"""``load_dataset``: the one entry point from a config to a Dataset, whatever the format.

config.DATASET_FORMAT picks the loader; the subset picks the TRAIN_* or VAL_* keys:

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

from detection.data.validation import DataError

SUBSETS = ("train", "val")


def subset_paths(config, subset):
    """(images, annotations, split) of ``subset`` from config's TRAIN_* or VAL_* keys."""
    if subset not in SUBSETS:
        raise ValueError(f"subset must be one of {SUBSETS}, got {subset!r}")
    prefix = subset.upper()
    return (getattr(config, f"{prefix}_IMAGES"), getattr(config, f"{prefix}_ANNOTATIONS"),
            getattr(config, f"{prefix}_SPLIT"))


def same_files(config):
    """Whether ``config``'s val subset is its train subset: a file format (not shapes or a
    Python dataset, whose subsets differ by name) with the same images, annotations and split.
    Then one loaded Dataset serves both (COCO train loaded twice took twice the time and memory)."""
    return config.DATASET_FORMAT in ("coco", "voc", "via", "labelme") and \
        subset_paths(config, "train") == subset_paths(config, "val")


def load_dataset(config, subset="train", strict=None):
    """The Dataset of ``subset`` ("train" or "val") described by ``config``.

    strict: turn the first data problem into a DataError; default config.STRICT_DATA.
    Raises DataError when a required path key is not set.
    """
    strict = config.STRICT_DATA if strict is None else strict
    fmt = config.DATASET_FORMAT
    if fmt == "shapes":
        from detection.data.shapes import load_shapes

        return load_shapes(config, subset, strict=strict)
    if fmt.startswith("python:"):
        from detection.data.python_format import load_python_dataset

        return load_python_dataset(fmt, subset, config, strict=strict)
    images, annotations, split = subset_paths(config, subset)
    prefix = subset.upper()
    if annotations is None:
        raise DataError(f"DATASET_FORMAT {fmt}: {prefix}_ANNOTATIONS is not set (or pass --annotations)")
    name = f"{fmt}/{subset}"
    if fmt == "coco":
        from detection.data.coco import load_coco

        if images is None:
            raise DataError(f"DATASET_FORMAT coco: {prefix}_IMAGES is not set (or pass --images)")
        return load_coco(annotations, images, config, strict=strict, name=name)
    if fmt == "voc":
        from detection.data.voc import load_voc

        return load_voc(annotations, images, split, config, strict=strict, name=name)
    if fmt == "via":
        from detection.data.via import load_via

        return load_via(annotations, images, config, strict=strict, name=name)
    if fmt == "labelme":
        from detection.data.labelme import load_labelme

        return load_labelme(annotations, images, split, config, strict=strict, name=name)
    raise DataError(f"unknown DATASET_FORMAT {fmt!r}")
