"""The demo behind `make demo`: train on the embedded shapes dataset, evaluate, draw detections.

    python tools/demo.py --output demo_output

1. trains configs/shapes.yaml from random initialisation with tools/train.py (about 15 minutes
   on 2 CPU cores; run again to resume an interrupted demo),
2. measures COCO AP (boxes and masks) on the held-out shapes set, made with another seed,
3. writes a few held-out images as PNG files and runs inference on them, as on your own photos.
"""

import argparse
import json
import os
import pathlib
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]
try:
    import detection  # noqa: F401 (installed by `make setup`: pip install -e .)
except ModuleNotFoundError as e:
    sys.exit(f"error: {e.name} is not installed: run `make setup` in the repository (pip install -e .)")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv=None):
    from detection import cli

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="demo_output", help="folder for everything the demo writes")
    cli.add_config_flags(parser, required=False, default=str(REPO / "configs" / "shapes.yaml"))
    parser.add_argument("--pictures", type=int, default=6, help="held-out images to draw detections on")
    args = parser.parse_args(argv)
    output = pathlib.Path(args.output)
    run_dir = output / "run"

    print(f"[1/3] training {args.config} into {run_dir}", flush=True)
    train = [sys.executable, str(REPO / "tools" / "train.py"), "--config", args.config, "--output", str(run_dir),
             "--resume"] + [f"--set={s}" for s in args.set]
    if subprocess.call(train) != 0:
        print("demo: training failed (see above)", file=sys.stderr)
        return 1

    from detection.config import Config
    from detection.data.datasets import load_dataset
    from detection.engine.predictor import Predictor
    from detection.evaluation.detector_eval import evaluate_predictor
    from detection.inference import find_images, infer_to_folder
    from detection.visualize import save_image

    config = Config.from_yaml(run_dir / "config.yaml")
    weights = run_dir / "final.weights.h5"
    # One model for both: it keeps detections down to EVAL_MIN_CONFIDENCE; pictures show those
    # at DETECTION_MIN_CONFIDENCE and up.
    evaluator = Predictor.from_weights(config, weights, score_threshold=config.EVAL_MIN_CONFIDENCE, log=None)
    predictor = Predictor(config, detector=evaluator.detector)
    val = load_dataset(config, "val")

    print(f"\n[2/3] COCO evaluation on {len(val.records)} held-out images (detections scoring >= "
          f"{evaluator.score_threshold:g}, EVAL_MIN_CONFIDENCE)", flush=True)
    metrics, _ = evaluate_predictor(evaluator, val, progress=False)
    (output / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")

    print(f"\n[3/3] inference on {args.pictures} held-out images written as files", flush=True)
    images_dir = output / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    for record in val.records[:args.pictures]:
        save_image(images_dir / f"shapes_{record.image_id:03d}.png", record.synthetic.render()[0])
    infer_to_folder(predictor, find_images([str(images_dir)]), str(output / "detections"), progress=False)

    box, mask = metrics["bbox"], metrics.get("segm", {})
    print("\nDemo finished.")
    print(f"  bbox AP {box['AP']:.3f}  AP50 {box['AP50']:.3f}  AP75 {box['AP75']:.3f}"
          + (f"   mask AP {mask['AP']:.3f}" if mask else ""))
    print(f"  run folder (config.yaml, log.csv, checkpoints/, logs/ for TensorBoard): {run_dir}")
    print(f"  weights:          {weights}")
    print(f"  metrics:          {output / 'metrics.json'}")
    print(f"  pictures:         {output / 'detections'}/*.jpg (detections.json beside them)")
    print(f"  TensorBoard:      .venv/bin/tensorboard --logdir {run_dir / 'logs'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
