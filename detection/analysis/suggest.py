"""Anchor scales and ratios that let more GT boxes reach RPN_POSITIVE_IOU.

Two steps:
  1. k-means on GT shapes (height, width in INPUT pixels) with the 1 - IoU distance of boxes
     sharing a centre (YOLOv2's anchor clustering): one cluster per level gives the scales
     (sqrt of each centre's area, sorted), and clustering the shapes normalised to unit area
     gives the ratios. This ignores where anchors sit on the grid.
  2. A local search from the better of the current anchors and the k-means ones, scoring each
     candidate with the exact grid matcher (``match_to_anchor_grid``) on a sample of GT boxes:
     the fraction of boxes matched at RPN_POSITIVE_IOU, the mean best IoU breaking ties. The
     default objective "guarded" rejects any candidate under which a size bucket holding at
     least 5 % of the boxes loses more than 5 points of matched fraction against the current
     anchors (so the small boxes are not traded away for a few more large ones); "overall"
     has no such guard. Each
     scale and each ratio in turn is multiplied or divided by 1.25, then 1.1, then 1.04 while
     that helps. Scales stay increasing with the level and within 2x..32x of the level's stride
(FPN's default is 8x): the RPN head is shared by all levels, so a similar anchor size in
feature cells keeps its regression targets alike across levels, and an anchor much smaller
than its stride leaves gaps between grid points.

The number of ratios stays the config's, so the RPN head's output shape does not change. The
search sees only this dataset: a level whose boxes are absent here may be given a scale that
suits nothing else.

The search proposes one scale per level, so it does not apply to a config with
ANCHOR_SCALES_ON_EVERY_LEVEL true (``not_applicable`` says why in one line).
"""

import dataclasses

import numpy as np

from detection.analysis.anchor_match import match_to_anchor_grid
from detection.analysis.anchor_stats import SIZE_BUCKETS

STEPS = (1.25, 1.1, 1.04)
MIN_RATIO, MAX_RATIO = 1 / 16, 16.0
SCALE_PER_STRIDE = (2.0, 32.0)  # allowed scale / stride of each level


def shape_iou(shapes, centres):
    """IoU of boxes sharing a centre: shapes [N, 2], centres [K, 2] (height, width) -> [N, K]."""
    inter = np.minimum(shapes[:, None, 0], centres[None, :, 0]) * np.minimum(shapes[:, None, 1], centres[None, :, 1])
    union = (shapes[:, 0] * shapes[:, 1])[:, None] + (centres[:, 0] * centres[:, 1])[None, :] - inter
    return inter / union


def iou_kmeans(shapes, k, rng, iterations=100):
    """k-means of shapes [N, 2] (height, width) > 0 under the 1 - IoU distance.

    Seeds with k-means++ on that distance, takes each cluster's median as its centre, and stops
    when the assignment no longer changes. Returns centres [k', 2], k' = min(k, distinct shapes),
    sorted by area.
    """
    shapes = np.asarray(shapes, np.float64).reshape(-1, 2)
    k = min(k, len(np.unique(shapes, axis=0)))
    if k == 0:
        return np.zeros((0, 2))
    centres = shapes[[rng.integers(len(shapes))]]
    while len(centres) < k:
        distance = 1 - shape_iou(shapes, centres).max(axis=1)
        centres = np.vstack([centres, shapes[rng.choice(len(shapes), p=distance / distance.sum())]])
    assignment = None
    for _ in range(iterations):
        new = np.argmax(shape_iou(shapes, centres), axis=1)
        if assignment is not None and np.array_equal(new, assignment):
            break
        assignment = new
        for c in range(k):
            members = shapes[assignment == c]
            if len(members):
                centres[c] = np.median(members, axis=0)
            else:  # an emptied cluster restarts at the worst-fitting shape
                centres[c] = shapes[np.argmin(shape_iou(shapes, centres).max(axis=1))]
    return centres[np.argsort(centres[:, 0] * centres[:, 1])]


