"""``DATASET_FORMAT: python:MODULE:CLASS``: a CustomDataset subclass -> Dataset of Records.

MODULE is a path to a .py file (``python:my_data.py:MyDataset``, ``python:code/my_data.py:X``;
relative to the current folder, and its folder is put on sys.path so it can import its
neighbours) or a dotted module name importable from the current folder or the installed
packages (``python:my_package.datasets:MyDataset``). The class must subclass
detection.data.custom_dataset.CustomDataset (whose docstring is the interface).

Loading: ``CLASS()``, ``load_subset(subset, config)``, ``prepare()``, then per image i
(matterport's internal id, the position in image_info):
  * load_mask(i) (or load_boxes(i) in a class that defines only that), once, here: boxes are
    the masks' pixel-edge bounding boxes (masks.mask_bbox), the masks are kept as compressed
    RLE in Record.segmentations (so load_mask is not called again per epoch, boxes and masks
    always agree, and evaluation has mask GT); an empty mask is counted (``empty_mask``) and
    its instance dropped; a class id outside 1..K is counted as ``unknown_class``;
  * the image: Record.path = image_info[i]["path"]; when the class overrides load_image,
    Record.image_loader calls it (the pipeline reads through it), else the pipeline reads
    the path itself (and can decode JPEGs at a reduced size). A missing file is counted
    (``missing_image``); with an overridden load_image the first image is loaded here, so a
    broken load_image stops the tool at once instead of skipping every image.
Classes: class_info[1..K] in add_class order; category ids: the add_class ids when they are
distinct integers (a ported COCO dataset keeps COCO's ids in every output), else 1..K.
CLASS_NAMES, when set, must equal the class names (it is not a filter here: the classes are
the ones the code adds).

Errors: a problem inside the user's code (an exception, or a result of the wrong kind) is a
DataError of one line naming the class, the method, the image and the user's file and line,
e.g. ``BalloonDataset.load_mask(image 3: balloon/train/a.jpg): KeyError: 'polygons'
(balloon.py, line 61)``. Problems in the data it returns are counted like any loader's, the
"file" of a problem being ``CLASS image I (reference)``.
"""

import importlib
import importlib.util
import os
import sys
import sysconfig
import traceback

import numpy as np

from detection.config import PYTHON_FORMAT, split_python_format
from detection.data.custom_dataset import CustomDataset
from detection.data.images import ImageReadError, image_size
from detection.data.masks import encode_rle, mask_bbox
from detection.data.records import Dataset, Record
from detection.data.validation import DataError, ValidationReport, clean_boxes, finalize_records


def import_dataset_class(spec):
    """The CustomDataset subclass named by ``spec`` ("python:MODULE:CLASS"); DataError (one
    line) when it cannot be imported, is absent or is not a CustomDataset subclass."""
    parts = split_python_format(spec)
    if parts is None:
        raise DataError(f"dataset format {spec!r}: expected {PYTHON_FORMAT}")
    module_name, class_name = parts
    module = _import_module(module_name, spec)
    cls = getattr(module, class_name, None)
    if cls is None:
        found = [n for n, v in vars(module).items() if isinstance(v, type) and issubclass(v, CustomDataset)
                 and v is not CustomDataset]
        raise DataError(f"{spec}: {module_name} has no class {class_name}"
                        + (f" (CustomDataset subclasses there: {', '.join(found)})" if found else ""))
    if not (isinstance(cls, type) and issubclass(cls, CustomDataset)):
        raise DataError(f"{spec}: {class_name} is not a subclass of detection.data.custom_dataset.CustomDataset")
    return cls


def load_python_dataset(spec, subset, config, strict=None):
    """The Dataset of ``subset`` made by the class ``spec`` names (see the module docstring).

    config: the run's Config (passed to load_subset; supplies CLASS_NAMES,
    KEEP_EMPTY_IMAGES, MAX_GT_INSTANCES, STRICT_DATA); strict overrides STRICT_DATA.
    """
    cls = import_dataset_class(spec)
    strict = config.STRICT_DATA if strict is None else strict
    name = cls.__name__
    instance = _call_user(cls, f"{name}()")
    _call_user(instance.load_subset, f"{name}.load_subset({subset!r})", subset, config)
    _call_user(instance.prepare, f"{name}.prepare()")

    class_names = [str(c["name"]) for c in instance.class_info[1:]]
    if config.CLASS_NAMES and list(config.CLASS_NAMES) != class_names:
        raise DataError(f"{spec}: the classes {name} adds, {class_names}, differ from "
                        f"CLASS_NAMES {list(config.CLASS_NAMES)}")
    source_ids = [c["id"] for c in instance.class_info[1:]]
    distinct = (all(isinstance(i, int) and not isinstance(i, bool) for i in source_ids)
                and len(set(source_ids)) == len(source_ids))
    category_ids = source_ids if distinct else list(range(1, len(class_names) + 1))

    report = ValidationReport(f"{name}/{subset}", strict=strict)
    own_loader = type(instance).load_image is not CustomDataset.load_image
    with_masks = type(instance).load_mask is not CustomDataset.load_mask
    records = []
    for index in range(len(instance.image_info)):
        record = _record(instance, index, report, len(class_names), own_loader, with_masks)
        if record is not None:
            records.append(record)
    if own_loader and records:
        _check_first_image(records[0])
    records = finalize_records(records, report, config.KEEP_EMPTY_IMAGES, config.MAX_GT_INSTANCES,
                               file_of=lambda r: _image_name(instance, r.image_id))
    return Dataset(name=report.name, records=records, class_names=class_names, category_ids=category_ids,
                   report=report, source=spec)


