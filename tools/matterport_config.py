"""Turn a matterport config, as its config.display() printed it, into a config for this project.

    python tools/matterport_config.py training_log.txt --output configs/my_model.yaml
    python tools/infer.py --config configs/my_model.yaml --weights mask_rcnn_my_model_0030.h5 --output out/ photos/

The input is any text holding matterport's "Configurations:" dump (every matterport training
prints it; in a notebook, `config.display()`). The output is based on configs/matterport.yaml
and holds the values that differ from it; what was renamed or left out is printed. See
docs/migrating_from_matterport.md.
"""

import argparse
import os
import pathlib
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]
try:
    import detection  # noqa: F401 (installed by `make setup`: pip install -e .)
except ModuleNotFoundError as e:
    sys.exit(f"error: {e.name} is not installed: run `make setup` in the repository (pip install -e .)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    parser.add_argument("display", help="text file with matterport's config.display() output ('-': stdin)")
    parser.add_argument("--output", required=True, metavar="FILE.yaml", help="the config to write")
    parser.add_argument("--base", default=str(REPO / "configs" / "matterport.yaml"), help="config to base it on")
    args = parser.parse_args(argv)
    from detection.matterport_config import convert_display

    try:
        text = sys.stdin.read() if args.display == "-" else pathlib.Path(args.display).read_text()
        yaml_text, notes = convert_display(text, args.base, os.path.dirname(os.path.abspath(args.output)))
    except (OSError, ValueError) as e:  # ConfigError is a ValueError: one line
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    for note in notes:
        print(f"note: {note}")
    pathlib.Path(args.output).write_text(yaml_text)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
