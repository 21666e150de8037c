"""Inference on image files: records from files, detections to COCO results and pictures.

    records, skipped = image_records(["photos/", "extra.png"])
    summary = infer_to_folder(predictor, records, "out/", class_names, category_ids)

Outputs in the folder:
  detections.json  a list of COCO result records (detection/evaluation/results.py), one per
                   detection: image_id (the image's index in ``records``, 0-based),
                   category_id (the dataset's own id: category_ids[k - 1] for class k; for a
                   config with CLASS_NAMES these are the contiguous ids 1..K), bbox [x, y, w, h]
                   in ORIGINAL-image pixels, score, segmentation (compressed RLE of the
                   full-image mask; Mask R-CNN only), plus file_name (the image path as given).
  <stem>.jpg       for each image: the original image with boxes, "name score" labels and
                   translucent masks (detection/visualize.py); a stem met again gets
                   <stem>_2.jpg, <stem>_3.jpg, ...

Unreadable images (missing, empty, corrupt, truncated) are skipped with a warning naming them
and counted; the others are still processed.
"""

import json
import os
import sys

import numpy as np

from detection.data.images import IMAGE_EXTENSIONS, ImageReadError, read_image
from detection.data.records import Record
from detection.evaluation.results import detections_to_coco_results
from detection.visualize import draw_detections, save_image


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


def image_records(paths, warn=_warn):
    """Records (no annotations) for the images in ``paths`` (files and folders, see find_images).

    Each Record has image_id = its index among the readable images, path, and height, width
    of the image as read_image decodes it (EXIF orientation applied). The images are decoded
    once here to learn their size exactly (headers would miss the EXIF rotation).
    Returns (records, skipped): skipped is a list of (path, reason) of unreadable images,
    each also passed to ``warn``.
    """
    records, skipped = [], []
    for path in find_images(paths):
        try:
            height, width = read_image(path).shape[:2]
        except ImageReadError as e:
            reason = str(e).split(": ", 1)[-1]
            skipped.append((path, reason))
            warn(f"skipped unreadable image {path}: {reason}")
            continue
        records.append(Record(image_id=len(records), path=path, height=int(height), width=int(width),
                              boxes=np.zeros((0, 4), np.float32), class_ids=np.zeros(0, np.int32),
                              iscrowd=np.zeros(0, bool), difficult=np.zeros(0, bool)))
    return records, skipped


def picture_names(records):
    """{image_id: "<stem>.jpg"}, unique: a repeated stem gets _2, _3, ... in order."""
    names, used = {}, set()
    for record in records:
        stem = os.path.splitext(os.path.basename(record.path))[0]
        name, n = f"{stem}.jpg", 1
        while name.lower() in used:
            n += 1
            name = f"{stem}_{n}.jpg"
        used.add(name.lower())
        names[record.image_id] = name
    return names


def infer_to_folder(predictor, records, output_dir, class_names, category_ids, progress=True,
                    pictures=True, warn=_warn):
    """Runs ``predictor`` (detection.engine.predictor.Predictor) on ``records`` and writes
    detections.json and the pictures to ``output_dir`` (see the module docstring).

    class_names, category_ids: K entries each for classes 1..K (detection.categories).
    Returns a dict: images (processed), detections, skipped (unreadable paths, those found
    by image_records are not included: pass them on yourself), results (the JSON records).
    """
    os.makedirs(output_dir, exist_ok=True)
    names = picture_names(records) if pictures else {}
    results, seen = [], set()
    for det in predictor.predict_records(records, progress=progress):
        record = det["record"]
        seen.add(record.image_id)
        for result in detections_to_coco_results(det, category_ids):
            results.append({**result, "file_name": record.path})
        if pictures:
            picture = draw_detections(read_image(record.path), det["boxes"], det["class_ids"], det["scores"],
                                      class_names, masks=det["masks"])
            save_image(os.path.join(output_dir, names[record.image_id]), picture)
    # The pipeline skips an image that became unreadable after image_records read it.
    skipped = [r.path for r in records if r.image_id not in seen]
    for path in skipped:
        warn(f"skipped unreadable image {path}")
    path = os.path.join(output_dir, "detections.json")
    with open(path + ".tmp", "w") as f:
        json.dump(results, f)
    os.replace(path + ".tmp", path)
    return {"images": len(seen), "detections": len(results), "skipped": skipped, "results": results}
