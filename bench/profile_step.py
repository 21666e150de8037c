"""Where a training step's (or a prediction's) time goes: TensorFlow profiler op statistics of
the benchmark detector (bench/models.py settings), and the wall time no convolution covers.

    python bench/profile_step.py [--mask] [--steps 2] [--top 25] [--json OUT]
    python bench/profile_step.py --infer 832 1344    # batch-1 inference at that input size

Traces ``--steps`` fit steps (or inference calls) after warm-up with tf.profiler and reads the
trace (XPlane):

  op time      summed duration of each op type on TensorFlow's executor threads (ops run
               concurrently, so the sum exceeds the wall time; the shares are what count)
  wall time    the step's span, split into the time some convolution / matmul (or its
               gradient) is running and the time none is: the latter is what targets,
               proposals, NMS, sampling, RoIAlign, losses and graph overhead cost on the
               critical path, whatever they overlap with
  by layer     op time grouped by the Keras layer in the op's name (the top ``--top``)
"""

import argparse
import collections
import glob
import json
import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import models
import tensorflow as tf

# Op types that are the arithmetic floor: convolutions and matmuls with their gradients.
DENSE_OP_MARKERS = ("Conv2D", "MatMul", "Conv2DBackprop", "Einsum")


def is_dense(op_type):
    return any(marker in op_type for marker in DENSE_OP_MARKERS)


def trace_ops(logdir):
    """[(op name, op type, start ps, end ps)] of every op on the executor threads of the trace."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    path = glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)[0]
    space = xplane_pb2.XSpace()
    with open(path, "rb") as f:
        space.ParseFromString(f.read())
    ops = []
    for plane in space.planes:
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):
                continue
            base = line.timestamp_ns * 1000
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                if ":" not in name or name.startswith("ExecutorState"):  # executor bookkeeping, not an op
                    continue
                op_name, op_type = name.rsplit(":", 1)
                start = base + event.offset_ps
                ops.append((op_name, op_type, start, start + event.duration_ps))
    return ops


def covered(intervals):
    """Total length of the union of [start, end) intervals."""
    total, current_end = 0, None
    for start, end in sorted(intervals):
        if current_end is None or start > current_end:
            total += end - start
            current_end = end
        elif end > current_end:
            total += end - current_end
            current_end = end
    return total


def layer_of(op_name):
    """The Keras layer in a TF op name (.../detector_training_1/<layer>_1/..., or
    detector_inference), else its scope."""
    parts = op_name.split("/")
    for i, part in enumerate(parts):
        if part.startswith(("detector_training", "detector_inference")) and i + 1 < len(parts):
            return parts[i + 1].rsplit("_", 1)[0] if parts[i + 1][-1].isdigit() else parts[i + 1]
    return parts[1] if len(parts) > 1 else op_name


def summarize(ops, steps, top):
    """Dict of the op-type and layer shares and the wall-time split (seconds per step)."""
    by_type, by_layer = collections.Counter(), collections.Counter()
    for name, op_type, start, end in ops:
        by_type[op_type] += (end - start) / 1e12 / steps
        layer = layer_of(name)
        if "gradient_tape" in name:
            layer += " (grad)"
        by_layer[layer] += (end - start) / 1e12 / steps
    wall = (max(o[3] for o in ops) - min(o[2] for o in ops)) / 1e12 / steps
    dense_wall = covered([(o[2], o[3]) for o in ops if is_dense(o[1])]) / 1e12 / steps
    total = sum(by_type.values())
    dense = sum(v for k, v in by_type.items() if is_dense(k))
    return {
        "wall_s": wall, "dense_covered_wall_s": dense_wall, "uncovered_wall_s": wall - dense_wall,
        "op_s": total, "dense_op_s": dense, "dense_op_share": dense / total,
        "op_types": dict(by_type.most_common(top)), "layers": dict(by_layer.most_common(top)),
    }


def training_runner(mask):
    """run(n): n fit steps of the benchmark training model on a fixed 2 x 512 x 512 batch."""
    config = models.bench_config(mask=mask)
    model = models.detector_training(config)
    data = tf.data.Dataset.from_tensors(models.synthetic_batch(config, 512, 512)).repeat()
    return lambda n: model.fit(data, epochs=1, steps_per_epoch=n, shuffle=False, verbose=0)


def inference_runner(mask, height, width, fold=True):
    """run(n): n batch-1 predictions at height x width, built as bench/run.py's infer does."""
    config = models.inference_config(height, width, mask)
    call = models.forward_call(*models.detector_inference(config, height, width, fold))
    return lambda n: models.time_calls(call, n, 0)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mask", action="store_true", help="profile the Mask R-CNN step")
    parser.add_argument("--steps", type=int, default=2, help="traced steps (after 2 warm-up steps)")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--infer", nargs=2, type=int, metavar=("H", "W"),
                        help="profile batch-1 inference at H x W (multiples of 64) instead of training")
    parser.add_argument("--no-fold", action="store_true",
                        help="with --infer: keep the BatchNormalizations (default: folded, as users run it)")
    parser.add_argument("--json", metavar="OUT")
    args = parser.parse_args(argv)

    run = inference_runner(args.mask, *args.infer, fold=not args.no_fold) if args.infer else training_runner(args.mask)
    run(2)  # trace and warm up
    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        run(args.steps)
        tf.profiler.experimental.stop()
        summary = summarize(trace_ops(logdir), args.steps, args.top)

    print(f"per step: wall {summary['wall_s']:.2f} s, "
          f"of which a conv/matmul runs {summary['dense_covered_wall_s']:.2f} s "
          f"and none runs {summary['uncovered_wall_s']:.2f} s ({summary['uncovered_wall_s'] / summary['wall_s']:.0%})")
    print(f"op time {summary['op_s']:.2f} s summed over threads, conv/matmul {summary['dense_op_share']:.0%}")
    print("op types (s per step, share of op time):")
    for name, seconds in summary["op_types"].items():
        print(f"  {seconds:7.3f}  {seconds / summary['op_s']:5.1%}  {name}")
    print("layers:")
    for name, seconds in summary["layers"].items():
        print(f"  {seconds:7.3f}  {seconds / summary['op_s']:5.1%}  {name}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=1)
    return summary


if __name__ == "__main__":
    main()
