"""Load time and peak memory on COCO-sized data: a synthetic COCO train file of any size.

    python bench/data_scale.py [--sizes 10000 50000 118287] [--stages load stat_gt train]
        [--data /tmp/data_scale] [--json OUT] [--timeout 600]

For each size N: writes (once, then reused) DATA/N/instances.json, shaped as COCO train2017 is
(7.29 boxes per image on average, 862,727 for 118,287 images; polygons of 6..30 points, 1% crowd
regions as uncompressed RLE; 80 categories with COCO's ids 1..90) and DATA/N/images/, a
symlink per image to one of the real images of ../shared/data/coco_tiny/train2017 (or
$DETECTION_SHARED_DATA/coco_tiny/train2017), whose sizes the JSON gives. Then runs each stage
in a child process and reports its wall time and its peak RSS (os.wait4's rusage of that child alone):

  load     detection.data.datasets.load_dataset of the file (the loaders' work, no TensorFlow).
  stat_gt  tools/stat_gt.py --format coco on the file (load, then anchor matching of every box).
  train    tools/train.py --steps-per-epoch 3 --epochs 1 with a tiny backbone at 128 px (one
           image per step, masks on, default validation): wall time to the first training step
           (the first line of Keras' progress bar), to the end, and peak RSS.

Printed: a table per stage, and the growth from the smallest size (time and memory ratios
against the ratio of sizes: 1.0 means linear).
"""

import argparse
import json
import os
import subprocess
import sys
import threading
import time

import numpy as np

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
SHARED_DATA = os.environ.get("DETECTION_SHARED_DATA") or os.path.join(REPO, "..", "shared", "data")
SOURCE_IMAGES = os.path.join(SHARED_DATA, "coco_tiny", "train2017")
STAGES = ("load", "stat_gt", "train")
BOXES_PER_IMAGE = 862_727 / 118_287  # COCO train2017 (instances_train2017.json)
COCO_CATEGORY_IDS = [i for i in range(1, 91) if i not in (12, 26, 29, 30, 45, 66, 68, 69, 71, 83)]

TRAIN_CONFIG = """\
NAME: data_scale
DATASET_FORMAT: coco
NUM_CLASSES: 81
BACKBONE: resnet_tiny
BACKBONE_WEIGHTS: none
TINY_BACKBONE_WIDTH: 8
TOP_DOWN_PYRAMID_SIZE: 16
FPN_CLASSIF_FC_LAYERS_SIZE: 32
IMAGE_MIN_DIM: 128
IMAGE_MAX_DIM: 128
IMAGES_PER_GPU: 1
RPN_ANCHOR_SCALES: [8, 16, 32, 64, 128]
PRE_NMS_LIMIT: 300
POST_NMS_ROIS_TRAINING: 64
TRAIN_ROIS_PER_IMAGE: 16
MINI_MASK_SHAPE: [14, 14]
LR_WARMUP_STEPS: 0
"""


def source_images(folder=SOURCE_IMAGES, count=16):
    """[(path, height, width)] of the first ``count`` real images of ``folder``."""
    from PIL import Image

    names = sorted(n for n in os.listdir(folder) if n.endswith(".jpg"))[:count]
    out = []
    for name in names:
        with Image.open(os.path.join(folder, name)) as image:
            out.append((os.path.abspath(os.path.join(folder, name)), image.height, image.width))
    return out


