"""The class names and the dataset's own category ids of a model, for tools that run it on
images without a dataset at hand (infer, export).

    names, category_ids = model_categories(config)

Where they come from, first that applies:
  1. config.CLASS_NAMES: names of classes 1..K, with config.CATEGORY_IDS as their ids
     (tools/train.py records both from the training set: COCO's 1..90 for 80 classes), or
     the contiguous ids 1..K when CATEGORY_IDS is null (shapes, VOC-style configs);
  2. the config's dataset (load_dataset(config, subset)): its class_names and category_ids
     (e.g. COCO's 1..90 for 80 classes) - needs the annotations the config names;
  3. otherwise names "class k" and ids k, with a warning through ``log``.
"""

import sys


def model_categories(config, subset="val", log=None):
    """(class_names: K str, category_ids: K int) for classes 1..K = NUM_CLASSES - 1."""
    k = config.NUM_CLASSES - 1
    if config.CLASS_NAMES is not None:
        ids = config.CATEGORY_IDS if config.CATEGORY_IDS is not None else range(1, k + 1)
        return list(config.CLASS_NAMES), [int(i) for i in ids]
    log = log or (lambda message: print(message, file=sys.stderr))
    from detection.data.datasets import load_dataset
    from detection.data.validation import DataError

    try:
        dataset = load_dataset(config, subset)
    except (DataError, OSError) as e:
        log(f"warning: no CLASS_NAMES in the config and its {subset} dataset cannot be loaded "
            f"({' '.join(str(e).split())}): classes are named 'class k' with category id k")
        return [f"class {i}" for i in range(1, k + 1)], list(range(1, k + 1))
    if len(dataset.class_names) != k:
        raise ValueError(f"the {subset} dataset has {len(dataset.class_names)} classes but NUM_CLASSES - 1 is {k}")
    return list(dataset.class_names), [int(c) for c in dataset.category_ids]
