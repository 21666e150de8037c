"""stat_gt's outputs as text: the printed report, the JSON file and the per-GT CSV.

The report is made from the summary dict alone (``anchor_stats.summarize``, plus the optional
"data", "suggestion" and "proposals" entries), so a saved JSON prints the same way.
"""

import csv
import json
import os

import numpy as np

from detection.analysis.anchor_stats import ASPECT_BUCKETS, SIZE_BUCKETS


def format_report(summary):
    """The summary dict -> a printable multi-line report."""
    c = summary["config"]
    t_pos = c["RPN_POSITIVE_IOU"]
    keys = summary["thresholds"]
    by_shape = summary["anchor_num_by_input_shape"]
    shapes = ", ".join(f"{s} ({v['images']} images)" for s, v in list(by_shape.items())[:3])
    if len(by_shape) > 3:
        shapes += f" and {len(by_shape) - 3} more shapes"
    lines = [
        f"Anchors: scales {_list(c['RPN_ANCHOR_SCALES'])}"
        f"{' each on every level' if c.get('ANCHOR_SCALES_ON_EVERY_LEVEL') else ''}, "
        f"ratios (w/h) {_list(c['RPN_ANCHOR_RATIOS'])}, {c.get('ANCHOR_GENERATOR', 'standard')} generator, "
        f"strides {_list(c['BACKBONE_STRIDES'])}, anchor stride {c['RPN_ANCHOR_STRIDE']}; "
        f"RPN IoU positive >= {t_pos:g}, negative < {c['RPN_NEGATIVE_IOU']:g}",
        f"Input: {c['IMAGE_RESIZE_MODE']} resize, min dim {c['IMAGE_MIN_DIM']}, max dim {c['IMAGE_MAX_DIM']}; "
        f"padded inputs {shapes or 'none'}; {summary['anchor_num']} anchors per image"
        + (" (mean)" if len(by_shape) > 1 else ""),
        f"Images {summary['image_num']} ({summary['images_without_gt']} without GT boxes); "
        f"GT boxes {summary['gt_num']} (excluded: {summary['crowd_num']} crowd, "
        f"{summary['degenerate_num']} without area in the input frame)",
        "",
    ]
    header = f"{'':<10} {'gt':>6} {'min':>6} {'p10':>6} {'median':>6} {'mean':>6} " + " ".join(
        f"{'>=' + k:>6}" for k in keys) + f" {'miss':>6} {'pos/gt':>6}"
    lines += ["Best IoU of each GT box over all anchors (miss: best IoU < RPN_POSITIVE_IOU; "
              "pos/gt: anchors at IoU >= RPN_POSITIVE_IOU)", header]
    overall = {k: summary[k] for k in ("best_iou", "matched_fraction", "miss_match_gt_num", "positive_anchors_per_gt")}
    lines.append(_row("all", dict(overall, gt_num=summary["gt_num"]), keys))
    for name, _, _ in SIZE_BUCKETS:
        lines.append(_row(name, summary["by_size"][name], keys))
    for name, _, _ in ASPECT_BUCKETS:
        lines.append(_row(name, summary["by_aspect"][name], keys))
    histogram = summary["positive_anchors_per_gt"]["histogram"]
    lines += ["", "Positive anchors per GT box: " + ", ".join(f"{k}: {v}" for k, v in histogram.items()),
              "Best anchor's level: " + ", ".join(f"{k} {v}" for k, v in summary["best_level"].items())]
    if c.get("ANCHOR_SCALES_ON_EVERY_LEVEL"):  # else the level names the scale
        lines.append("Best anchor's scale: " + ", ".join(f"{k} {v}" for k, v in summary["best_scale"].items()))
    if summary["worst"]:
        lines += ["", f"Worst matched boxes (input frame [y1, x1, y2, x2]; "
                      f"the {len(summary['worst'])} lowest best IoUs):"]
        for w in summary["worst"]:
            lines.append(f"  image {w['image_id']!s:<12} box {_list(w['box']):<32} "
                         f"{w['size'][0]:g} x {w['size'][1]:g} px"
                         f"  best IoU {w['best_iou']:.3f} ({w['level']} scale {w['scale']:g} ratio {w['ratio']:g})")
    if "suggestion_not_made" in summary:
        lines += ["", f"No anchor suggestion: {summary['suggestion_not_made']}"]
    if "suggestion" in summary:
        lines += ["", format_suggestion(summary["suggestion"])]
    if "proposals" in summary:
        lines += ["", format_proposals(summary["proposals"])]
    if "data" in summary:
        lines += ["", summary["data"]["summary"]]
    return "\n".join(lines)


