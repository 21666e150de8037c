"""Detect objects in image files or a dataset's images: a COCO results file and a picture per image.

    python tools/infer.py --config configs/shapes.yaml --weights runs/shapes/final.weights.h5 \\
        --output out/ [--score-threshold 0.5] [--batch-size 4] [--set KEY=VALUE ...] IMAGE_OR_DIR...
    python tools/infer.py --config C --weights W --output out/ --format coco --annotations val.json --images val/

Images: files (taken as given) and folders (their .jpg/.jpeg/.png files, any case, not
recursing), or, with no image arguments, the images of the dataset the dataset flags (or the
config's VAL_* keys) describe; run in batches of --batch-size (default IMAGES_PER_GPU; the
last batch is padded). Each image is decoded once, at full size.
Writes OUTPUT/detections.json (COCO results: image_id = the image's index in the order given,
or the dataset's own image id, so that `tools/eval_coco.py --results` evaluates it against the
dataset's GT; category_id = the dataset's own id (the config's CATEGORY_IDS, which
tools/train.py records; 1..K without them); bbox [x, y, w, h] original pixels, score,
segmentation RLE with masks, and file_name) and OUTPUT/<stem>.jpg with boxes, labels and masks
drawn.
--score-threshold T keeps detections scoring >= T (default DETECTION_MIN_CONFIDENCE).
--precision float32|bfloat16: the inference precision (default bfloat16 when the config's
MIXED_PRECISION is bfloat16, else float32; detection/engine/precision.py); on a CPU without
native bfloat16 a one-line warning says bfloat16 is emulated there.
--strict: an unreadable image (or any problem of the dataset) stops the run with one line.
--weights takes our .weights.h5 or a legacy Keras 2 .h5 (matterport's), see --exclude.
Unreadable images are skipped with a warning naming each; the count is printed at the end.
A truncated JPEG is processed as far as its data go (the rest grey), with a warning, and counted.
Class names: CLASS_NAMES of the config, else its val dataset's (detection/categories.py).
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
    from detection.engine.precision import add_precision_flag

    parser = cli.tool_parser(__doc__)
    parser.add_argument("paths", nargs="*", metavar="IMAGE_OR_DIR",
                        help="image files and folders of images (none: the dataset's images)")
    cli.add_config_flags(parser, help="config YAML of the model")
    cli.add_weights_flags(parser)
    parser.add_argument("--output", required=True, metavar="DIR", help="folder for detections.json and the pictures")
    parser.add_argument("--score-threshold", type=float, metavar="T", help="keep detections scoring >= T")
    parser.add_argument("--batch-size", type=int, metavar="N", help="images per batch (default IMAGES_PER_GPU)")
    parser.add_argument("--no-pictures", action="store_true", help="write detections.json only")
    add_precision_flag(parser)
    cli.add_dataset_flags(parser)
    args = parser.parse_args(argv)
    if args.score_threshold is not None and not 0 <= args.score_threshold <= 1:
        parser.error("--score-threshold must be in [0, 1]")
    if args.batch_size is not None and args.batch_size < 1:
        parser.error("--batch-size must be at least 1")
    dataset_flags = [f"--{flag}" for flag in ("format", "annotations", "split") if getattr(args, flag) is not None]
    if args.images is not None:
        dataset_flags.append("--images")
    if args.paths and dataset_flags:
        parser.error(f"give image files or a dataset ({', '.join(dataset_flags)}), not both")
    return args


def images_to_run(args, config):
    """The image paths given, or the records of the dataset the flags (or VAL_*) describe."""
    from detection.data.datasets import load_dataset
    from detection.inference import find_images

    if args.paths:
        return find_images(args.paths)
    dataset = load_dataset(cli.config_with_dataset_flags(config, args, "val").replace(KEEP_EMPTY_IMAGES=True), "val")
    dataset.report.summary()
    return dataset.records


def main(argv=None):
    args = parse_args(argv)
    from detection.engine.precision import warn_if_emulated, with_precision
    from detection.engine.predictor import Predictor
    from detection.inference import infer_to_folder

    try:
        config = with_precision(cli.config_from_args(args), args.precision)
        warn_if_emulated(config)
        images = images_to_run(args, config)
        if not images:
            print("error: no image to run on (give image files or folders, or a dataset)", file=sys.stderr)
            return 2
        predictor = Predictor.from_weights(config, args.weights, batch_size=args.batch_size,
                                           score_threshold=args.score_threshold, exclude=args.exclude)
        predictor.categories  # noqa: B018 (resolves the class names now: a bad config fails before any work)
        summary = infer_to_folder(predictor, images, args.output, pictures=not args.no_pictures,
                                  strict=bool(args.strict))
    except ValueError as e:  # ConfigError, DataError, WeightsError: one line
        if not cli.is_detection_error(e):
            raise
        print(cli.error_line(e), file=sys.stderr)
        return 2
    if not summary["images"]:
        print(f"error: no readable image among {len(summary['skipped'])} file(s)", file=sys.stderr)
        return 2
    print(f"{summary['images']} image(s) processed, {summary['detections']} detection(s) scoring >= "
          f"{predictor.score_threshold:g}, {len(summary['skipped'])} unreadable image(s) skipped, "
          f"{len(summary['truncated'])} truncated image(s) read as far as their data go; "
          f"wrote {os.path.join(args.output, 'detections.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