def write_coco(folder, num_images, seed=0):
    """Writes folder/instances.json and folder/images/ (symlinks); returns (json path, images
    folder, number of boxes). A file already written for these arguments is reused."""
    path, images_dir = os.path.join(folder, "instances.json"), os.path.join(folder, "images")
    done = os.path.join(folder, "done.json")
    if os.path.exists(done):
        return path, images_dir, json.load(open(done))["boxes"]
    os.makedirs(images_dir, exist_ok=True)
    sources = source_images()
    rng = np.random.default_rng(seed)
    # Boxes per image: geometric (at least 1, mean 7.29), a long tail as COCO has, capped at 100.
    counts = np.minimum(rng.geometric(1 / BOXES_PER_IMAGE, num_images), 100)
    ann_id = 0
    with open(path + ".tmp", "w") as f:
        f.write('{"info": {"description": "synthetic COCO-sized file (bench/data_scale.py)"}, "licenses": [], ')
        f.write('"images": [')
        for i in range(num_images):
            src, h, w = sources[i % len(sources)]
            name = f"{i + 1:012d}.jpg"
            link = os.path.join(images_dir, name)
            if not os.path.lexists(link):
                os.symlink(src, link)
            f.write(("" if i == 0 else ", ") + json.dumps({"id": i + 1, "file_name": name, "height": h, "width": w,
                                                          "license": 1}))
        f.write('], "annotations": [')
        for i in range(num_images):
            _, h, w = sources[i % len(sources)]
            for _ in range(int(counts[i])):
                ann_id += 1
                f.write(("" if ann_id == 1 else ", ") + json.dumps(_annotation(rng, ann_id, i + 1, h, w)))
        f.write('], "categories": [')
        f.write(", ".join(json.dumps({"id": c, "name": f"class{c}", "supercategory": "thing"})
                          for c in COCO_CATEGORY_IDS))
        f.write("]}")
    os.replace(path + ".tmp", path)
    json.dump({"images": num_images, "boxes": ann_id}, open(done, "w"))
    return path, images_dir, ann_id


def _annotation(rng, ann_id, image_id, h, w):
    """One COCO annotation inside an h x w image: a polygon (an ellipse of 6..30 jittered points
    in its box), or 1% of the time a crowd region as uncompressed RLE."""
    bw, bh = np.exp(rng.uniform(np.log(4), np.log(0.9 * w))), np.exp(rng.uniform(np.log(4), np.log(0.9 * h)))
    x, y = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
    ann = {"id": ann_id, "image_id": image_id, "category_id": int(rng.choice(COCO_CATEGORY_IDS)),
           "bbox": [round(x, 2), round(y, 2), round(bw, 2), round(bh, 2)], "area": round(bw * bh * 0.7, 2),
           "iscrowd": 0}
    if rng.random() < 0.01:
        ann["iscrowd"] = 1
        # Column-major runs of the box rectangle: zeros above, ones inside, zeros below.
        x1, x2, y1, y2 = int(x), int(x + bw), int(y), int(y + bh)
        runs = [x1 * h + y1]
        for _ in range(x1, x2 - 1):
            runs += [y2 - y1, h - (y2 - y1)]
        runs += [y2 - y1, h * w - sum(runs) - (y2 - y1)]
        ann["segmentation"] = {"counts": runs, "size": [h, w]}
        return ann
    n = int(rng.integers(6, 31))
    angle = np.sort(rng.uniform(0, 2 * np.pi, n))
    px = x + bw / 2 + bw / 2 * np.cos(angle) * rng.uniform(0.7, 1.0, n)
    py = y + bh / 2 + bh / 2 * np.sin(angle) * rng.uniform(0.7, 1.0, n)
    ann["segmentation"] = [[round(float(v), 2) for v in np.stack([px, py], 1).reshape(-1)]]
    return ann


def run_child(argv, timeout, first_line=None):
    """Runs ``argv``; returns {seconds, peak_rss_mib, status, first_seconds}: wall time,
    the child's own peak RSS (os.wait4), exit status, and when a line containing
    ``first_line`` appeared on its output (None if never)."""
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2")
    start = time.perf_counter()
    child = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True, bufsize=1)
    seen, tail = {}, []

    def watch():
        for line in child.stdout:
            tail.append(line)
            del tail[:-30]
            if first_line and "first" not in seen and first_line in line:
                seen["first"] = time.perf_counter() - start

    reader = threading.Thread(target=watch, daemon=True)
    reader.start()
    timer = threading.Timer(timeout, child.kill)
    timer.start()
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - start
    timer.cancel()
    child.returncode = os.waitstatus_to_exitcode(status)
    reader.join(5)
    return {"seconds": round(seconds, 1), "peak_rss_mib": round(usage.ru_maxrss / 1024),  # ru_maxrss: KiB on Linux
            "status": child.returncode, "first_seconds": round(seen["first"], 1) if "first" in seen else None,
            "tail": "".join(tail[-8:])}


