"""stat_gt's figures as PNG files, headless.

Built on ``matplotlib.figure.Figure`` with the Agg canvas rather than pyplot, so no display is
needed and no global backend is switched under the caller's feet. Sizes are in model-INPUT
pixels throughout, like the anchors they are compared with.
"""

import os

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from detection.analysis.anchor_stats import SIZE_BUCKETS
from detection.core.anchors import anchor_shapes

_IOU_CMAP = "RdYlGn"  # red = badly matched, green = well matched
_LEVEL_COLOURS = ("#1f77b4", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#7f7f7f")


def _save(figure, path):
    FigureCanvasAgg(figure)
    figure.savefig(path, dpi=110, bbox_inches="tight")


def _no_data(ax, text="no GT boxes"):
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=12)


def plot_best_iou_histogram(best_iou, positive_iou, negative_iou, path,
                            title="Best IoU of each GT box over all anchors"):
    """Histogram of best_iou [G] (0..1) with the RPN thresholds marked; saved to ``path``."""
    figure = Figure(figsize=(7.5, 4.2))
    ax = figure.add_subplot()
    best_iou = np.asarray(best_iou, np.float64)
    if len(best_iou):
        ax.hist(best_iou, bins=np.linspace(0, 1, 51), color="#4c72b0", edgecolor="white", linewidth=0.5)
        for t, style, name in ((negative_iou, ":", "RPN_NEGATIVE_IOU"), (positive_iou, "--", "RPN_POSITIVE_IOU")):
            ax.axvline(t, color="#c44e52", linestyle=style, linewidth=1.5)
            ax.text(t, 0.98, f" {name} {t:g}\n {np.mean(best_iou >= t):.0%} of boxes at or above",
                    transform=ax.get_xaxis_transform(), va="top", fontsize=8, color="#c44e52",
                    bbox=dict(boxstyle="round,pad=0.2", fc="white", ec="none", alpha=0.8))
    else:
        _no_data(ax)
    ax.set_xlim(0, 1)
    ax.set_xlabel("best IoU over all anchors")
    ax.set_ylabel("GT boxes")
    ax.set_title(f"{title} ({len(best_iou)} boxes)")
    _save(figure, path)


def _draw_anchor_shapes(ax, spec, marker="x", size=70, label_prefix="", alpha=1.0):
    """Marks each (scale, ratio) anchor shape at (width, height), coloured by scale (one per level,
    or with every_level each scale on every level)."""
    for i, scale in enumerate(spec.scales):
        heights, widths = anchor_shapes([scale], spec.ratios)
        colour = _LEVEL_COLOURS[i % len(_LEVEL_COLOURS)]
        where = "every level" if spec.every_level else spec.level_names[i]
        ax.scatter(widths, heights, marker=marker, s=size, color=colour, linewidths=2, alpha=alpha, zorder=5,
                   label=f"{label_prefix}scale {scale:g} anchors ({where})")


