"""Detect objects in image files: a COCO results file and a picture per image.

    python tools/infer.py --config configs/shapes.yaml --weights runs/shapes/final.weights.h5 \\
        --output out/ [--score-threshold 0.5] [--batch-size 4] [--set KEY=VALUE ...] IMAGE_OR_DIR...

Images: files (taken as given) and folders (their .jpg/.jpeg/.png files, any case, not
recursing), run in batches of --batch-size (default IMAGES_PER_GPU; the last batch is padded).
Writes OUTPUT/detections.json (COCO results: image_id = index of the image in the order
processed, category_id = the dataset's own id, for a config with CLASS_NAMES the contiguous
ids 1..K, bbox [x, y, w, h] original pixels, score, segmentation RLE with masks, and
file_name) and OUTPUT/<stem>.jpg with boxes, labels and masks drawn.
--score-threshold T keeps detections scoring >= T: it sets DETECTION_MIN_CONFIDENCE, so it
can also go below the config's value.
Unreadable images are skipped with a warning naming each; the count is printed at the end.
Class names: CLASS_NAMES of the config, else its val dataset's (detection/categories.py).
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # this checkout's detection
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    parser.add_argument("images", nargs="+", metavar="IMAGE_OR_DIR", help="image files and folders of images")
    parser.add_argument("--config", required=True, help="config YAML of the model")
    parser.add_argument("--weights", required=True, help="weights file (.weights.h5) of the model")
    parser.add_argument("--output", required=True, metavar="DIR", help="folder for detections.json and the pictures")
    parser.add_argument("--score-threshold", type=float, metavar="T", help="keep detections scoring >= T")
    parser.add_argument("--batch-size", type=int, metavar="N", help="images per batch (default IMAGES_PER_GPU)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override (repeatable)")
    parser.add_argument("--no-pictures", action="store_true", help="write detections.json only")
    args = parser.parse_args(argv)
    if args.score_threshold is not None and not 0 <= args.score_threshold <= 1:
        parser.error("--score-threshold must be in [0, 1]")
    if args.batch_size is not None and args.batch_size < 1:
        parser.error("--batch-size must be at least 1")
    return args


def main(argv=None):
    args = parse_args(argv)
    from detection.categories import model_categories
    from detection.config import Config
    from detection.engine.predictor import Predictor
    from detection.inference import image_records, infer_to_folder

    try:
        config = Config.from_yaml(args.config, overrides=args.set)
        if args.score_threshold is not None:
            config = config.replace(DETECTION_MIN_CONFIDENCE=args.score_threshold)
        class_names, category_ids = model_categories(config)
    except ValueError as e:  # ConfigError, DataError: one line
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    records, skipped = image_records(args.images)
    if not records:
        print(f"error: no readable image among {len(skipped)} file(s)", file=sys.stderr)
        return 2
    predictor = Predictor.from_weights(config, args.weights, batch_size=args.batch_size)
    summary = infer_to_folder(predictor, records, args.output, class_names, category_ids,
                              pictures=not args.no_pictures)
    unreadable = len(skipped) + len(summary["skipped"])
    print(f"{summary['images']} image(s) processed, {summary['detections']} detection(s), "
          f"{unreadable} unreadable image(s) skipped; wrote {os.path.join(args.output, 'detections.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
