"""Evaluate detections: a COCO results file, or a trained model on a dataset.

Results mode (no TensorFlow, seconds)::

    python tools/eval_coco.py --annotations GT.json --results DT.json [--iou-type bbox|segm|both]
        [--backend faster-coco-eval|pycocotools] [--json OUT]

Model mode (predicts with the model, then evaluates)::

    python tools/eval_coco.py --config C --weights W [--annotations GT --images DIR] [--limit N]
        [--output DT.json] [--json OUT] [--metric coco|voc] [--format FORMAT]
        [--split FILE] [--strict] [--set KEY=VALUE ...] [--batch-size N] [--voc07] [--exclude L ...]
        [--precision float32|bfloat16]

The dataset flags override the config's DATASET_FORMAT and VAL_* keys (detection.data.cli).
Model mode keeps detections down to the config's EVAL_MIN_CONFIDENCE (0.05 by default, as
Detectron2 and TF Model Garden; COCO AP counts low-scoring detections too), up to
DETECTION_MAX_INSTANCES per image, and says so; --set EVAL_MIN_CONFIDENCE=T changes it. Any
--batch-size works, and so does the config.yaml of a multi-GPU run (inference uses one device).
--precision: the inference precision (default bfloat16 when the config's MIXED_PRECISION is
bfloat16, else float32; detection/engine/precision.py; a one-line warning where the CPU lacks
native bfloat16). A model-mode flag given in results mode is refused, not ignored. Model mode
prints the val data's validation summary first (truncated and undecodable images are found
there), and again at the end when reading the images counted more.

--iou-type default: bbox, plus segm when every result (model: every detection) has a mask.
--json OUT writes {"bbox": metrics, "segm": metrics} (model mode with --metric voc:
{"voc": ...}); metrics as detection.evaluation.coco.evaluate_coco returns them.
Bad input (unknown ids, malformed JSON, a missing field) is one line on stderr and exit
status 2.
"""

import sys
import warnings

try:
    import detection  # noqa: F401 (installed by `make setup`: pip install -e .)
except ModuleNotFoundError as e:
    sys.exit(f"error: {e.name} is not installed: run `make setup` in the repository (pip install -e .)")

from detection import cli  # noqa: E402
from detection.engine.precision import add_precision_flag  # noqa: E402
from detection.evaluation.coco import BACKENDS, DEFAULT_BACKEND, IOU_TYPES, evaluate_coco  # noqa: E402
from detection.evaluation.errors import EvaluationError  # noqa: E402
from detection.evaluation.json_io import write_json  # noqa: E402

# Flags that only model mode uses, and how to tell each was given.
MODEL_MODE_FLAGS = {
    "--limit": lambda a: a.limit is not None, "--batch-size": lambda a: a.batch_size is not None,
    "--output": lambda a: a.output is not None, "--metric": lambda a: a.metric is not None,
    "--voc07": lambda a: a.voc07, "--set": lambda a: bool(a.set), "--images": lambda a: a.images is not None,
    "--format": lambda a: a.format is not None, "--split": lambda a: a.split is not None,
    "--strict": lambda a: bool(a.strict), "--exclude": lambda a: bool(a.exclude),
    "--precision": lambda a: a.precision is not None,
}