def kmeans_spec(heights, widths, spec, rng):
    """k-means anchors for GT heights, widths [G] (input pixels) -> (AnchorSpec with
    len(spec.scales) scales and len(spec.ratios) ratios, size centres [L', 2])."""
    shapes = np.stack([heights, widths], axis=1).astype(np.float64)
    sizes = iou_kmeans(shapes, len(spec.scales), rng)
    scales = np.sqrt(sizes[:, 0] * sizes[:, 1])
    unit = shapes / np.sqrt(shapes[:, :1] * shapes[:, 1:])  # unit area: only the aspect is left
    aspects = iou_kmeans(unit, len(spec.ratios), rng)
    ratios = aspects[:, 1] / aspects[:, 0]
    scales = _spread(np.sort(scales), len(spec.scales), factor=2.0)
    strides = np.asarray(spec.strides, np.float64)
    scales = np.clip(scales, SCALE_PER_STRIDE[0] * strides, SCALE_PER_STRIDE[1] * strides)
    scales = _spread(np.sort(scales), len(spec.scales), factor=2.0)  # clipping may have made ties
    ratios = _spread(np.sort(ratios), len(spec.ratios), factor=2.0)
    return _rounded(spec.replace(scales=scales, ratios=ratios)), sizes


def _spread(values, count, factor):
    """Completes ``values`` (sorted, maybe fewer than ``count`` or repeated) to ``count``
    strictly increasing values, extending by ``factor`` steps."""
    values = list(values) or [32.0]
    while len(values) < count:
        values.append(values[-1] * factor)
    for i in range(1, count):
        values[i] = max(values[i], values[i - 1] * 1.04)
    return np.asarray(values[:count])


def _rounded(spec):
    """Scales to 0.1 pixel and ratios to 0.01, as pasted into a config."""
    return spec.replace(scales=[float(round(s, 1)) for s in spec.scales],
                        ratios=[float(round(r, 2)) for r in spec.ratios])


def _valid(spec):
    s, r = np.asarray(spec.scales), np.asarray(spec.ratios)
    per_stride = s / np.asarray(spec.strides, np.float64)
    return (np.all(per_stride >= SCALE_PER_STRIDE[0]) and np.all(per_stride <= SCALE_PER_STRIDE[1])
            and r.min() >= MIN_RATIO and r.max() <= MAX_RATIO and np.all(np.diff(s) > 0) and np.all(np.diff(r) > 0))


@dataclasses.dataclass
class Suggestion:
    """A suggested AnchorSpec with before/after figures on the full table.

    before, after: {matched_fraction, mean_best_iou, mean_positive_anchors, matched_fraction_by_size}.
    best_before, best_after: [G] best IoU of every GT box under each anchor set.
    """

    spec: object
    kmeans: object
    kmeans_shapes: np.ndarray
    positive_iou: float
    objective: str
    sample_gt_num: int
    evaluations: int
    before: dict
    after: dict
    best_before: np.ndarray
    best_after: np.ndarray

    def yaml(self):
        """The config snippet to paste."""
        b, a = self.before["matched_fraction"], self.after["matched_fraction"]
        return (f"# stat_gt --suggest: GT boxes with an anchor at IoU >= {self.positive_iou:g}: "
                f"{b:.1%} -> {a:.1%}\n"
                f"RPN_ANCHOR_SCALES: [{', '.join(f'{s:g}' for s in self.spec.scales)}]\n"
                f"RPN_ANCHOR_RATIOS: [{', '.join(f'{r:g}' for r in self.spec.ratios)}]\n")

    def to_dict(self):
        return {
            "positive_iou": self.positive_iou,
            "objective": self.objective,
            "RPN_ANCHOR_SCALES": list(self.spec.scales),
            "RPN_ANCHOR_RATIOS": list(self.spec.ratios),
            "kmeans": {"RPN_ANCHOR_SCALES": list(self.kmeans.scales), "RPN_ANCHOR_RATIOS": list(self.kmeans.ratios)},
            "kmeans_shapes": [[round(float(h), 1), round(float(w), 1)] for h, w in self.kmeans_shapes],
            "sample_gt_num": self.sample_gt_num,
            "evaluations": self.evaluations,
            "before": self.before,
            "after": self.after,
            "yaml": self.yaml(),
        }


OBJECTIVES = ("guarded", "overall")
GUARD_SHARE, GUARD_LOSS = 0.05, 0.05


