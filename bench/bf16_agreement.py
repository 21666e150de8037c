"""How many float32 detections bfloat16 inference reproduces, on the same weights and images.

    python bench/bf16_agreement.py --config C --weights W [IMAGE ...] [--set KEY=VALUE ...]
        [--box-px 2] [--score 0.02] [--json OUT]

Images: the files given, or the config's val dataset. Both sides are Predictor.from_weights
(BatchNorms folded, the config's DETECTION_MIN_CONFIDENCE), one with --precision float32, one
with bfloat16 (detection/engine/precision.py). A float32 detection is reproduced when an
unused bfloat16 detection of the same image has its class, every box coordinate within
``--box-px`` pixels and a score within ``--score`` (taken in float32 score order, the
closest box first). Prints and writes the share reproduced, and the bfloat16 detections
left over (new ones).
"""

import argparse
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np


def reproduced(single, half, box_px=2.0, score=0.02):
    """single, half: detection dicts (boxes [N, 4], class_ids [N], scores [N]) of one image
    -> number of ``single``'s detections that ``half`` reproduces (module docstring)."""
    used = np.zeros(len(half["scores"]), bool)
    count = 0
    for i in np.argsort(-np.asarray(single["scores"]), kind="stable"):
        diff = np.abs(np.asarray(half["boxes"]) - single["boxes"][i]).max(axis=1) if len(used) else np.zeros(0)
        ok = (~used & (np.asarray(half["class_ids"]) == single["class_ids"][i]) & (diff <= box_px)
              & (np.abs(np.asarray(half["scores"]) - single["scores"][i]) <= score))
        if ok.any():
            used[np.flatnonzero(ok)[np.argmin(diff[ok])]] = True
            count += 1
    return count


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("images", nargs="*", help="image files (default: the config's val dataset)")
    parser.add_argument("--config", required=True)
    parser.add_argument("--weights", required=True)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--box-px", type=float, default=2.0)
    parser.add_argument("--score", type=float, default=0.02)
    parser.add_argument("--json", metavar="OUT")
    args = parser.parse_args(argv)

    from detection.config import Config
    from detection.data.datasets import load_dataset
    from detection.data.images import read_image
    from detection.engine.precision import warn_if_emulated, with_precision
    from detection.engine.predictor import Predictor, array_records

    config = Config.from_yaml(args.config, overrides=args.set)
    if args.images:
        records = array_records([read_image(p) for p in args.images], paths=args.images)
    else:
        records = load_dataset(config.replace(KEEP_EMPTY_IMAGES=True), "val").records
    outputs = {}
    for precision in ("float32", "bfloat16"):
        changed = with_precision(config, precision)
        warn_if_emulated(changed)
        predictor = Predictor.from_weights(changed, args.weights, log=None)
        outputs[precision] = list(predictor.predict_records(records))
    total = sum(len(d["scores"]) for d in outputs["float32"])
    total_half = sum(len(d["scores"]) for d in outputs["bfloat16"])
    same = sum(reproduced(a, b, args.box_px, args.score) for a, b in zip(outputs["float32"], outputs["bfloat16"]))
    result = {"images": len(records), "float32_detections": total, "bfloat16_detections": total_half,
              "reproduced": same, "share": same / total if total else None,
              "box_px": args.box_px, "score": args.score}
    print(f"{len(records)} images: {same} of {total} float32 detections reproduced by bfloat16 "
          f"({100 * same / max(total, 1):.1f} %; class, box within {args.box_px:g} px, score within "
          f"{args.score:g}); bfloat16 has {total_half} detections, {total_half - same} not matched")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return result


if __name__ == "__main__":
    main()