class UserImage:
    """Record.image_loader of an image of a CustomDataset with its own load_image: calls it and
    makes the result [H, W, 3] uint8 RGB; any failure is an ImageReadError of one line."""

    def __init__(self, dataset, index):
        self.dataset, self.index = dataset, index

    def __call__(self):
        where = _call_name(self.dataset, "load_image", self.index)
        try:
            image = _call_user(self.dataset.load_image, where, self.index)
        except DataError as e:
            raise ImageReadError(str(e)) from None
        return _as_rgb(image, where)

    def __str__(self):
        return _image_name(self.dataset, self.index)


def _call_user(fn, where, *args):
    """fn(*args), a method of the user's class; an exception becomes a one-line DataError that
    names the call (``where``) and the user's file and line."""
    try:
        return fn(*args)
    except DataError as e:  # ours (read_image, ...): already one line
        raise DataError(f"{where}: {e}") from None
    except Exception as e:  # noqa: BLE001 - any error of user code becomes one line
        raise DataError(f"{where}: {type(e).__name__}: {e}{_user_location(e)}") from e


# Where a frame is not the user's: this package, the standard library, installed packages.
_LIBRARY_FOLDERS = tuple(os.path.join(os.path.abspath(p), "") for p in
                         [os.path.dirname(os.path.dirname(os.path.abspath(__file__)))]
                         + [sysconfig.get_path(k) for k in ("stdlib", "platstdlib", "purelib", "platlib")])


def _user_location(error):
    """" (file.py, line N)" of the deepest frame of ``error``'s traceback in the user's code
    (not in detection, the standard library or installed packages), else of the deepest."""
    frames = traceback.extract_tb(error.__traceback__)
    mine = [f for f in frames if not f.filename.startswith("<")
            and not os.path.abspath(f.filename).startswith(_LIBRARY_FOLDERS)] or frames[-1:]
    return f" ({os.path.basename(mine[-1].filename)}, line {mine[-1].lineno})" if mine else ""


def _import_module(module_name, spec):
    as_path = module_name.endswith(".py") or os.sep in module_name or "/" in module_name
    try:
        if as_path:
            path = os.path.abspath(module_name)
            if not os.path.isfile(path):
                raise DataError(f"{spec}: file {module_name} not found (from {os.getcwd()})")
            folder = os.path.dirname(path)
            if folder not in sys.path:
                sys.path.insert(0, folder)  # the module may import its neighbours
            name = "detection_user_dataset_" + os.path.splitext(os.path.basename(path))[0]
            module_spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[name] = module
            module_spec.loader.exec_module(module)
            return module
        if os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())  # tools run as scripts: the current folder is not on the path
        return importlib.import_module(module_name)
    except DataError:
        raise
    except Exception as e:  # noqa: BLE001 - the user's module is absent or failed while importing
        if isinstance(e, ModuleNotFoundError) and e.name and (module_name + ".").startswith(e.name + "."):
            raise DataError(f"{spec}: cannot import {module_name}: {e} (run from the folder that holds it, "
                            "or give the path of the .py file)") from None
        raise DataError(f"{spec}: importing {module_name} failed: {type(e).__name__}: {e}{_user_location(e)}") from e


def _image_name(dataset, index):
    """How problems name image ``index`` of ``dataset``: "CLASS image I (reference)"."""
    return f"{type(dataset).__name__} image {index} ({_reference(dataset, index)})"


def _call_name(dataset, method, index):
    """How errors name a call of the user's code: "CLASS.METHOD(image I: reference)"."""
    return f"{type(dataset).__name__}.{method}(image {index}: {_reference(dataset, index)})"


def _reference(dataset, index):
    try:
        return dataset.image_reference(index)
    except Exception:  # noqa: BLE001 - a broken image_reference must not hide the real problem
        return dataset.image_info[index].get("id")


def _record(dataset, index, report, num_classes, own_loader, with_masks):
    """The Record of image ``index``, or None when its image file is missing (counted)."""
    info = dataset.image_info[index]
    name = _image_name(dataset, index)
    path = info.get("path")
    if not own_loader and not (isinstance(path, str) and os.path.isfile(path)):
        report.add("missing_image", name, "path", f"{path!r} not found")
        return None
    loader = UserImage(dataset, index) if own_loader else None
    method = "load_mask" if with_masks else "load_boxes"
    where = _call_name(dataset, method, index)
    result = _call_user(getattr(dataset, method), where, index)
    if not (isinstance(result, tuple) and len(result) == 2):
        raise DataError(f"{where}: returned {type(result).__name__}, expected a tuple (masks or boxes, class_ids)")
    checks = (num_classes, report, name, method)
    if with_masks:
        (height, width), boxes, class_ids, segmentations = _mask_instances(*result, where, info, path, loader, checks)
    else:
        height, width = _size(info, path, loader, where)
        (boxes, class_ids), segmentations = _box_instances(*result, where, height, width, checks), None
    n = len(boxes)
    return Record(image_id=index, path=path if isinstance(path, str) else None, height=int(height),
                  width=int(width), boxes=boxes.astype(np.float32).reshape(-1, 4), class_ids=class_ids.astype(np.int32),
                  iscrowd=np.zeros(n, bool), difficult=np.zeros(n, bool), segmentations=segmentations,
                  image_loader=loader)


