"""stat_gt: how well the anchors reach a dataset's GT boxes, before any training.

    python tools/stat_gt.py --config C [--format coco|voc|shapes --images DIR --annotations A
        --split FILE --strict] [--subset train|val] [--output DIR] [--json FILE]
        [--per-gt FILE.csv] [--worst N] [--suggest [--suggest-sample N] [--suggest-objective
        guarded|overall]] [--weights W [--proposal-images N]] [--set KEY=VALUE ...]

Example (bccd, standard VOC layout, all 364 images):

    python tools/stat_gt.py --config configs/base.yaml --format voc --annotations ../shared/data/bccd
        --output runs/stat_bccd --json runs/stat_bccd/stats.json --suggest   (one command line)

For every non-crowd GT box, in the model-input frame after the config's resize: the best IoU
over all anchors the model uses (its ANCHOR_GENERATOR, one or with ANCHOR_SCALES_ON_EVERY_LEVEL
every scale per level), the number of anchors at IoU >= RPN_POSITIVE_IOU, and the level, scale
and ratio of the best anchor; summarised overall, by size (COCO buckets in input pixels) and by
aspect, with the worst-matched boxes and the loader's data validation summary.

--output DIR   PNGs: best_iou_hist, gt_shapes (w x h, coloured by best IoU, anchors drawn),
               matched_by_size; with --suggest also suggest and suggest_shapes; with --weights
               proposal_recall.
--suggest      anchor scales and ratios that match more boxes at RPN_POSITIVE_IOU, with
               before/after figures and a YAML snippet for the config
               (detection/analysis/suggest.py says how, and what the guard protects); one
               scale per level, so with ANCHOR_SCALES_ON_EVERY_LEVEL true the report says in
               one line that it does not apply.
--per-gt F     one CSV line per GT box: image_id, y1, x1, y2, x2 (input frame), best_iou,
               positive_anchors, level, scale, ratio.
--weights W    also run the model's RPN: proposal recall at IoU 0.5 / 0.7 for the top 100,
               300 and 1000 proposals, and the GT boxes no proposal reaches at 0.5
               (rcnn misses), by size.

Exit status 2 with one line on stderr for a config or data error.
"""

import os
import sys

import numpy as np

try:
    import detection  # noqa: F401 (installed by `make setup`: pip install -e .)
except ModuleNotFoundError as e:
    sys.exit(f"error: {e.name} is not installed: run `make setup` in the repository (pip install -e .)")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from detection import cli  # noqa: E402
from detection.analysis import plots  # noqa: E402
from detection.analysis.anchor_match import AnchorSpec  # noqa: E402
from detection.analysis.anchor_stats import match_dataset, summarize  # noqa: E402
from detection.analysis.report import format_report, write_json, write_per_gt_csv  # noqa: E402
from detection.config import ConfigError  # noqa: E402
from detection.data.datasets import load_dataset  # noqa: E402
from detection.data.validation import DataError  # noqa: E402
from detection.modeling.weights import WeightsError  # noqa: E402


def parse_args(argv=None):
    parser = cli.tool_parser(__doc__)
    cli.add_config_flags(parser, several_per_flag=True)
    cli.add_dataset_flags(parser)
    parser.add_argument("--subset", choices=("train", "val"), default="train", help="which subset (default train)")
    parser.add_argument("--output", metavar="DIR", help="folder for the PNG figures")
    parser.add_argument("--json", metavar="FILE", help="write the summary as JSON")
    parser.add_argument("--per-gt", metavar="FILE.csv", help="write one CSV line per GT box")
    parser.add_argument("--worst", type=int, default=20, help="worst-matched boxes to list (default 20)")
    parser.add_argument("--suggest", action="store_true", help="suggest anchor scales and ratios")
    parser.add_argument("--suggest-sample", type=int, default=3000, help="GT boxes the suggestion search scores on")
    parser.add_argument("--suggest-objective", choices=("guarded", "overall"), default="guarded",
                        help="guarded (default): no size bucket with >= 5%% of the boxes may lose over 5 points "
                             "of matched fraction; overall: no such guard")
    cli.add_weights_flags(parser, required=False)  # with --weights: also measure RPN proposal recall
    parser.add_argument("--proposal-images", type=int, help="with --weights: predict the first N images only")
    args = parser.parse_args(argv)
    args.set = cli.overrides(args)
    # Flags that only mean something with another one: refused alone, not ignored.
    if args.proposal_images is not None and not args.weights:
        parser.error("--proposal-images needs --weights (it limits the images the model runs on)")
    if args.exclude and not args.weights:
        parser.error("--exclude needs --weights")
    defaults = {"suggest_sample": 3000, "suggest_objective": "guarded"}
    changed = [f"--{k.replace('_', '-')}" for k, v in defaults.items() if getattr(args, k) != v]
    if changed and not args.suggest:
        parser.error(f"{', '.join(changed)} needs --suggest")
    if args.proposal_images is not None and args.proposal_images < 1:
        parser.error("--proposal-images must be at least 1")
    return args


