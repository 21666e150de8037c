"""Inference on image files or a dataset's images: detections to COCO results and pictures.

    summary = infer_to_folder(predictor, find_images(["photos/", "extra.png"]), "out/")
    summary = infer_to_folder(predictor, dataset.records, "out/")    # the dataset's image ids

Each image is decoded once: that array feeds the model and is drawn on.

Outputs in the folder:
  detections.json  a list of COCO result records (detection/evaluation/results.py), one per
                   detection: image_id (for files, the image's 0-based index in the order
                   processed, unreadable ones included; for a dataset's records, the dataset's
                   own image id, so the file evaluates against its ground truth with
                   ``tools/eval_coco.py --results``), category_id (the dataset's own id, the
                   config's CATEGORY_IDS; 1..K when it has none), bbox [x, y, w, h] in
                   ORIGINAL-image pixels, score, segmentation (compressed RLE of the full-image
                   mask; Mask R-CNN only), plus file_name (the image path as given).
  <stem>.jpg       for each image: the original image with boxes, "name score" labels and
                   translucent masks (visualize.display_instances); a stem met again gets
                   <stem>_2.jpg, <stem>_3.jpg, ...

Unreadable images (missing, empty, corrupt) are skipped with a warning naming them and
counted; the others are still processed. A truncated JPEG is processed as far as its data go
(the rest grey, as training reads it: detection/data/images.py), with a warning naming it, and
counted.
"""

import json
import os
import sys

import numpy as np
from tqdm import tqdm

from detection.data.images import IMAGE_EXTENSIONS, ImageReadError, read_image_checked
from detection.engine.predictor import array_records
from detection.evaluation.results import detections_to_coco_results
from detection.visualize import display_instances

# Images decoded and held at once: a few batches, so the model always has the next one.
_CHUNK_BATCHES = 4


def _warn(message):
    print(f"warning: {message}", file=sys.stderr)


def find_images(paths):
    """Image paths from files and folders, in order: a folder gives its files with an
    extension in IMAGE_EXTENSIONS (any case), sorted by name, not recursing; a file is taken
    as given whatever its extension (a path that does not exist too: reading it will fail
    and be reported)."""
    found = []
    for path in paths:
        path = os.fspath(path)
        if os.path.isdir(path):
            names = sorted(n for n in os.listdir(path) if os.path.splitext(n)[1].lower() in IMAGE_EXTENSIONS)
            found.extend(os.path.join(path, n) for n in names if os.path.isfile(os.path.join(path, n)))
        else:
            found.append(path)
    return found


def picture_names(paths):
    """[path] -> ["<stem>.jpg"] in order, unique: a repeated stem gets _2, _3, ..."""
    names, used = [], set()
    for path in paths:
        stem = os.path.splitext(os.path.basename(path))[0]
        name, n = f"{stem}.jpg", 1
        while name.lower() in used:
            n += 1
            name = f"{stem}_{n}.jpg"
        used.add(name.lower())
        names.append(name)
    return names


def _name(item):
    """The path of an image path or Record (what messages and results name)."""
    if isinstance(item, (str, os.PathLike)):
        return os.fspath(item)
    return item.path if item.path is not None else str(item.image_loader)


def _load(item):
    """(RGB image, truncated: bool) of a path or a Record; ImageReadError when unreadable."""
    if isinstance(item, (str, os.PathLike)):
        return read_image_checked(item)
    return (item.image_loader(), False) if item.image_loader is not None else read_image_checked(item.path)


def infer_to_folder(predictor, images, output_dir, progress=True, pictures=True, warn=_warn, strict=False):
    """Runs ``predictor`` (detection.engine.predictor.Predictor) on ``images`` and writes
    detections.json and the pictures to ``output_dir`` (see the module docstring).

    images: image file paths, or a dataset's Records (their image ids and images).
    strict: an unreadable image is an ImageReadError instead of a warning.
    Returns a dict: images (processed), detections, skipped (unreadable paths), truncated (the
    paths of truncated JPEGs, processed as far as their data go), results (the JSON records).
    """
    os.makedirs(output_dir, exist_ok=True)
    names, category_ids = predictor.categories
    labels = dict(zip(category_ids, names))
    items = list(images)
    chunk = predictor.batch_size * _CHUNK_BATCHES
    picture_files = picture_names([_name(item) for item in items])
    results, skipped, truncated, processed = [], [], [], 0
    bar = tqdm(total=len(items), desc="infer", unit="img", disable=not progress)
    for start in range(0, len(items), chunk):
        loaded = []
        for index in range(start, min(start + chunk, len(items))):
            item = items[index]
            try:
                image, cut_short = _load(item)
            except ImageReadError as e:
                if strict:
                    raise
                skipped.append(_name(item))
                warn(f"skipped unreadable image {skipped[-1]}: {str(e).split(': ', 1)[-1]}")
                continue
            if cut_short:
                truncated.append(_name(item))
                warn(f"truncated image {truncated[-1]}: decoded as far as its data go, the rest grey")
            image_id = index if isinstance(item, (str, os.PathLike)) else item.image_id
            loaded.append((image_id, _name(item), image, picture_files[index]))
        bar.update(min(start + chunk, len(items)) - start)
        if not loaded:
            continue
        records = array_records([image for _, _, image, _ in loaded], [i for i, _, _, _ in loaded],
                                [p for _, p, _, _ in loaded])
        for det, (_, path, image, picture) in zip(predictor.predict_records(records), loaded):
            processed += 1
            for result in detections_to_coco_results(det, category_ids):
                results.append({**result, "file_name": path})
            if pictures:
                ids = np.asarray(category_ids)[det["class_ids"] - 1] if len(det["class_ids"]) else []
                masks = None if det["masks"] is None else np.transpose(det["masks"], (1, 2, 0))
                display_instances(image, det["boxes"], masks, ids, labels, det["scores"],
                                  path=os.path.join(output_dir, picture))
    bar.close()
    path = os.path.join(output_dir, "detections.json")
    with open(path + ".tmp", "w") as f:
        json.dump(results, f)
    os.replace(path + ".tmp", path)
    return {"images": processed, "detections": len(results), "skipped": skipped, "truncated": truncated,
            "results": results}
