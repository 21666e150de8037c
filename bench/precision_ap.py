"""COCO AP in float32 and in bfloat16 on the same weights, and the share of float32 detections
that bfloat16 reproduces (issue 23, item 2).

    python bench/precision_ap.py --model shapes|bccd|raccoon --weights W [--data ../shared/data] [--json OUT]

Weights: a model of bench/shapes_ap.py (``--weights``) or bench/real_ap.py (``--weights-dir``).
The held-out set is the one those scripts evaluate on: configs/shapes.yaml's val images, or
the dataset's test split under --data (configs/<model>.yaml, paths as bench/real_ap.py lays
them). Both precisions run Predictor.from_weights (BatchNorms folded, as tools/eval_coco.py)
down to EVAL_MIN_CONFIDENCE; the detections of each are evaluated once. Reproduced: as
bench/bf16_agreement.py (same class, box within 2 px, score within 0.02), counted over the
detections from EVAL_MIN_CONFIDENCE up and from 0.5 up.
"""

import argparse
import json
import os
import pathlib
import types

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = pathlib.Path(__file__).resolve().parents[1]


def held_out(model, data):
    """(config, val dataset) of ``model`` as bench/shapes_ap.py / bench/real_ap.py evaluate it."""
    from detection.config import Config
    from detection.data.datasets import load_dataset

    if model == "shapes":
        config = Config.from_yaml(REPO / "configs" / "shapes.yaml")
        return config, load_dataset(config, "val")
    import real_ap

    from detection.engine.detector_training import with_dataset_categories

    args = types.SimpleNamespace(config_dir=str(REPO / "configs"), set=[], datasets=[model], data=data)
    config = real_ap.load_config(model, args)
    config = with_dataset_categories(config, load_dataset(config, "train"), f"configs/{model}.yaml")
    return config, load_dataset(config, "val")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=("shapes", "bccd", "raccoon"), required=True)
    parser.add_argument("--weights", required=True)
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--json", metavar="OUT")
    args = parser.parse_args(argv)

    from bf16_agreement import reproduced

    from detection.engine.precision import with_precision
    from detection.engine.predictor import Predictor
    from detection.evaluation.detector_eval import evaluate_predictor

    config, val = held_out(args.model, args.data)
    result = {"model": args.model, "weights": args.weights, "images": len(val.records),
              "load": [round(v, 1) for v in os.getloadavg()]}
    detections = {}
    for precision in ("float32", "bfloat16"):
        predictor = Predictor.from_weights(with_precision(config, precision), args.weights,
                                           score_threshold=config.EVAL_MIN_CONFIDENCE, log=None)
        detections[precision] = found = list(predictor.predict_records(val.records))
        once = types.SimpleNamespace(predict_records=lambda records, progress=False, report=None, d=found: iter(d))
        metrics, _ = evaluate_predictor(once, val, progress=False, log=lambda *a, **k: None)
        result[precision] = {kind: {k: round(v, 4) for k, v in m.items() if k in ("AP", "AP50", "AP75")}
                             for kind, m in metrics.items()}
        print(f"{args.model} {precision}: {result[precision]}", flush=True)
    for threshold in sorted({config.EVAL_MIN_CONFIDENCE, 0.5}):
        above = {p: [{k: d[k][d["scores"] >= threshold] for k in ("boxes", "class_ids", "scores")} for d in ds]
                 for p, ds in detections.items()}
        total = sum(len(d["scores"]) for d in above["float32"])
        same = sum(reproduced(a, b) for a, b in zip(above["float32"], above["bfloat16"]))
        result[f"reproduced_from_{threshold:g}"] = {"reproduced": same, "float32_detections": total}
        print(f"  scores >= {threshold:g}: bfloat16 reproduces {same} of {total} float32 detections", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return result


if __name__ == "__main__":
    main()