def _draw_size_buckets(ax, low, high):
    """Dotted lines of constant area at the COCO bucket edges (straight lines on log axes)."""
    xs = np.geomspace(low, high, 50)
    for _, edge, _ in SIZE_BUCKETS[1:]:
        ax.plot(xs, edge / xs, color="grey", linestyle=":", linewidth=1, zorder=1)
        side = np.sqrt(edge)
        ax.annotate(f"area {side:.0f}\u00b2", (side, side), xytext=(4, 4), textcoords="offset points",
                    fontsize=7, color="dimgrey", bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none", alpha=0.8))


def plot_gt_shapes(heights, widths, best_iou, spec, path, other_spec=None, title=None):
    """GT width x height (log axes), coloured by best IoU, with the anchor shapes drawn over.

    heights, widths, best_iou: [G] input pixels and best IoU; spec: AnchorSpec drawn as crosses;
    other_spec: optional second AnchorSpec (a suggestion) drawn as circles.
    """
    figure = Figure(figsize=(8.5, 7))
    ax = figure.add_subplot()
    heights, widths, best_iou = (np.asarray(v, np.float64) for v in (heights, widths, best_iou))
    a_h, a_w = anchor_shapes(spec.scales, spec.ratios)
    sides = np.concatenate([heights, widths, a_h, a_w])
    low, high = sides.min() / 1.5, sides.max() * 1.5
    if len(heights):
        # Worst boxes drawn last, so the problems are on top.
        order = np.argsort(-best_iou, kind="stable")
        size = 14 if len(heights) < 2000 else 5
        points = ax.scatter(widths[order], heights[order], c=best_iou[order], cmap=_IOU_CMAP, norm=Normalize(0, 1),
                            s=size, alpha=0.8, linewidths=0, rasterized=True)
        figure.colorbar(points, ax=ax, label="best IoU over all anchors", fraction=0.046, pad=0.03)
    else:
        _no_data(ax)
    _draw_size_buckets(ax, low, high)
    _draw_anchor_shapes(ax, spec, label_prefix="" if other_spec is None else "current ")
    if other_spec is not None:
        _draw_anchor_shapes(ax, other_spec, marker="o", size=90, label_prefix="suggested ", alpha=0.9)
        for coll in ax.collections[-len(other_spec.scales):]:
            coll.set_facecolor("none")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(low, high)
    ax.set_ylim(low, high)
    ax.set_aspect("equal")
    ax.set_xlabel("GT width (input pixels)")
    ax.set_ylabel("GT height (input pixels)")
    ax.set_title(title or f"GT box shapes ({len(heights)} boxes) and anchor shapes")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(loc="upper left", fontsize=7, framealpha=0.85)
    _save(figure, path)


def plot_matched_by_size(summary, path):
    """Bars of the matched fraction per size bucket (and all boxes) at each reported threshold."""
    figure = Figure(figsize=(7.5, 4.2))
    ax = figure.add_subplot()
    groups = [("all", summary["gt_num"], summary["matched_fraction"])]
    groups += [(name, g["gt_num"], g["matched_fraction"]) for name, g in summary["by_size"].items()]
    keys = summary["thresholds"]
    width = 0.8 / len(keys)
    colours = colormaps["Blues"](np.linspace(0.45, 0.95, len(keys)))
    for k, key in enumerate(keys):
        values = [fractions[key] for _, _, fractions in groups]
        xs = np.arange(len(groups)) + (k - (len(keys) - 1) / 2) * width
        bars = ax.bar(xs, [v or 0.0 for v in values], width, color=colours[k], label=f"best IoU >= {key}")
        ax.bar_label(bars, labels=["" if v is None else f"{v:.0%}" for v in values], fontsize=7, padding=1)
    ax.set_xticks(np.arange(len(groups)), [f"{name}\n({n} boxes)" for name, n, _ in groups])
    ax.set_ylim(0, 1.2)
    ax.set_ylabel("fraction of GT boxes matched")
    t_pos = summary["config"]["RPN_POSITIVE_IOU"]
    ax.set_title(f"GT boxes reached by an anchor, by size (RPN positive at IoU {t_pos:g})")
    ax.set_xlabel("COCO size buckets by area in input pixels: small < 32\u00b2 <= medium < 96\u00b2 <= large")
    ax.legend(fontsize=8, loc="upper left", ncol=len(keys))
    _save(figure, path)


def plot_suggestion(heights, widths, before, after, spec_before, spec_after, positive_iou, path):
    """Before/after of a suggestion: best-IoU histograms and matched fraction by size.

    heights, widths: [G] input pixels; before, after: [G] best IoU under each anchor set.
    """
    figure = Figure(figsize=(12, 4.4))
    left, right = figure.subplots(1, 2)
    bins = np.linspace(0, 1, 41)
    for values, colour, name, _spec in ((before, "#8c8c8c", "current", spec_before),
                                        (after, "#2ca02c", "suggested", spec_after)):
        left.hist(values, bins=bins, histtype="step", linewidth=2, color=colour,
                  label=f"{name}: {np.mean(np.asarray(values) >= positive_iou):.1%} at >= {positive_iou:g}")
    left.axvline(positive_iou, color="#c44e52", linestyle="--", linewidth=1)
    left.set_xlabel("best IoU over all anchors")
    left.set_ylabel("GT boxes")
    left.set_title("Best IoU before and after")
    left.legend(fontsize=8, loc="upper left")
    areas = np.asarray(heights) * np.asarray(widths)
    names = ["all"] + [name for name, _, _ in SIZE_BUCKETS]
    masks = [np.ones(len(areas), bool)] + [(areas >= lo) & (areas < hi) for _, lo, hi in SIZE_BUCKETS]
    xs = np.arange(len(names))
    for offset, values, colour, name in ((-0.2, before, "#8c8c8c", "current"), (0.2, after, "#2ca02c", "suggested")):
        fractions = [np.mean(np.asarray(values)[m] >= positive_iou) if m.any() else 0.0 for m in masks]
        bars = right.bar(xs + offset, fractions, 0.4, color=colour, label=name)
        right.bar_label(bars, labels=[f"{v:.0%}" if m.any() else "" for v, m in zip(fractions, masks)],
                        fontsize=8, padding=1)
    right.set_xticks(xs, [f"{n}\n({int(m.sum())} boxes)" for n, m in zip(names, masks)])
    right.set_ylim(0, 1.25)
    right.set_ylabel(f"fraction matched at IoU >= {positive_iou:g}")
    right.set_title("Matched fraction by size, before and after")
    right.legend(fontsize=8, loc="upper center", ncol=2)
    _save(figure, path)


def plot_proposal_recall(proposals, path):
    """Recall of GT boxes by the top-k proposals, per size bucket, at each IoU threshold."""
    figure = Figure(figsize=(7.5, 4.2))
    ax = figure.add_subplot()
    ks = proposals["top_k"]
    groups = [("all", proposals)] + list(proposals["by_size"].items())
    for g, (name, group) in enumerate(groups):
        colour = _LEVEL_COLOURS[g]
        for t, style in zip(proposals["iou_thresholds"], ("-", "--", ":")):
            values = [group["recall"][str(k)][t] for k in ks]
            if all(v is not None for v in values):
                ax.plot(ks, values, style, marker="o", color=colour, label=f"{name} ({group['gt_num']}) IoU>={t}")
    ax.set_xscale("log")
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("top-k proposals")
    ax.set_ylabel("recall of GT boxes")
    ax.set_title("RPN proposal recall")
    ax.legend(fontsize=7, ncol=2)
    _save(figure, path)


def write_standard_plots(table, summary, spec, output_dir):
    """The three stat_gt figures into ``output_dir``; returns their paths."""
    paths = {name: os.path.join(output_dir, f"{name}.png")
             for name in ("best_iou_hist", "gt_shapes", "matched_by_size")}
    config = summary["config"]
    plot_best_iou_histogram(table.best_iou, config["RPN_POSITIVE_IOU"], config["RPN_NEGATIVE_IOU"],
                            paths["best_iou_hist"])
    plot_gt_shapes(table.heights, table.widths, table.best_iou, spec, paths["gt_shapes"])
    plot_matched_by_size(summary, paths["matched_by_size"])
    return paths

