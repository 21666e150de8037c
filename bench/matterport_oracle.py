"""Compare this project's detections with matterport's own on the same .h5 and images.

    python bench/matterport_oracle.py --oracle DIR --weights MODEL.h5 --matterport-config CFG.json [--json OUT]

DIR holds what matterport's ``model.detect([image])`` returned, one image at a time, run
outside this project (its TF2 port, with the weights loaded by name): ``detections.json``, a
list with per image ``file``, ``height``, ``width``, ``rois`` ([y1, x1, y2, x2] ints),
``class_ids``, ``scores``, ``masks_rle`` (pycocotools RLE of each full-image mask). CFG.json
holds the attributes of the matterport Config the model ran with (NAME, BACKBONE,
NUM_CLASSES, IMAGE_MIN_DIM, ...); they are laid over configs/matterport.yaml, BACKBONE as
matterport_<name>.

Our side is tools/infer.py's path (Predictor.from_weights, BatchNorms folded, batches of
IMAGES_PER_GPU): every detection of matterport's is matched to ours of its class with the
largest IoU; printed and written: detections on each side, matched, the largest box
difference (pixels), score difference and the smallest mask IoU over the matched ones.
"""

import argparse
import json
import os
import pathlib
import sys

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def our_config(matterport_values, batch_size):
    from detection.config import Config

    values = dict(matterport_values)
    values["BACKBONE"] = "matterport_" + values.get("BACKBONE", "resnet101")
    values.pop("GPU_COUNT", None)
    values["IMAGES_PER_GPU"] = batch_size
    overrides = [f"{k}={json.dumps(v)}" for k, v in values.items()]
    return Config.from_yaml(REPO / "configs" / "matterport.yaml", overrides=overrides)


def compare(oracle_dir, weights, matterport_values, batch_size=1):
    from pycocotools import mask as mask_utils

    from detection.data.images import read_image
    from detection.engine.predictor import Predictor
    from detection.evaluation.detection_match import match_detections

    expected = json.loads((pathlib.Path(oracle_dir) / "detections.json").read_text())
    predictor = Predictor.from_weights(our_config(matterport_values, batch_size), weights)
    images = [read_image(e["file"]) for e in expected]
    summary = {"images": len(images), "theirs": 0, "ours": 0, "matched": 0, "max_box_diff_px": 0.0,
               "max_score_diff": 0.0, "min_mask_iou": 1.0}
    for entry, result in zip(expected, predictor.detect(images)):
        theirs = {"rois": np.asarray(entry["rois"], float).reshape(-1, 4), "class_ids": entry["class_ids"],
                  "scores": entry["scores"]}
        pairs = match_detections(theirs, result)
        summary["theirs"] += len(entry["scores"])
        summary["ours"] += len(result["scores"])
        summary["matched"] += len(pairs)
        for i, j in pairs:
            summary["max_box_diff_px"] = max(summary["max_box_diff_px"],
                                             float(np.abs(result["rois"][j] - theirs["rois"][i]).max()))
            summary["max_score_diff"] = max(summary["max_score_diff"],
                                            abs(float(result["scores"][j]) - entry["scores"][i]))
            a = mask_utils.decode(entry["masks_rle"][i]).astype(bool)
            b = result["masks"][:, :, j]
            union = np.count_nonzero(a | b)
            summary["min_mask_iou"] = min(summary["min_mask_iou"], np.count_nonzero(a & b) / union if union else 1.0)
    return summary


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--oracle", required=True, help="folder with matterport's detections.json")
    parser.add_argument("--weights", required=True, help="the .h5 both sides run")
    parser.add_argument("--matterport-config", required=True, help="JSON of the matterport Config attributes")
    parser.add_argument("--batch-size", type=int, default=1, help="our batch (matterport ran one image at a time)")
    parser.add_argument("--json", help="write the summary here")
    args = parser.parse_args(argv)
    values = json.loads(pathlib.Path(args.matterport_config).read_text())
    summary = compare(args.oracle, args.weights, values, args.batch_size)
    print(json.dumps(summary, indent=2))
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
