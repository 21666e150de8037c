"""Convert a legacy Keras 2 .h5 (matterport's mask_rcnn_coco.h5, or any model trained with its
code), or a torchvision .pth (with a configs/torchvision_*.yaml config), into this project's
.weights.h5 for the same architecture.

    python tools/convert_weights.py --config configs/matterport_coco.yaml \\
        --weights weights/mask_rcnn_coco.h5 --output weights/mask_rcnn_coco.weights.h5 [--exclude L ...]

The legacy file is loaded by layer name into the config's model (what was loaded is printed,
as by every tool's --weights) and saved with Detector.save_weights: a file that then loads by
structure, as tools/train.py writes them, with no report to read. The config must describe
the model the file was trained as (configs/matterport.yaml and the values of your matterport
Config); a file of which nothing fits stops with one line.
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
    cli.add_config_flags(parser, help="config YAML of the model the file holds")
    cli.add_weights_flags(parser)
    parser.add_argument("--output", required=True, metavar="FILE.weights.h5", help="where to write our weights file")
    args = parser.parse_args(argv)
    if not args.output.endswith(".weights.h5"):
        parser.error("--output must end in .weights.h5 (Keras' weights format)")
    return args


def main(argv=None):
    args = parse_args(argv)
    from detection.modeling.detector import Detector
    from detection.modeling.torchvision_weights import is_pth
    from detection.modeling.weights import is_legacy_h5

    try:
        config = cli.config_from_args(args)
        if not is_pth(args.weights) and not is_legacy_h5(args.weights):
            print(f"error: {args.weights} is already a .weights.h5 file (nothing to convert)", file=sys.stderr)
            return 2
        else:
            detector = Detector(config, batch_size=1, training=False)
            detector.load_weights(args.weights, exclude=args.exclude)
    except ValueError as e:  # ConfigError, WeightsError: one line
        if not cli.is_detection_error(e):
            raise
        print(cli.error_line(e), file=sys.stderr)
        return 2
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    detector.save_weights(args.output)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
