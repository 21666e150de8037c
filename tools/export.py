"""Export a trained detector as a SavedModel for TensorFlow Serving.

    python tools/export.py --config configs/shapes.yaml --weights runs/shapes/final.weights.h5 \\
        --output export/detector/1 [--set KEY=VALUE ...]

The SavedModel's serving_default signature takes images [batch, H, W, 3] uint8 RGB of any
batch and size and returns boxes [batch, D, 4] ([y1, x1, y2, x2] in that image's pixels),
class_ids [batch, D] (the dataset's own ids), scores [batch, D], num_detections [batch] and,
for Mask R-CNN, masks [batch, D, 28, 28] box-relative probabilities. Resizing, padding and
image_meta happen inside. The full contract and a TensorFlow Serving example (docker and
curl) are in detection/export.py.

--precision float32|bfloat16: the precision the SavedModel computes in (default from the
config's MIXED_PRECISION, detection/engine/precision.py).
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # this checkout's detection
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def parse_args(argv=None):
    from detection.engine.precision import add_precision_flag
    from detection.modeling.weights import add_weights_flags

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    parser.add_argument("--config", required=True, help="config YAML of the model")
    add_weights_flags(parser)
    parser.add_argument("--output", required=True, metavar="DIR",
                        help="SavedModel folder (for TF Serving: BASE/<version>, e.g. export/detector/1)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override (repeatable)")
    add_precision_flag(parser)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from detection.categories import model_categories
    from detection.config import Config
    from detection.engine.precision import warn_if_emulated, with_precision
    from detection.export import export_from_weights

    try:
        config = with_precision(Config.from_yaml(args.config, overrides=args.set), args.precision)
        warn_if_emulated(config)
        class_names, category_ids = model_categories(config)
        export_from_weights(config, args.weights, args.output, class_names, category_ids, exclude=args.exclude)
    except ValueError as e:  # ConfigError, DataError, WeightsError: one line
        if not type(e).__module__.startswith("detection."):
            raise
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    print(f"wrote SavedModel to {args.output} (signature serving_default: images [batch, H, W, 3] uint8)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
