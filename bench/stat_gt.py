"""Benchmark of stat_gt's anchor matching: synthetic GT boxes against a 1024 x 1024 ResNet-FPN
anchor set (scales 32..512, ratios 0.5/1/2, strides 4..64: 261,888 anchors per image).

    python bench/stat_gt.py [--boxes 100000] [--per-image 100] [--json OUT]

Boxes: sides log-uniform in 4..800 input pixels, aspect (w/h) log-uniform in 1/4..4, placed
uniformly inside 1024 x 1024 images (scale 1 under the default square resize). Times the
whole statistics path (input frame, exact matching, summary) and reports the peak RSS of the
process (numpy, no TensorFlow).
"""

import argparse
import json
import os
import resource
import time

import numpy as np

from detection.analysis.anchor_match import AnchorSpec
from detection.analysis.anchor_stats import ImageBoxes, gt_table, match_table, summarize
from detection.config import Config


def synthetic_images(num_boxes, per_image, side=1024, seed=0):
    """ImageBoxes of side x side images holding ``num_boxes`` boxes in all (see module docstring)."""
    rng = np.random.default_rng(seed)
    images = []
    for i in range(-(-num_boxes // per_image)):
        n = min(per_image, num_boxes - i * per_image)
        size = np.exp(rng.uniform(np.log(4), np.log(800), n))
        aspect = np.exp(rng.uniform(np.log(0.25), np.log(4), n))
        h, w = np.minimum(size / np.sqrt(aspect), side), np.minimum(size * np.sqrt(aspect), side)
        y, x = rng.uniform(0, side - h), rng.uniform(0, side - w)
        boxes = np.stack([y, x, y + h, x + w], axis=1).astype(np.float32)
        images.append(ImageBoxes(i, side, side, boxes, np.zeros(n, bool)))
    return images


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--boxes", type=int, default=100_000, help="GT boxes in all")
    parser.add_argument("--per-image", type=int, default=100, help="GT boxes per image")
    parser.add_argument("--json", help="write the figures to this JSON file")
    args = parser.parse_args(argv)

    config = Config({"IMAGE_RESIZE_MODE": "square", "IMAGE_MIN_DIM": 800, "IMAGE_MAX_DIM": 1024})
    spec = AnchorSpec.from_config(config)
    images = synthetic_images(args.boxes, args.per_image)
    start = time.perf_counter()
    table, counts = gt_table(images, config)
    framed = time.perf_counter()
    match_table(table, spec, config.RPN_POSITIVE_IOU, exact_above=min(0.3, config.RPN_NEGATIVE_IOU))
    matched = time.perf_counter()
    summary = summarize(table, counts, config)
    done = time.perf_counter()
    result = {
        "gt_boxes": len(table),
        "images": counts.image_num,
        "anchors_per_image": spec.anchor_count((1024, 1024)),
        "seconds_total": round(done - start, 3),
        "seconds_input_frame": round(framed - start, 3),
        "seconds_matching": round(matched - framed, 3),
        "seconds_summary": round(done - matched, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "matched_fraction_0.7": summary["matched_fraction"]["0.7"],
        "cpu_count": os.cpu_count(),
    }
    print(f"stat_gt matching: {result['gt_boxes']} GT boxes x {result['anchors_per_image']} anchors per image "
          f"({result['images']} images): {result['seconds_total']:.2f} s "
          f"(input frame {result['seconds_input_frame']:.2f}, matching {result['seconds_matching']:.2f}, "
          f"summary {result['seconds_summary']:.2f}); peak RSS {result['peak_rss_mb']:.0f} MB")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return result


if __name__ == "__main__":
    main()
