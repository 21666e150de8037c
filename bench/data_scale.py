"""Load time and peak memory on COCO-sized data: a synthetic COCO train file of any size.

    python bench/data_scale.py [--sizes 10000 50000 118287] [--stages load stat_gt train train2w]
        [--baseline REV] [--data /tmp/data_scale] [--json OUT] [--timeout 600]

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
  train2w  the same command as two workers under TF_CONFIG on 127.0.0.1 (docs/multi_gpu.md), the
           same --output: the peak RSS of each worker (each keeps its own shard of the records).

--baseline REV runs every stage also with the code of git revision REV (extracted with git
archive into DATA/baseline-REV), right after this checkout's run of the same stage and size, and
prints this checkout's time and peak RSS as a ratio of the baseline's.

Printed: a line per stage and size, and the growth from the smallest size (time and memory
ratios against the ratio of sizes: 1.0 means linear).
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import threading
import time

import numpy as np

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
SHARED_DATA = os.environ.get("DETECTION_SHARED_DATA") or os.path.join(REPO, "..", "shared", "data")
SOURCE_IMAGES = os.path.join(SHARED_DATA, "coco_tiny", "train2017")
STAGES = ("load", "stat_gt", "train", "train2w")
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


def run_children(argvs, timeout, first_line=None, envs=None, repo=REPO):
    """Runs the ``argvs`` at once; returns one dict per child: {seconds, peak_rss_mib, status,
    first_seconds, tail}: wall time, the child's own peak RSS (os.wait4), exit status, when a
    line containing ``first_line`` appeared on its output (None if never), its last lines."""
    envs = envs or [{}] * len(argvs)
    start = time.perf_counter()
    children, rows, readers = [], [], []
    for argv, extra in zip(argvs, envs):
        env = dict(os.environ, PYTHONPATH=repo, TF_CPP_MIN_LOG_LEVEL="2", **extra)
        children.append(subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True,
                                         bufsize=1))
        rows.append({"tail": []})

    def watch(child, row):
        for line in child.stdout:
            row["tail"] = (row["tail"] + [line])[-30:]
            if first_line and "first_seconds" not in row and first_line in line:
                row["first_seconds"] = round(time.perf_counter() - start, 1)

    for child, row in zip(children, rows):
        readers.append(threading.Thread(target=watch, args=(child, row), daemon=True))
        readers[-1].start()
    timer = threading.Timer(timeout, lambda: [c.kill() for c in children if c.returncode is None])
    timer.start()
    for child, row, reader in zip(children, rows, readers):
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        reader.join(5)
        row.update(seconds=round(time.perf_counter() - start, 1), status=child.returncode,
                   peak_rss_mib=round(usage.ru_maxrss / 1024), tail="".join(row["tail"][-8:]))  # KiB on Linux
        row.setdefault("first_seconds", None)
    timer.cancel()
    return rows


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stage_argv(stage, annotations, images, work, repo=REPO):
    python = sys.executable
    if stage == "load":
        return [python, os.path.abspath(__file__), "--child-load", annotations, images, repo]
    if stage == "stat_gt":
        return [python, os.path.join(repo, "tools", "stat_gt.py"), "--config", os.path.join(work, "train.yaml"),
                "--format", "coco", "--annotations", annotations, "--images", images]
    return [python, os.path.join(repo, "tools", "train.py"), "--config", os.path.join(work, "train.yaml"),
            "--format", "coco", "--annotations", annotations, "--images", images, "--steps-per-epoch", "3",
            "--epochs", "1", "--output", os.path.join(work, f"run_{time.time_ns()}")]


def run_stage(stage, annotations, images, work, timeout, repo=REPO):
    """The stage's row (for train2w: the two workers' rows merged, per-worker figures), with
    the code of ``repo``."""
    argv = stage_argv("train" if stage == "train2w" else stage, annotations, images, work, repo)
    if stage != "train2w":
        return run_children([argv], timeout, first_line="1/3" if stage == "train" else None, repo=repo)[0]
    cluster = [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]
    envs = [{"TF_CONFIG": json.dumps({"cluster": {"worker": cluster}, "task": {"type": "worker", "index": i}})}
            for i in range(2)]
    rows = run_children([argv, argv], timeout, first_line="1/3", envs=envs, repo=repo)
    firsts = [r["first_seconds"] for r in rows if r["first_seconds"] is not None]
    return {"seconds": max(r["seconds"] for r in rows), "status": max(abs(r["status"]) for r in rows),
            "first_seconds": min(firsts) if firsts else None,
            "peak_rss_mib": max(r["peak_rss_mib"] for r in rows),
            "worker_rss_mib": [r["peak_rss_mib"] for r in rows], "tail": rows[0]["tail"] + rows[1]["tail"]}


def child_load(annotations, images, repo):
    """--child-load: loads the file as the tools do with the code of ``repo``; prints the
    counts, the time, and (where the code has it) the time of the image file check alone."""
    sys.path.insert(0, repo)
    from detection.config import Config
    from detection.data import validation
    from detection.data.datasets import load_dataset

    start = time.perf_counter()
    config = Config({"DATASET_FORMAT": "coco", "TRAIN_ANNOTATIONS": annotations, "TRAIN_IMAGES": images,
                     "NUM_CLASSES": 81})
    dataset = load_dataset(config, "train")
    out = {"images": len(dataset.records), "boxes": sum(r.num_boxes for r in dataset.records),
           "load_seconds": round(time.perf_counter() - start, 1)}
    if hasattr(validation, "check_image_files"):
        start = time.perf_counter()
        validation.check_image_files(dataset.records, validation.ValidationReport())
        out["check_seconds"] = round(time.perf_counter() - start, 2)
    print(json.dumps(out))


def baseline_checkout(rev, data):
    """A copy of the code of git revision ``rev`` (git archive) under ``data``; its path."""
    commit = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", rev], capture_output=True, text=True,
                            check=True).stdout.strip()
    folder = os.path.join(data, f"baseline-{commit}")
    if not os.path.isdir(folder):
        os.makedirs(folder + ".tmp", exist_ok=True)
        archive = subprocess.run(["git", "-C", REPO, "archive", commit], capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", folder + ".tmp"], input=archive, check=True)
        os.replace(folder + ".tmp", folder)
    return folder


def growth(rows, key):
    """{size: (value / value at the smallest size) / (size / smallest size)}: 1.0 is linear."""
    base = rows[0]
    return {r["images"]: round((r[key] / base[key]) / (r["images"] / base["images"]), 2)
            for r in rows if r.get(key) and base.get(key)}


def _row_text(row):
    text = f"{row['seconds']:7.1f} s"
    if "load_seconds" in row:
        text += f" ({row['load_seconds']} s in load_dataset"
        text += f", {row['check_seconds']} s of it checking image files)" if "check_seconds" in row else ")"
    if row.get("first_seconds") is not None:
        text += f", first step at {row['first_seconds']} s"
    text += f", peak RSS {row['peak_rss_mib']} MiB"
    if "worker_rss_mib" in row:
        text += f" (workers {row['worker_rss_mib']})"
    return text


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000, 118_287])
    parser.add_argument("--stages", nargs="+", choices=STAGES, default=list(STAGES))
    parser.add_argument("--data", default="/tmp/data_scale", help="where the synthetic files go (kept, reused)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds a child may run")
    parser.add_argument("--json", help="write the figures to this JSON file")
    parser.add_argument("--baseline", metavar="REV", help="also run each stage with the code of this git revision")
    parser.add_argument("--child-load", nargs=3, metavar=("ANNOTATIONS", "IMAGES", "REPO"), help=argparse.SUPPRESS)
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
    repos = {"this": REPO}
    if args.baseline:
        repos["baseline"] = baseline_checkout(args.baseline, args.data)
        print(f"baseline: {args.baseline} in {repos['baseline']}", flush=True)
    results = {name: {stage: [] for stage in args.stages} for name in repos}
    for size in sorted(args.sizes):
        started = time.perf_counter()
        annotations, images, boxes = write_coco(os.path.join(args.data, str(size)), size)
        mib = os.path.getsize(annotations) / 2**20
        print(f"{size} images, {boxes} boxes, {mib:.0f} MiB JSON ({time.perf_counter() - started:.0f} s to "
              "write or find)", flush=True)
        for stage in args.stages:
            for name, repo in repos.items():
                row = run_stage(stage, annotations, images, args.data, args.timeout, repo)
                row.update(images=size, boxes=boxes, json_mib=round(mib))
                if stage == "load" and not row["status"]:
                    row.update(json.loads(row["tail"].strip().splitlines()[-1]), images=size)
                tail = row.pop("tail")
                results[name][stage].append(row)
                print(f"  {name:8} {stage:8} {_row_text(row)}" + (f", EXIT {row['status']}:\n{tail}"
                                                                     if row["status"] else ""), flush=True)
            if args.baseline:
                new, old = results["this"][stage][-1], results["baseline"][stage][-1]
                print(f"  {'ratio':8} {stage:8} time {new['seconds'] / old['seconds']:.2f}, "
                      f"peak RSS {new['peak_rss_mib'] / old['peak_rss_mib']:.2f} (this / baseline)", flush=True)
    print("\ngrowth against the smallest size (value ratio / size ratio; 1.0 = linear):")
    for name, stages in results.items():
        for stage, rows in stages.items():
            for key in ("seconds", "load_seconds", "first_seconds", "peak_rss_mib"):
                if any(r.get(key) for r in rows):
                    print(f"  {name:8} {stage:8} {key:14} {growth(rows, key)}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
