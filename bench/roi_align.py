"""Time of PyramidROIAlign's two modes: crop_and_resize, and gather (without and with XLA).

    python bench/roi_align.py [--images 2] [--rois 512] [--size 512] [--channels 256] [--pool 7]
                              [--runs 7] [--warmup 2] [--seed 0] [--deterministic] [--json OUT]

Inputs, reproducible from --seed: P2..P5 of a --size px input ([images, size / s, size / s,
channels] for s = 4, 8, 16, 32, normal noise) and --rois RoIs per image, sqrt(area) log-uniform
in 16..512 px, aspect 1:2..2:1, clipped to the image as proposals are. Timed, each as one
tf.function (graph mode, as in a Keras train step): the forward pass, and the forward plus the
gradient w.r.t. the feature maps of sum(output * fixed random weights); crop_and_resize and
gather in graph mode, gather also with jit_compile=True (crop_and_resize has no XLA kernel).
Each configuration runs --warmup times (tracing, compiling), then --runs timed runs; printed:
the median and the fastest run, the median over crop_and_resize's of the same pass, and the
largest difference of each mode's output from crop_and_resize's (a check that both compute
the same thing). CPU timings on a shared machine are noisy: the load average is printed too.

crop_and_resize's CPU gradient adds overlapping crops from several threads without locking
(tensorflow/tensorflow#42033): it loses contributions at random, so its gradient, and the
forward+backward difference printed here, changes from run to run (by as much as the gradient
itself where many RoIs overlap). --deterministic calls tf.config.experimental.enable_op_determinism()
first, which makes it exact; the gather gradient is deterministic either way.
"""

import argparse
import os
import platform
import statistics

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf
import timing

from detection.evaluation.json_io import write_json
from detection.layers.roi_align import PyramidROIAlign, roi_levels

STRIDES = (4, 8, 16, 32)
CONFIGURATIONS = [("crop_and_resize", False), ("gather", False), ("gather", True)]


def make_inputs(images, rois_per_image, size, channels, pool, seed):
    """(rois [images, rois, 4] input pixels, P2..P5 [images, size / s, size / s, channels],
    weights [images, rois, pool, pool, channels]), all float32 tensors, from ``seed``."""
    rng = np.random.default_rng(seed)
    maps = [tf.constant(rng.normal(size=(images, size // s, size // s, channels)).astype("float32"))
            for s in STRIDES]
    scale = np.exp(rng.uniform(np.log(16), np.log(512), (images, rois_per_image, 1)))
    aspect = np.exp(rng.uniform(-1, 1, (images, rois_per_image, 1)) * np.log(2) / 2)
    half = np.concatenate([scale * aspect, scale / aspect], axis=-1) / 2
    centres = rng.uniform(0, size, (images, rois_per_image, 2))
    rois = np.clip(np.concatenate([centres - half, centres + half], axis=-1), 0, size)
    weights = rng.normal(size=(images, rois_per_image, pool, pool, channels)).astype("float32")
    return tf.constant(rois.astype("float32")), maps, tf.constant(weights)


def passes(mode, jit, pool, weights):
    """{"forward": f, "forward+backward": g}: tf.functions of (rois, *maps) for one mode."""
    layer = PyramidROIAlign(pool, STRIDES, mode=mode, name=f"roi_align_{mode}")

    def forward(rois, *maps):
        return layer(rois, *maps)

    def forward_backward(rois, *maps):
        with tf.GradientTape() as tape:
            tape.watch(maps)
            loss = tf.reduce_sum(layer(rois, *maps) * weights)
        return tape.gradient(loss, maps)

    return {"forward": tf.function(forward, jit_compile=jit),
            "forward+backward": tf.function(forward_backward, jit_compile=jit)}


def time_runs(fn, args, runs, warmup):
    """Seconds of each of ``runs`` calls of fn(*args) after ``warmup`` calls, results fetched."""
    return timing.time_calls(lambda: [t.numpy() for t in tf.nest.flatten(fn(*args))], runs, warmup)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=2)
    parser.add_argument("--rois", type=int, default=512, help="RoIs per image")
    parser.add_argument("--size", type=int, default=512, help="input side in pixels (P2 is size / 4)")
    parser.add_argument("--channels", type=int, default=256)
    parser.add_argument("--pool", type=int, default=7)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--deterministic", action="store_true",
                        help="enable TF op determinism (an exact crop_and_resize gradient)")
    parser.add_argument("--json", metavar="OUT", help="write the figures to this JSON file")
    args = parser.parse_args(argv)
    if args.deterministic:
        tf.config.experimental.enable_op_determinism()

    rois, maps, weights = make_inputs(args.images, args.rois, args.size, args.channels, args.pool, args.seed)
    inputs = (rois, *maps)
    per_level = np.bincount(roi_levels(rois).numpy().ravel(), minlength=4).tolist()
    load_before = os.getloadavg()
    print(f"{args.images} images x {args.rois} RoIs (per level P2..P5: {per_level}), {args.channels} channels, "
          f"{args.size} px input, pool {args.pool}; {args.warmup} warm-up + {args.runs} timed runs; "
          f"op determinism {'on' if args.deterministic else 'off'}; "
          f"tensorflow {tf.__version__}, {os.cpu_count()} CPUs, python {platform.python_version()}, "
          f"load average {load_before[0]:.1f}")

    figures = {"settings": vars(args) | {"rois_per_level": per_level, "tensorflow": tf.__version__,
                                          "cpus": os.cpu_count(), "load_average_before": load_before[0]},
               "results": []}
    reference = {}
    for mode, jit in CONFIGURATIONS:
        name = mode + (" + XLA" if jit else "")
        for pass_name, fn in passes(mode, jit, args.pool, weights).items():
            out = [t.numpy() for t in tf.nest.flatten(fn(*inputs))]
            reference.setdefault(pass_name, out)
            difference = max(float(np.abs(a - b).max()) for a, b in zip(out, reference[pass_name]))
            times = time_runs(fn, inputs, args.runs, args.warmup)
            median = statistics.median(times)
            base = next((r["median_s"] for r in figures["results"]
                         if r["pass"] == pass_name and r["mode"] == "crop_and_resize"), median)
            figures["results"].append({"mode": mode, "jit_compile": jit, "pass": pass_name, "median_s": median,
                                       "min_s": min(times), "times_s": times, "ratio_to_crop_and_resize": median / base,
                                       "max_abs_difference": difference})
            print(f"  {name:<18} {pass_name:<17} median {median * 1000:8.1f} ms  min {min(times) * 1000:8.1f} ms  "
                  f"x{median / base:5.2f} of crop_and_resize  max |diff| {difference:.1e}", flush=True)
    figures["settings"]["load_average_after"] = os.getloadavg()[0]
    print(f"load average after: {figures['settings']['load_average_after']:.1f}")
    if args.json:
        write_json(args.json, figures, indent=2)


if __name__ == "__main__":
    main()