class _Scorer:
    """Scores AnchorSpecs on a fixed sample of GT boxes, remembering every result.

    boxes: [S, 4] input frame; padded_shapes: [S, 2]; size_bucket: [S] index into SIZE_BUCKETS;
    baseline: the current AnchorSpec, whose per-bucket matched fractions the guard protects.
    A score is (within the guard, matched fraction, mean best IoU); higher is better.
    """

    def __init__(self, boxes, padded_shapes, size_bucket, positive_iou, objective, baseline):
        if objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
        self.boxes, self.padded_shapes, self.positive_iou = boxes, padded_shapes, positive_iou
        guarded = objective == "guarded"
        self.buckets = [size_bucket == b for b in np.unique(size_bucket)
                        if guarded and np.mean(size_bucket == b) >= GUARD_SHARE]
        self.cache = {}
        self.floor = [f - GUARD_LOSS for f in self._bucket_fractions(self._matched(baseline))]

    def _matched(self, spec):
        return match_to_anchor_grid(self.boxes, self.padded_shapes, spec, self.positive_iou).best_iou

    def _bucket_fractions(self, best_iou):
        return [np.mean(best_iou[b] >= self.positive_iou) for b in self.buckets]

    def __call__(self, spec):
        key = (spec.scales, spec.ratios)
        if key not in self.cache:
            best = self._matched(spec)
            within = all(f >= low for f, low in zip(self._bucket_fractions(best), self.floor))
            self.cache[key] = (within, float(np.mean(best >= self.positive_iou)), float(np.mean(best)))
        return self.cache[key]


def local_search(start, score, max_evaluations=300):
    """Coordinate search over log scales and log ratios from AnchorSpec ``start``; ``score``
    maps an AnchorSpec to a comparable tuple (higher is better). Returns the best AnchorSpec."""
    best, best_score = start, score(start)
    for step in STEPS:
        improved = True
        while improved and len(score.cache) < max_evaluations:
            improved = False
            for name in ("scales", "ratios"):
                for i in range(len(getattr(best, name))):
                    for factor in (step, 1 / step):
                        values = list(getattr(best, name))
                        values[i] *= factor
                        candidate = _rounded(best.replace(**{name: values}))
                        if candidate == best or not _valid(candidate):
                            continue
                        candidate_score = score(candidate)
                        if candidate_score > best_score:
                            best, best_score, improved = candidate, candidate_score, True
    return best


def _figures(table, best_iou, positive_anchors, positive_iou):
    areas = table.heights * table.widths
    by_size = {}
    for name, low, high in SIZE_BUCKETS:
        inside = (areas >= low) & (areas < high)
        by_size[name] = float(np.mean(best_iou[inside] >= positive_iou)) if inside.any() else None
    return {"matched_fraction": float(np.mean(best_iou >= positive_iou)), "mean_best_iou": float(np.mean(best_iou)),
            "mean_positive_anchors": float(np.mean(positive_anchors)), "matched_fraction_by_size": by_size}


def not_applicable(spec):
    """None when ``suggest_anchors`` can propose anchors of the form of ``spec``'s config, else
    the one-line reason."""
    if spec.every_level:
        return ("it proposes one RPN_ANCHOR_SCALES side per BACKBONE_STRIDES level, and this config has "
                "ANCHOR_SCALES_ON_EVERY_LEVEL true (every scale on each level)")
    return None


def suggest_anchors(table, spec, positive_iou, sample_size=3000, seed=0, max_evaluations=300, objective="guarded"):
    """A Suggestion for the boxes of a GtTable (input frame, with padded shapes), starting from
    AnchorSpec ``spec``. The search scores on at most ``sample_size`` boxes with ``objective``
    (see the module docstring); before/after figures are over all boxes. Raises ValueError
    when the table has no boxes or ``not_applicable(spec)``."""
    if len(table) == 0:
        raise ValueError("no GT boxes to fit anchors to")
    if not_applicable(spec):
        raise ValueError(f"no anchor suggestion: {not_applicable(spec)}")
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(len(table), min(sample_size, len(table)), replace=False))
    score = _Scorer(table.boxes[sample], table.padded_shape[sample], table.size_bucket()[sample], positive_iou,
                    objective, baseline=spec)
    kmeans, shapes = kmeans_spec(table.heights[sample], table.widths[sample], spec, rng)
    start = max((spec, kmeans), key=score) if _valid(kmeans) else spec
    best = local_search(start, score, max_evaluations)
    if score(best) <= score(spec):
        best = spec  # never suggest a change that does not help on the sample
    results = {}
    for name, s in (("before", spec), ("after", best)):
        m = match_to_anchor_grid(table.boxes, table.padded_shape, s, positive_iou)
        results[name] = (m.best_iou, _figures(table, m.best_iou, m.positive_anchors, positive_iou))
    return Suggestion(best, kmeans, shapes, positive_iou, objective, len(sample), len(score.cache),
                      results["before"][1], results["after"][1], results["before"][0], results["after"][0])
