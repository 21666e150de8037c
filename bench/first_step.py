"""CPU seconds of a detector's first training step (its trace, graph optimisation and run),
compiled two ways: ``training_model.compile(optimizer)`` alone, and ``Detector.compile``,
which builds the optimizer's slots before the step. Each variant runs ``--repeats`` times,
alternately, each in a fresh process (TensorFlow keeps traces per process); prints every
figure and the median ratio.

    python bench/first_step.py [--repeats 3] [--set KEY=VALUE ...]

The model is the tests' tiny shapes detector (tests/trained_shapes.py: 64 px, width 8, 4
images a batch) with SGD momentum 0.9, as tools/train.py uses; --set changes its config.
"""

import argparse
import json
import os
import pathlib
import resource
import statistics
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]


def _cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(variant, overrides):
    """One process's figure: {"build": s, "first_step": s, "next_step": s} (CPU seconds)."""
    import importlib.util

    import keras
    import tensorflow as tf

    from detection.config import Config
    from detection.data.datasets import load_dataset
    from detection.data.pipeline import make_dataset
    from detection.modeling.detector import Detector

    spec = importlib.util.spec_from_file_location("trained_shapes", REPO / "tests" / "trained_shapes.py")
    trained_shapes = importlib.util.module_from_spec(spec)  # the fixture's config, not its pytest setup
    spec.loader.exec_module(trained_shapes)
    config = Config.from_yaml(REPO / "configs" / "shapes.yaml", overrides=trained_shapes.OVERRIDES + overrides)
    keras.utils.set_random_seed(config.SEED)
    batch = next(iter(make_dataset(load_dataset(config, "train"), config, training=False, repeat=False)))
    data = tf.data.Dataset.from_tensors(batch).repeat()
    start = _cpu_seconds()
    detector = Detector(config)
    optimizer = keras.optimizers.SGD(config.LEARNING_RATE, momentum=config.LEARNING_MOMENTUM,
                                     global_clipnorm=config.GRADIENT_CLIP_NORM)
    if variant == "detector_compile":
        detector.compile(optimizer)
    else:
        detector.training_model.compile(optimizer)
    figures = {"build": _cpu_seconds() - start}
    for name in ("first_step", "next_step"):
        start = _cpu_seconds()
        detector.training_model.fit(data, steps_per_epoch=1, epochs=1, verbose=0)
        figures[name] = _cpu_seconds() - start
    return figures


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--variant", choices=["model_compile", "detector_compile"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.variant:  # a child process: one figure
        print("FIGURES " + json.dumps(measure(args.variant, args.set)), flush=True)
        return 0
    results = {"model_compile": [], "detector_compile": []}
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    for _ in range(args.repeats):
        for variant in results:
            out = subprocess.run([sys.executable, __file__, "--variant", variant,
                                  *[f"--set={s}" for s in args.set]],
                                 capture_output=True, text=True, env=env, check=True).stdout
            figures = json.loads(next(line for line in out.splitlines() if line.startswith("FIGURES "))[8:])
            results[variant].append(figures)
            print(variant, {k: round(v, 2) for k, v in figures.items()}, flush=True)
    medians = {v: statistics.median(f["first_step"] for f in rows) for v, rows in results.items()}
    print(f"first step, median CPU s: training_model.compile {medians['model_compile']:.2f}, "
          f"Detector.compile {medians['detector_compile']:.2f}, ratio "
          f"{medians['model_compile'] / medians['detector_compile']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
