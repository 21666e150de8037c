"""The README's picture of detections: a grid of held-out shapes images with a model's detections.

    python bench/readme_picture.py --weights shapes15.weights.h5 --output docs/images/demo_detections.jpg

The weights are those `bench/shapes_ap.py --weights OUT` writes (configs/shapes.yaml). The
images are the first --count of the held-out shapes set (the one COCO AP is measured on);
detections are drawn from DETECTION_MIN_CONFIDENCE up, as tools/infer.py draws them.
"""

import argparse
import os
import pathlib
import sys

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", required=True)
    parser.add_argument("--config", default=str(REPO / "configs" / "shapes.yaml"))
    parser.add_argument("--output", required=True, help=".jpg or .png")
    parser.add_argument("--count", type=int, default=8, help="images in the grid")
    parser.add_argument("--columns", type=int, default=4)
    args = parser.parse_args(argv)

    from detection.config import Config
    from detection.data.datasets import load_dataset
    from detection.engine.predictor import Predictor
    from detection.visualize import display_instances, save_image

    config = Config.from_yaml(args.config)
    predictor = Predictor.from_weights(config, args.weights, log=None)
    records = load_dataset(config, "val").records[: args.count]
    images = [record.synthetic.render()[0] for record in records]  # shapes images are drawn, not read
    tiles = [display_instances(image, result) for image, result in zip(images, predictor.detect(images))]
    rows = [np.concatenate(tiles[i:i + args.columns], axis=1) for i in range(0, len(tiles), args.columns)]
    save_image(args.output, np.concatenate(rows, axis=0))
    print(f"{len(tiles)} images, detections scoring >= {predictor.score_threshold:g} -> {args.output}")


if __name__ == "__main__":
    sys.exit(main())
