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

import os
import sys

try:
    import detection  # noqa: F401 (installed by `make setup`: pip install -e .)
except ModuleNotFoundError as e:
    sys.exit(f"error: {e.name} is not installed: run `make setup` in the repository (pip install -e .)")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from detection import cli  # noqa: E402


def parse_args(argv=None):
    parser = cli.tool_parser(__doc__)
    cli.add_config_flags(parser, help="config YAML of the model")
    cli.add_weights_flags(parser)
    parser.add_argument("--output", required=True, metavar="DIR",
                        help="SavedModel folder (for TF Serving: BASE/<version>, e.g. export/detector/1)")
    from detection.engine.precision import add_precision_flag

    add_precision_flag(parser)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from detection.categories import model_categories
    from detection.engine.precision import warn_if_emulated, with_precision
    from detection.export import export_from_weights

    try:
        config = with_precision(cli.config_from_args(args), args.precision)
        warn_if_emulated(config)
        class_names, category_ids = model_categories(config)
        export_from_weights(config, args.weights, args.output, class_names, category_ids, exclude=args.exclude)
    except ValueError as e:  # ConfigError, DataError, WeightsError: one line
        if not cli.is_detection_error(e):
            raise
        print(cli.error_line(e), file=sys.stderr)
        return 2
    print(f"wrote SavedModel to {args.output} (signature serving_default: images [batch, H, W, 3] uint8)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
