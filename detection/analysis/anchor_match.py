"""Exact best IoU and positive-anchor count of GT boxes against the pyramid anchor grid,
without building the [num_gt, num_anchors] IoU matrix.

Why a window is enough: in one (level, scale, ratio) group every anchor has the same height h_a and
width w_a and sits on a regular grid. The intersection of a GT box with an anchor is the
overlap along y (a function of the anchor's row only) times the overlap along x (of its column
only), and each falls off with the distance between the centres. So
  * the group's best anchor is in the two rows and two columns nearest the GT centre;
  * an anchor reaches IoU >= t only if inter >= c = t (A_g + A_a) / (1 + t); as the x overlap
    is at most min(w_g, w_a), its y overlap must be at least c / min(w_g, w_a), which bounds
    the centre distance along y: a window of rows (likewise of columns).
IoU is then evaluated in that window only, with the arithmetic of a brute force over all
anchors: float64 on the float32 anchor coordinates the config's ANCHOR_GENERATOR makes
(``AnchorSpec.anchors``; rebuilt here bit for bit by ``_AXES``, one scale or with
ANCHOR_SCALES_ON_EVERY_LEVEL every scale per level). The bound is loosened by 0.1 % and one cell on each
side, so float rounding cannot drop an anchor. Cost: O(window) per GT box and group, not
O(anchors); memory is bounded by ``chunk_elements``.

Exactness: the positive count is exact. The best IoU is exact (bit for bit) whenever it is at
least ``exact_above``; below that it comes from the nearest 2 x 2 cells, which can differ from
the brute-force maximum by float32 rounding of anchor coordinates (relative ~1e-5 at most),
because anchors of one shape at different positions differ in their last bits.

Example: the GT box [100, 100, 132, 132] in a 256 x 256 input, scales (32, 64, 128, 256, 512),
ratios (0.5, 1, 2), strides (4, 8, 16, 32, 64). The P2 ratio-1 anchors centred at 114 or 118 on
each axis overlap it 30 x 30: IoU 900 / (1024 + 1024 - 900) = 0.784, the best, and these four
are the positives at 0.7 (the next ones, 30 x 26, give 0.615; P3's 64 x 64 at most 0.25).
"""

import dataclasses

import numpy as np

from detection.core.anchors import ANCHOR_GENERATORS, AnchorSpec  # noqa: F401 (AnchorSpec: re-exported)

# Loosening of the window bound against float rounding (relative, and absolute in pixels).
_RELATIVE_SLACK = 1e-3
_ABSOLUTE_SLACK = 1e-3
# Below this IoU the windows would grow towards every overlapping anchor for little value.
_LOWEST_EXACT_IOU = 0.05


@dataclasses.dataclass
class GridMatch:
    """Per GT box: best_iou [G] float64; positive_anchors [G] int64 (anchors at IoU >=
    positive_iou); level [G] int32, scale [G] float64 (its RPN_ANCHOR_SCALES side) and
    ratio_index [G] int32 of the best anchor (ties: the lowest level, then the lowest scale,
    then the lowest ratio index)."""

    best_iou: np.ndarray
    positive_anchors: np.ndarray
    level: np.ndarray
    scale: np.ndarray
    ratio_index: np.ndarray


def match_to_anchor_grid(boxes, padded_shapes, spec, positive_iou, exact_above=None, chunk_elements=1 << 21):
    """Best IoU and positive-anchor count of each GT box over the anchors of its own input.

    boxes: [G, 4] float32 [y1, x1, y2, x2] GT boxes in model-input pixels, positive extent.
    padded_shapes: [G, 2] int (H, W) of the padded input each box belongs to (the anchor grid).
    spec: AnchorSpec (any ANCHOR_GENERATOR, one or every scale per level). positive_iou: an
        anchor at IoU >= this counts as positive.
    exact_above: the best IoU is exact when at least this (default: positive_iou); lower
        values widen the windows (cost grows roughly as 1 / exact_above^2).
    chunk_elements: most IoU values held at once (x ~5 float64 temporaries).
    Returns a GridMatch.
    """
    generator = ANCHOR_GENERATORS[spec.generator]  # AnchorSpec checked the name and the anchor stride
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4).astype(np.float64)
    padded_shapes = np.asarray(padded_shapes, np.int64).reshape(-1, 2)
    num = len(boxes)
    best = np.zeros(num, np.float64)
    positives = np.zeros(num, np.int64)
    best_level = np.zeros(num, np.int32)
    best_scale = np.full(num, spec.level_scales[0][0] if spec.strides else 0.0, np.float64)
    best_ratio = np.zeros(num, np.int32)
    if num == 0:
        return GridMatch(best, positives, best_level, best_scale, best_ratio)
    if positive_iou <= 0:  # every anchor, overlapping or not, has IoU >= 0
        positives[:] = [spec.anchor_count(shape) for shape in padded_shapes]
    window_iou = max(positive_iou if exact_above is None else exact_above, _LOWEST_EXACT_IOU)
    if positive_iou > 0:  # the count needs every anchor at >= positive_iou, however low
        window_iou = min(window_iou, positive_iou)

    gt_area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    gt_h, gt_w = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]

    def make_axis(*args):
        layout = generator.axis(*args)
        return _AxisGrid(layout.spacing, layout.first, layout.side, layout.edges)

    for level, scales in enumerate(spec.level_scales):
        rows = spec.grid_cells(padded_shapes[:, 0], level)
        cols = spec.grid_cells(padded_shapes[:, 1], level)
        for scale in scales:
            for r in range(len(spec.ratios)):
                y_axis = make_axis(spec, level, scale, r, padded_shapes[:, 0], rows, 0)
                x_axis = make_axis(spec, level, scale, r, padded_shapes[:, 1], cols, 1)
                height, width = y_axis.side, x_axis.side
                # Least overlap along each axis that any anchor at IoU >= window_iou must have.
                c = window_iou * (gt_area + height * width) / (1 + window_iou)
                min_dy = c / np.minimum(gt_w, width) * (1 - _RELATIVE_SLACK) - _ABSOLUTE_SLACK
                min_dx = c / np.minimum(gt_h, height) * (1 - _RELATIVE_SLACK) - _ABSOLUTE_SLACK
                y_lo, y_hi = y_axis.window(boxes[:, 0], boxes[:, 2], rows, min_dy)
                x_lo, x_hi = x_axis.window(boxes[:, 1], boxes[:, 3], cols, min_dx)
                group_best, group_pos = _evaluate_windows(
                    boxes, gt_area, (y_lo, y_hi, x_lo, x_hi), y_axis, x_axis, positive_iou, chunk_elements)
                better = group_best > best
                best = np.where(better, group_best, best)
                best_level[better] = level
                best_scale[better] = scale
                best_ratio[better] = r
                if positive_iou > 0:
                    positives += group_pos
    return GridMatch(best, positives, best_level, best_scale, best_ratio)