def format_suggestion(suggestion):
    """The ``suggest.suggest_anchors`` result -> before/after lines and the YAML to paste."""
    t = suggestion["positive_iou"]
    lines = [f"Suggested anchors (k-means on GT shapes, then local search on {suggestion['sample_gt_num']} "
             f"sampled boxes with the exact matcher, objective: {suggestion['objective']}):"]
    lines.append(f"  {'':<10} {'before':>8} {'after':>8}")
    for name in suggestion["before"]["matched_fraction_by_size"]:
        b = suggestion["before"]["matched_fraction_by_size"][name]
        a = suggestion["after"]["matched_fraction_by_size"][name]
        lines.append(f"  {name:<10} {_num(b):>8} {_num(a):>8}   matched fraction at {t:g}")
    for key, what in (("matched_fraction", f"matched fraction at {t:g}"), ("mean_best_iou", "mean best IoU"),
                      ("mean_positive_anchors", "positive anchors per GT")):
        lines.append(f"  {'all':<10} {_num(suggestion['before'][key]):>8} {_num(suggestion['after'][key]):>8}   {what}")
    lines += ["  k-means shapes (h x w): " + ", ".join(f"{h:.0f}x{w:.0f}" for h, w in suggestion["kmeans_shapes"]),
              "  Config snippet:", *("    " + line for line in suggestion["yaml"].splitlines())]
    return "\n".join(lines)


def format_proposals(proposals):
    """The ``proposal_recall.summarize_recall`` result -> recall table lines."""
    ks = proposals["top_k"]
    keys = proposals["iou_thresholds"]
    per_image = proposals.get("mean_proposals_per_image")
    lines = [f"RPN proposals: recall of GT boxes (best IoU over the top k proposals >= threshold); "
             f"rcnn miss: no proposal at IoU >= {proposals['miss_iou']}",
             f"  {proposals.get('images', '?')} images predicted, {_num(per_image, 0)} proposals per image "
             f"(a top k beyond that means all of them)",
             (f"  {'':<8} {'gt':>6} " + " ".join(f"{f'top{k}@{t}':>11}" for k in ks for t in keys)
              + f" {'rcnn miss':>10}")]
    for name, group in [("all", proposals)] + list(proposals["by_size"].items()):
        cells = " ".join(f"{_num(group['recall'][str(k)][t]):>11}" for k in ks for t in keys)
        lines.append(f"  {name:<8} {group['gt_num']:>6} {cells} {group['rcnn_miss_match_gt_num']:>10}")
    return "\n".join(lines)


def _row(name, group, keys):
    dist = group["best_iou"] or {}
    fractions = group["matched_fraction"]
    mean_pos = group["positive_anchors_per_gt"]["mean"]
    return (f"{name:<10} {group['gt_num']:>6} "
            + " ".join(_num(dist.get(k)).rjust(6) for k in ("min", "p10", "median", "mean"))
            + " " + " ".join(_num(fractions[k]).rjust(6) for k in keys)
            + f" {group['miss_match_gt_num']:>6} {_num(mean_pos, 2):>6}")


def _num(value, digits=3):
    return "-" if value is None else f"{value:.{digits}f}"


def _list(values):
    return "[" + ", ".join(f"{v:g}" for v in values) + "]"


def write_json(summary, path):
    """Writes the summary as indented JSON (atomically: a reader never sees half a file)."""
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(summary, f, indent=1, default=_json_default)
        f.write("\n")
    os.replace(tmp, path)


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


PER_GT_COLUMNS = ("image_id", "y1", "x1", "y2", "x2", "best_iou", "positive_anchors", "level", "scale", "ratio")


def write_per_gt_csv(table, spec, path):
    """One line per GT box of a matched GtTable: image_id, the box in INPUT pixels, best IoU,
    positive anchors, and the best anchor's level (P2..), scale and ratio."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(PER_GT_COLUMNS)
        names = spec.level_names
        for i in range(len(table)):
            y1, x1, y2, x2 = (f"{float(v):.2f}" for v in table.boxes[i])
            writer.writerow([table.image_id[i], y1, x1, y2, x2, f"{table.best_iou[i]:.6f}",
                             int(table.positive_anchors[i]), names[table.level[i]],
                             f"{table.scale[i]:g}", f"{spec.ratios[table.ratio_index[i]]:g}"])
