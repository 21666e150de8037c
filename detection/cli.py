"""The command line the tools share: the parser, --config and --set, --weights and --exclude,
the dataset flags, the Config they describe, and one-line errors.

    parser = tool_parser(__doc__)              # description: the first paragraph; the rest as epilog
    add_config_flags(parser)                   # --config (required), --set KEY=VALUE (repeatable)
    add_weights_flags(parser)                  # --weights, --exclude
    add_dataset_flags(parser)                  # --format, --images, --annotations, --split, --strict
    args = parser.parse_args(argv)
    config = config_from_args(args, subset="val")   # the YAML, its --set overrides, the dataset flags

Importing this module does not import TensorFlow (a tool's --help stays fast).
"""

import argparse

from detection.data.cli import add_dataset_flags, config_with_dataset_flags
from detection.modeling.weights import add_weights_flags

__all__ = ["add_config_flags", "add_dataset_flags", "add_weights_flags", "config_from_args",
           "config_with_dataset_flags", "error_line", "is_detection_error", "tool_parser"]

SET_HELP = "config override KEY=VALUE, the value parsed as YAML (repeatable)"


def tool_parser(doc):
    """An ArgumentParser whose description is the first paragraph of ``doc`` (a tool's module
    docstring) and whose epilog is the rest, kept as written."""
    paragraphs = doc.split("\n\n")
    return argparse.ArgumentParser(description=paragraphs[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                   epilog="\n\n".join(paragraphs[1:]))


def add_config_flags(parser, required=True, help="config YAML", default=None, several_per_flag=False):
    """Adds --config and --set. several_per_flag: ``--set A=1 B=2`` takes both (else one
    KEY=VALUE per --set, so that positional arguments may follow)."""
    parser.add_argument("--config", required=required, default=default, help=help)
    if several_per_flag:
        parser.add_argument("--set", action="append", nargs="+", default=[], metavar="KEY=VALUE", help=SET_HELP)
    else:
        parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=SET_HELP)
    return parser


def overrides(args):
    """The --set values as one flat list of KEY=VALUE strings."""
    return [item for value in args.set for item in (value if isinstance(value, list) else [value])]


def config_from_args(args, subset=None):
    """The Config of --config with the --set overrides, and the dataset flags applied to
    ``subset`` ("train" or "val") when given. Raises ConfigError (one line)."""
    from detection.config import Config

    config = Config.from_yaml(args.config, overrides=overrides(args))
    return config_with_dataset_flags(config, args, subset) if subset else config


def is_detection_error(error):
    """True for the errors the package raises for bad input (ConfigError, DataError,
    WeightsError, ...): a tool prints them as one line; anything else is a bug, left to raise."""
    return type(error).__module__.startswith("detection.")


def error_line(error):
    """``error: <message on one line>``, what a tool prints for a detection error."""
    return f"error: {' '.join(str(error).split())}"
