"""This machine's sustained convolution throughput through TensorFlow, float32 and bfloat16.

    python bench/peak.py [--runs 5] [--warmup 2] [--size 128] [--channels 256] [--json OUT]

One large 3 x 3 convolution, stride 1, "same" padding, batch 1, ``size`` x ``size`` x
``channels`` -> ``channels`` (128 x 128 x 256: 19.3 GFLOP a call, the shape of ResNet's and
the FPN's big 3 x 3 layers), called in a tf.function as the models' convolutions are; the
GFLOP/s of the median call. bfloat16 takes bfloat16 input and kernel (what Keras'
mixed_bfloat16 policy feeds the kernel). This is the ceiling the benchmark's models are held
against (bench/run.py --only peak: achieved GFLOP/s / peak). On a CPU without bfloat16 dot
products (no avx512_bf16 / amx_bf16) the bfloat16 figure is oneDNN's emulation.
"""

import argparse
import json
import os
import statistics

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf
from timing import time_calls

from detection.engine.precision import cpu_flags, has_native_bfloat16


def conv_flops(size, channels):
    """2 x multiply-adds of one size x size x channels -> channels 3 x 3 "same" convolution."""
    return 2 * size * size * channels * channels * 9


def measure(dtype, size, channels, runs, warmup):
    """[seconds of each call] of the convolution in ``dtype`` ("float32" or "bfloat16")."""
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(1, size, size, channels)).astype(np.float32), dtype=dtype)
    kernel = tf.constant(rng.normal(size=(3, 3, channels, channels)).astype(np.float32) / 48, dtype=dtype)
    conv = tf.function(lambda: tf.nn.conv2d(x, kernel, 1, "SAME"))
    return time_calls(lambda: conv().numpy(), runs, warmup)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--channels", type=int, default=256)
    parser.add_argument("--json", metavar="OUT")
    args = parser.parse_args(argv)
    flops = conv_flops(args.size, args.channels)
    native = has_native_bfloat16(cpu_flags())
    result = {"gflop_per_call": flops / 1e9, "native_bfloat16": native}
    print(f"3x3 conv {args.size}x{args.size}x{args.channels} -> {args.channels}: {flops / 1e9:.1f} GFLOP a call; "
          f"CPU bfloat16 units: {'yes' if native else 'no (bfloat16 emulated)'}")
    for dtype in ("float32", "bfloat16"):
        seconds = measure(dtype, args.size, args.channels, args.runs, args.warmup)
        median = statistics.median(seconds)
        result[dtype] = flops / median / 1e9
        result[f"{dtype}_runs_s"] = seconds
        print(f"  {dtype:9s} {result[dtype]:8.1f} GFLOP/s  (median {median:.3f} s; runs "
              f"{' '.join(f'{s:.3f}' for s in seconds)})", flush=True)
    print(f"  bfloat16 / float32: {result['bfloat16'] / result['float32']:.2f} x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return result


if __name__ == "__main__":
    main()