def parse_args(argv=None):
    parser = cli.tool_parser(__doc__)
    cli.add_dataset_flags(parser)  # --annotations (both modes), --images, --format, --split, --strict
    parser.add_argument("--results", help="results mode: COCO results JSON file to evaluate")
    parser.add_argument("--iou-type", choices=IOU_TYPES + ("both",), help="what to evaluate (default: see above)")
    parser.add_argument("--backend", choices=BACKENDS, default=DEFAULT_BACKEND, help="COCOeval implementation")
    parser.add_argument("--json", metavar="OUT", help="write the metrics to this JSON file")
    model = parser.add_argument_group("model mode")
    cli.add_config_flags(model, required=False, help="config YAML of the model")
    cli.add_weights_flags(model, required=False)
    model.add_argument("--limit", type=int, help="evaluate the first N images only")
    model.add_argument("--batch-size", type=int, help="images per prediction batch (default: the config's)")
    model.add_argument("--output", metavar="DT.json", help="write the detections as a COCO results file")
    model.add_argument("--metric", choices=("coco", "voc"), help="COCO AP (default) or VOC mAP at IoU 0.5")
    model.add_argument("--voc07", action="store_true", help="VOC2007 11-point AP instead of all-point")
    add_precision_flag(model)
    args = parser.parse_args(argv)
    model_mode = args.config is not None or args.weights is not None
    if model_mode == (args.results is not None):
        parser.error("give either --results (results mode) or --config and --weights (model mode)")
    if not model_mode and args.annotations is None:
        parser.error("results mode needs --annotations (the COCO GT file)")
    if not model_mode:
        given = [flag for flag, value in MODEL_MODE_FLAGS.items() if value(args)]
        if given:
            parser.error(f"{', '.join(given)}: model-mode flag(s), not used with --results (results mode "
                         "evaluates the file as it is)")
    if model_mode and not (args.config and args.weights):
        parser.error("model mode needs --config and --weights")
    if args.limit is not None and args.limit < 1:
        parser.error("--limit must be at least 1")
    return args


def iou_types_of(choice):
    """--iou-type value -> a tuple of iou types, or None for the default (see above)."""
    return None if choice is None else IOU_TYPES if choice == "both" else (choice,)


def evaluate_results(args):
    return evaluate_coco(args.annotations, args.results, iou_types=iou_types_of(args.iou_type), backend=args.backend)


def evaluate_model(args):
    # Imported here: results mode must not pay for TensorFlow.
    from detection.data.datasets import load_dataset
    from detection.engine.precision import warn_if_emulated, with_precision
    from detection.engine.predictor import Predictor
    from detection.evaluation.detector_eval import evaluate_predictor

    config = cli.config_from_args(args, subset="val")
    config = with_precision(config, args.precision)
    warn_if_emulated(config)
    # Images without GT count too: detections there are false positives.
    config = config.replace(KEEP_EMPTY_IMAGES=True)
    dataset = load_dataset(config, "val")
    dataset.report.summary()
    counts_at_load = dict(dataset.report.counts)
    predictor = Predictor.from_weights(config, args.weights, batch_size=args.batch_size,
                                       score_threshold=config.EVAL_MIN_CONFIDENCE, exclude=args.exclude)
    print(f"evaluating detections scoring >= {predictor.score_threshold:g} (EVAL_MIN_CONFIDENCE), "
          f"at most {config.DETECTION_MAX_INSTANCES} per image, batches of {predictor.batch_size}", flush=True)
    metrics, results = evaluate_predictor(
        predictor, dataset, metric=args.metric or "coco",
        annotations=config.VAL_ANNOTATIONS if config.DATASET_FORMAT == "coco" else None,
        limit=args.limit, iou_types=iou_types_of(args.iou_type),
        backend=args.backend, use_07_metric=args.voc07, model_category_ids=config.CATEGORY_IDS)
    if dict(dataset.report.counts) != counts_at_load:  # found while reading the images
        dataset.report.summary()
    if args.output:
        write_json(args.output, results)
        print(f"wrote {len(results)} detections to {args.output}")
    return metrics


def main(argv=None):
    args = parse_args(argv)
    warnings.formatwarning = lambda message, category, *rest, **kw: f"warning: {message}\n"
    try:
        metrics = evaluate_model(args) if args.config else evaluate_results(args)
        if args.json:
            write_json(args.json, metrics, indent=2)
            print(f"wrote metrics to {args.json}")
    except EvaluationError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except ValueError as e:  # ConfigError and the data loaders' errors: one line too
        if cli.is_detection_error(e):
            print(cli.error_line(e), file=sys.stderr)
            return 2
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
