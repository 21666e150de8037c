"""Pictures of what the model is trained on: augmented training samples with their GT drawn.

    python tools/show_samples.py --config configs/shapes.yaml -n 8 --output samples/ \\
        [--seed S] [--set KEY=VALUE ...] [--format ... --images ... --annotations ...]

Takes the first N images of make_dataset(training=True) (shuffled, augmented with the
config's AUGMENTATION, resized and padded: the model-input frame) and writes
OUTPUT/sample_000.png ... with the GT boxes, class names and masks (mini masks expanded back
into their boxes) drawn. The dataset flags override the config's TRAIN_* keys.
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
    cli.add_config_flags(parser)
    parser.add_argument("-n", type=int, default=8, help="number of samples (default 8)")
    parser.add_argument("--output", required=True, metavar="DIR", help="folder for the pictures")
    parser.add_argument("--seed", type=int, help="shuffle and augmentation seed (default the config's SEED)")
    cli.add_dataset_flags(parser)
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error("-n must be at least 1")
    return args


def main(argv=None):
    args = parse_args(argv)
    from detection.data.datasets import load_dataset
    from detection.visualize import write_input_samples

    try:
        config = cli.config_from_args(args, subset="train")
        dataset = load_dataset(config, "train")
    except ValueError as e:  # ConfigError, DataError: one line
        print(cli.error_line(e), file=sys.stderr)
        return 2
    paths = write_input_samples(dataset, config, args.n, args.output, seed=args.seed)
    print(f"wrote {len(paths)} sample(s) to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
