"""COCO evaluation time of the two backends (pycocotools, faster-coco-eval) on one large
synthetic GT + results set, generated reproducibly from --seed.

    python bench/coco_eval_backends.py [--images 2000] [--runs 3] [--iou-type bbox|segm|both] [--json OUT]

The data: --images 640x480 images with 1..--max-gt boxes each from 80 categories (sizes
spread over small/medium/large); per GT box a detection with probability 0.8, jittered by
up to 10% of its size, plus --false-positives random boxes per image; scores uniform.
segm uses each box as its mask (GT as a polygon, results as RLE). Timed: one full
evaluation (index, loadRes, evaluate, accumulate, summarize) per run, results already
checked; printed: each run, the median and pycocotools / faster-coco-eval, and the largest
difference between the two backends' 12 metrics.
"""

import argparse
import platform
import statistics
import sys
import time

import numpy as np

from detection.evaluation.coco import BACKENDS, METRIC_NAMES, run_cocoeval
from detection.evaluation.json_io import write_json
from detection.evaluation.results import check_results

HEIGHT, WIDTH, NUM_CATEGORIES = 480, 640, 80


def synthetic_coco(num_images, max_gt, false_positives, seed, with_masks):
    """(gt dict, results list): see the module docstring. Boxes xywh in image pixels."""
    rng = np.random.default_rng(seed)
    images = [{"id": i, "height": HEIGHT, "width": WIDTH, "file_name": f"{i:06d}.jpg"}
              for i in range(1, num_images + 1)]
    categories = [{"id": c, "name": f"class_{c}"} for c in range(1, NUM_CATEGORIES + 1)]
    annotations, results = [], []
    for image in images:
        n = int(rng.integers(1, max_gt + 1))
        gt_boxes = random_boxes(rng, n)
        gt_classes = rng.integers(1, NUM_CATEGORIES + 1, n)
        for box, c in zip(gt_boxes, gt_classes):
            annotations.append({"id": len(annotations) + 1, "image_id": image["id"], "category_id": int(c),
                                "bbox": box.tolist(), "area": float(box[2] * box[3]), "iscrowd": 0})
            if with_masks:
                x, y, w, h = box.tolist()
                annotations[-1]["segmentation"] = [[x, y, x + w, y, x + w, y + h, x, y + h]]
        found = rng.random(n) < 0.8
        jitter = rng.uniform(-0.1, 0.1, (n, 4)) * np.concatenate([gt_boxes[:, 2:], gt_boxes[:, 2:]], axis=1)
        det_boxes = np.concatenate([clip(gt_boxes[found] + jitter[found]), random_boxes(rng, false_positives)])
        det_classes = np.concatenate([gt_classes[found], rng.integers(1, NUM_CATEGORIES + 1, false_positives)])
        for box, c in zip(det_boxes, det_classes):
            results.append({"image_id": image["id"], "category_id": int(c), "bbox": box.tolist(),
                            "score": float(rng.random())})
    if with_masks:
        add_box_masks(results)
    return {"images": images, "annotations": annotations, "categories": categories}, results


def random_boxes(rng, n):
    """[n, 4] xywh boxes inside the image, sides log-uniform in 8..300 px."""
    sides = np.exp(rng.uniform(np.log(8), np.log(300), (n, 2)))
    w, h = np.minimum(sides[:, 0], WIDTH - 1), np.minimum(sides[:, 1], HEIGHT - 1)
    x, y = rng.uniform(0, WIDTH - w), rng.uniform(0, HEIGHT - h)
    return np.round(np.stack([x, y, w, h], axis=1), 2)


def clip(boxes):
    x1, y1 = np.clip(boxes[:, 0], 0, WIDTH - 1), np.clip(boxes[:, 1], 0, HEIGHT - 1)
    x2 = np.clip(boxes[:, 0] + boxes[:, 2], x1 + 1, WIDTH)
    y2 = np.clip(boxes[:, 1] + boxes[:, 3], y1 + 1, HEIGHT)
    return np.round(np.stack([x1, y1, x2 - x1, y2 - y1], axis=1), 2)


def add_box_masks(results):
    from pycocotools import mask as mask_util

    rles = mask_util.frPyObjects(np.array([r["bbox"] for r in results], np.float64), HEIGHT, WIDTH)
    for r, rle in zip(results, rles):
        r["segmentation"] = {"size": [HEIGHT, WIDTH], "counts": rle["counts"].decode("ascii")}


def time_backend(gt, checked, iou_type, backend, runs):
    """(seconds of each run, stats of the last run)."""
    seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        evaluator, _ = run_cocoeval(gt, checked, iou_type, backend)
        seconds.append(time.perf_counter() - start)
    return seconds, [float(v) for v in evaluator.stats[: len(METRIC_NAMES)]]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=2000, help="synthetic images")
    parser.add_argument("--max-gt", type=int, default=15, help="GT boxes per image: uniform in 1..this")
    parser.add_argument("--false-positives", type=int, default=10, help="random extra detections per image")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per backend (the median is reported)")
    parser.add_argument("--iou-type", choices=("bbox", "segm", "both"), default="bbox")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", metavar="OUT", help="write the figures to this JSON file")
    args = parser.parse_args(argv)
    iou_types = ("bbox", "segm") if args.iou_type == "both" else (args.iou_type,)

    gt, results = synthetic_coco(args.images, args.max_gt, args.false_positives, args.seed, "segm" in iou_types)
    print(f"{len(gt['images'])} images, {len(gt['annotations'])} GT boxes, {len(results)} detections, "
          f"{args.runs} runs per backend (python {platform.python_version()}, {platform.machine()})")
    figures = {"images": len(gt["images"]), "gt": len(gt["annotations"]), "detections": len(results),
               "runs": args.runs, "seed": args.seed, "iou_types": {}}
    for iou_type in iou_types:
        checked = check_results(results, gt, iou_type)
        timings, stats = {}, {}
        for backend in BACKENDS:
            timings[backend], stats[backend] = time_backend(gt, checked, iou_type, backend, args.runs)
            runs = ", ".join(f"{s:.2f}" for s in timings[backend])
            print(f"{iou_type:5s} {backend:17s} median {statistics.median(timings[backend]):7.2f} s  (runs: {runs})")
        speedup = statistics.median(timings["pycocotools"]) / statistics.median(timings["faster-coco-eval"])
        difference = max(abs(a - b) for a, b in zip(stats["pycocotools"], stats["faster-coco-eval"]))
        print(f"{iou_type:5s} speed-up (pycocotools / faster-coco-eval): {speedup:.1f}x; "
              f"AP {stats['pycocotools'][0]:.4f}; largest metric difference {difference:.1e}")
        figures["iou_types"][iou_type] = {
            "median_seconds": {b: statistics.median(t) for b, t in timings.items()},
            "runs_seconds": timings, "speedup": speedup, "stats": stats, "max_abs_difference": difference}
    if args.json:
        write_json(args.json, figures, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