def stage_argv(stage, annotations, images, work):
    python = sys.executable
    if stage == "load":
        return [python, os.path.abspath(__file__), "--child-load", annotations, images]
    if stage == "stat_gt":
        return [python, os.path.join(REPO, "tools", "stat_gt.py"), "--config", os.path.join(work, "train.yaml"),
                "--format", "coco", "--annotations", annotations, "--images", images]
    return [python, os.path.join(REPO, "tools", "train.py"), "--config", os.path.join(work, "train.yaml"),
            "--format", "coco", "--annotations", annotations, "--images", images, "--steps-per-epoch", "3",
            "--epochs", "1", "--output", os.path.join(work, f"run_{time.time_ns()}")]


def child_load(annotations, images):
    """--child-load: loads the file as the tools do and prints the counts and the time."""
    sys.path.insert(0, REPO)
    from detection.config import Config
    from detection.data.datasets import load_dataset

    start = time.perf_counter()
    config = Config({"DATASET_FORMAT": "coco", "TRAIN_ANNOTATIONS": annotations, "TRAIN_IMAGES": images,
                     "NUM_CLASSES": 81})
    dataset = load_dataset(config, "train")
    print(json.dumps({"images": len(dataset.records), "boxes": sum(r.num_boxes for r in dataset.records),
                      "load_seconds": round(time.perf_counter() - start, 1)}))


def growth(rows, key):
    """{size: (value / value at the smallest size) / (size / smallest size)}: 1.0 is linear."""
    base = rows[0]
    return {r["images"]: round((r[key] / base[key]) / (r["images"] / base["images"]), 2)
            for r in rows if r.get(key) and base.get(key)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000, 118_287])
    parser.add_argument("--stages", nargs="+", choices=STAGES, default=list(STAGES))
    parser.add_argument("--data", default="/tmp/data_scale", help="where the synthetic files go (kept, reused)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds a child may run")
    parser.add_argument("--json", help="write the figures to this JSON file")
    parser.add_argument("--child-load", nargs=2, metavar=("ANNOTATIONS", "IMAGES"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child_load:
        child_load(*args.child_load)
        return 0
    if not os.path.isdir(SOURCE_IMAGES):
        print(f"error: {SOURCE_IMAGES} is absent: the symlinks need its real images", file=sys.stderr)
        return 2
    os.makedirs(args.data, exist_ok=True)
    with open(os.path.join(args.data, "train.yaml"), "w") as f:
        f.write(TRAIN_CONFIG)
    results = {stage: [] for stage in args.stages}
    for size in sorted(args.sizes):
        started = time.perf_counter()
        annotations, images, boxes = write_coco(os.path.join(args.data, str(size)), size)
        mib = os.path.getsize(annotations) / 2**20
        print(f"{size} images, {boxes} boxes, {mib:.0f} MiB JSON ({time.perf_counter() - started:.0f} s to "
              "write or find)", flush=True)
        for stage in args.stages:
            row = run_child(stage_argv(stage, annotations, images, args.data), args.timeout,
                            first_line="1/3" if stage == "train" else None)
            row.update(images=size, boxes=boxes, json_mib=round(mib))
            if stage == "load" and not row["status"]:
                row.update(json.loads(row["tail"].strip().splitlines()[-1]), images=size)
            tail = row.pop("tail")
            results[stage].append(row)
            first = f", first step at {row['first_seconds']} s" if stage == "train" else ""
            inner = f" ({row['load_seconds']} s in load_dataset)" if "load_seconds" in row else ""
            print(f"  {stage:8} {row['seconds']:7.1f} s{inner}{first}, peak RSS {row['peak_rss_mib']} MiB"
                  + (f", EXIT {row['status']}:\n{tail}" if row["status"] else ""), flush=True)
    print("\ngrowth against the smallest size (value ratio / size ratio; 1.0 = linear):")
    for stage, rows in results.items():
        for key in ("seconds", "load_seconds", "first_seconds", "peak_rss_mib"):
            if any(r.get(key) for r in rows):
                print(f"  {stage:8} {key:14} {growth(rows, key)}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