@dataclasses.dataclass(frozen=True)
class _AxisGrid:
    """Anchors of one shape along one axis: cell k (0 .. cells - 1) has centre k * spacing +
    first and the edges ``edges`` gives; side: the anchor's extent. spacing, first: [G] float64
    (a generator's spacing may depend on the box's padded input)."""

    spacing: np.ndarray
    first: np.ndarray
    side: float
    edges: object  # (box indices [B], cells [B, n] int64) -> (low, high) [B, n] float64, as the generator makes them

    def window(self, g1, g2, cells, min_overlap):
        """Cells [lo, hi] (each [G] int64, inclusive) holding the two cells nearest each GT
        centre and every cell whose overlap with [g1, g2] can reach min_overlap [G].

        g1, g2: [G] GT extent along this axis; cells: [G] cells per image.
        """
        centre = (g1 + g2) / 2
        last = cells - 1
        nearest = np.floor((centre - self.first) / self.spacing).astype(np.int64)
        near_lo = np.clip(nearest, 0, last)
        near_hi = np.clip(nearest + 1, 0, last)
        # Overlap along the axis is min(g, side, (g + side) / 2 - distance), so it reaches
        # min_overlap only within this distance of the centre, and only if min(g, side) does.
        feasible = np.minimum(g2 - g1, self.side) >= min_overlap
        reach = np.where(feasible, (g2 - g1 + self.side) / 2 - np.maximum(min_overlap, 0.0), 0.0)
        lo = np.ceil((centre - reach - self.first) / self.spacing).astype(np.int64) - 1
        hi = np.floor((centre + reach - self.first) / self.spacing).astype(np.int64) + 1
        lo = np.where(feasible, np.minimum(np.clip(lo, 0, last), near_lo), near_lo)
        hi = np.where(feasible, np.maximum(np.clip(hi, 0, last), near_hi), near_hi)
        return lo, hi




def _evaluate_windows(boxes, gt_area, windows, y_axis, x_axis, positive_iou, chunk_elements):
    """IoU of each GT box with every anchor of one (level, scale, ratio) in its window.

    boxes: [G, 4] float64 input frame; gt_area: [G]; windows: (y_lo, y_hi, x_lo, x_hi) [G] each;
    y_axis, x_axis: the anchors' _AxisGrid along each axis. Returns (best [G] float64, positives [G] int64).
    """
    y_lo, y_hi, x_lo, x_hi = windows
    ny, nx = y_hi - y_lo + 1, x_hi - x_lo + 1
    best = np.zeros(len(boxes), np.float64)
    positives = np.zeros(len(boxes), np.int64)
    # Boxes with the same window size share one dense [B, ny, nx] computation without padding.
    keys, bucket = np.unique(ny * (nx.max() + 1) + nx, return_inverse=True)
    order = np.argsort(bucket, kind="stable")
    starts = np.searchsorted(bucket[order], np.arange(len(keys) + 1))
    for b, key in enumerate(keys):
        h_cells, w_cells = divmod(int(key), int(nx.max() + 1))
        members = order[starts[b]:starts[b + 1]]
        step = max(1, chunk_elements // int(h_cells * w_cells))
        for i in range(0, len(members), step):
            idx = members[i:i + step]
            ay1, ay2 = y_axis.edges(idx, y_lo[idx, None] + np.arange(h_cells))  # [B, ny]
            ax1, ax2 = x_axis.edges(idx, x_lo[idx, None] + np.arange(w_cells))  # [B, nx]
            g = boxes[idx]
            ih = np.maximum(np.minimum(g[:, 2:3], ay2) - np.maximum(g[:, 0:1], ay1), 0.0)
            iw = np.maximum(np.minimum(g[:, 3:4], ax2) - np.maximum(g[:, 1:2], ax1), 0.0)
            inter = ih[:, :, None] * iw[:, None, :]
            union = gt_area[idx, None, None] + (ay2 - ay1)[:, :, None] * (ax2 - ax1)[:, None, :] - inter
            iou = (inter / union).reshape(len(idx), -1)
            best[idx] = iou.max(axis=1)
            positives[idx] = np.count_nonzero(iou >= positive_iou, axis=1)
    return best, positives