def proposal_stage(args, config, dataset, table, summary):
    """Runs the model over the dataset and adds the proposal recall to ``summary``."""
    # Imported here: the anchor statistics must not pay for building the model.
    from detection.analysis.proposal_recall import proposals_by_image, recall_for_table, summarize_recall
    from detection.engine.predictor import Predictor

    records = dataset.records[:args.proposal_images] if args.proposal_images else dataset.records
    predictor = Predictor.from_weights(config, args.weights, exclude=args.exclude)
    predictions = predictor.predict_records(records, progress=True, report=dataset.report)
    proposals = proposals_by_image(predictions, dataset.records)
    summary["proposals"] = summarize_recall(recall_for_table(table, proposals), table.heights * table.widths)
    summary["proposals"]["images"] = len(proposals)
    summary["proposals"]["mean_proposals_per_image"] = (
        float(np.mean([len(p) for p in proposals.values()])) if proposals else None)


def main(argv=None):
    args = parse_args(argv)
    try:
        config = cli.config_from_args(args, subset=args.subset)
        dataset = load_dataset(config, args.subset)
    except (ConfigError, DataError) as e:
        print(f"stat_gt: {e}", file=sys.stderr)
        return 2
    spec = AnchorSpec.from_config(config)
    table, counts = match_dataset(dataset.records, config)
    summary = {"dataset": {"name": dataset.name, "source": dataset.source, "subset": args.subset}}
    summary.update(summarize(table, counts, config, worst=args.worst))
    summary["data"] = {"summary": dataset.report.summary(file=None), "problems": dict(dataset.report.counts)}

    suggestion = None
    if args.suggest and len(table):
        from detection.analysis.suggest import not_applicable, suggest_anchors

        if not_applicable(spec):
            summary["suggestion_not_made"] = not_applicable(spec)
        else:
            suggestion = suggest_anchors(table, spec, config.RPN_POSITIVE_IOU, sample_size=args.suggest_sample,
                                         seed=config.SEED, objective=args.suggest_objective)
            summary["suggestion"] = suggestion.to_dict()
    if args.weights:
        try:
            proposal_stage(args, config, dataset, table, summary)
        except WeightsError as e:
            print(f"stat_gt: {e}", file=sys.stderr)
            return 2

    print(f"stat_gt: {dataset.name} ({args.subset}) from {dataset.source}")
    print(format_report(summary))
    if args.output:
        os.makedirs(args.output, exist_ok=True)
        paths = list(plots.write_standard_plots(table, summary, spec, args.output).values())
        if suggestion is not None:
            paths.append(os.path.join(args.output, "suggest.png"))
            plots.plot_suggestion(table.heights, table.widths, suggestion.best_before, suggestion.best_after,
                                  spec, suggestion.spec, config.RPN_POSITIVE_IOU, paths[-1])
            paths.append(os.path.join(args.output, "suggest_shapes.png"))
            plots.plot_gt_shapes(table.heights, table.widths, suggestion.best_after, spec, paths[-1],
                                 other_spec=suggestion.spec,
                                 title="GT shapes coloured by best IoU with the suggested anchors (circles)")
        if "proposals" in summary:
            paths.append(os.path.join(args.output, "proposal_recall.png"))
            plots.plot_proposal_recall(summary["proposals"], paths[-1])
        print("figures: " + ", ".join(paths))
    if args.json:
        write_json(summary, args.json)
    if args.per_gt:
        write_per_gt_csv(table, spec, args.per_gt)
    return 0


if __name__ == "__main__":
    sys.exit(main())