def _mask_instances(masks, class_ids, where, info, path, loader, checks):
    """load_mask's (masks [H, W, N], class_ids [N]) -> ((H, W), boxes [K, 4] pixel edges,
    class_ids [K], K compressed RLEs): unknown classes and empty masks counted and dropped."""
    masks, class_ids = np.asarray(masks), np.asarray(class_ids)
    if masks.ndim != 3 or class_ids.ndim != 1 or masks.shape[2] != len(class_ids):
        raise DataError(f"{where}: returned masks of shape {list(masks.shape)} and class_ids of shape "
                        f"{list(class_ids.shape)}; expected [H, W, N] and [N]")
    size = masks.shape[:2]
    if 0 in size:  # matterport's "no instances": np.empty([0, 0, 0])
        size = _size(info, path, loader, where)
        masks = np.zeros(size + (0,), bool)
    fields = [f"masks[..., {j}]" for j in range(len(class_ids))]
    class_ids, keep = _known_classes(class_ids, fields, *checks)
    _, report, name, _ = checks
    boxes = np.array([mask_bbox(masks[..., j]) for j in keep], np.float32).reshape(-1, 4)
    nonempty = boxes[:, 2] > boxes[:, 0]
    for j in keep[~nonempty]:
        report.add("empty_mask", name, fields[j], "no pixel set")
    return size, boxes[nonempty], class_ids[nonempty], encode_rle(masks[..., keep[nonempty]])


def _box_instances(boxes, class_ids, where, height, width, checks):
    """load_boxes' (boxes [N, 4], class_ids [N]) -> (boxes [K, 4], class_ids [K]): unknown
    classes counted and dropped, boxes cleaned (clipped, dropped without area) by clean_boxes."""
    try:
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        class_ids = np.asarray(class_ids)
    except (TypeError, ValueError):
        boxes = class_ids = None
    if boxes is None or class_ids.ndim != 1 or len(boxes) != len(class_ids):
        raise DataError(f"{where}: returned boxes and class_ids that are not [N, 4] numbers and [N]")
    fields = [f"boxes[{j}]" for j in range(len(boxes))]
    class_ids, keep = _known_classes(class_ids, fields, *checks)
    _, report, name, _ = checks
    boxes, kept = clean_boxes(boxes[keep], height, width, report, name, [fields[j] for j in keep])
    return boxes, class_ids[kept]


def _known_classes(class_ids, fields, num_classes, report, name, method):
    """(class_ids [K] int64, keep [K] int64 indices) of the ids in 1..num_classes; the others
    counted as unknown_class and dropped."""
    keep = []
    for j, c in enumerate(class_ids.tolist()):
        if isinstance(c, (int, float)) and not isinstance(c, bool) and float(c).is_integer() and 1 <= c <= num_classes:
            keep.append(j)
        else:
            report.add("unknown_class", name, f"{method} class_ids[{j}] ({fields[j]})",
                       f"{c!r} is not a class id 1..{num_classes} (add_class order)")
    keep = np.asarray(keep, np.int64)
    return class_ids[keep].astype(np.int64), keep


def _size(info, path, loader, where):
    """(height, width): add_image's height= and width=, else the image's."""
    height, width = info.get("height"), info.get("width")
    if all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0 for v in (height, width)):
        return int(height), int(width)
    try:
        return loader().shape[:2] if loader is not None else image_size(path)
    except ImageReadError as e:
        raise DataError(f"{where}: the image size is not in image_info (height=, width=) and the image "
                        f"cannot be read: {e}") from None


def _check_first_image(record):
    """Loads the first record's image through the user's load_image: a broken load_image is a
    DataError now, not every image skipped later."""
    try:
        image = record.image_loader()
    except ImageReadError as e:
        raise DataError(str(e)) from None
    if image.shape[:2] != (record.height, record.width):
        raise DataError(f"{record.image_loader}: load_image gives {image.shape[0]}x{image.shape[1]} but the "
                        f"annotation (masks or height/width) says {record.height}x{record.width}")


def _as_rgb(image, where):
    """load_image's result -> [H, W, 3] uint8 RGB (grayscale and RGBA converted, as matterport)."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3, 4)):
        raise ImageReadError(f"{where}: returned {image.dtype} of shape {list(image.shape)}; "
                             "expected [H, W, 3] uint8 RGB")
    if image.ndim == 2:
        image = image[..., None]
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    return np.ascontiguousarray(image[..., :3])
