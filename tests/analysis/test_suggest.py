"""Anchor suggestions: k-means on shapes, and a search that raises the matched fraction."""
import numpy as np
import pytest
import yaml

from detection.analysis.anchor_match import AnchorSpec
from detection.analysis.anchor_stats import ImageBoxes, match_dataset
from detection.analysis.suggest import iou_kmeans, not_applicable, shape_iou, suggest_anchors
from detection.config import Config


def test_shape_iou_of_centred_boxes():
    # 10 x 10 inside 20 x 20: 100 / 400; 10 x 20 vs 20 x 10: 100 / 300.
    np.testing.assert_allclose(shape_iou(np.array([[10.0, 10], [10, 20]]), np.array([[20.0, 20], [20, 10]])),
                               [[0.25, 0.5], [0.5, 1 / 3]])


def test_iou_kmeans_finds_two_separate_shape_groups():
    rng = np.random.default_rng(0)
    small = np.column_stack([rng.uniform(9, 11, 100), rng.uniform(9, 11, 100)])
    wide = np.column_stack([rng.uniform(45, 55, 100), rng.uniform(90, 110, 100)])
    centres = iou_kmeans(np.vstack([small, wide]), 2, rng)
    np.testing.assert_allclose(centres, [np.median(small, 0), np.median(wide, 0)])


def small_boxes_dataset(rng, images=80):
    result = []
    for i in range(images):
        n = 12
        side = np.exp(rng.uniform(np.log(8), np.log(28), n))
        h, w = side * np.exp(rng.uniform(-0.3, 0.3, n)), side * np.exp(rng.uniform(-0.3, 0.3, n))
        y, x = rng.uniform(0, 480 - h), rng.uniform(0, 480 - w)
        result.append(ImageBoxes(i, 480, 480, np.stack([y, x, y + h, x + w], 1).astype(np.float32), np.zeros(n, bool)))
    return result


def test_suggestion_raises_the_matched_fraction_of_small_boxes():
    config = Config({"IMAGE_RESIZE_MODE": "none"})  # scales 32..512: far too big for 8-28 px boxes
    table, _ = match_dataset(small_boxes_dataset(np.random.default_rng(0)), config)
    spec = AnchorSpec.from_config(config)
    s = suggest_anchors(table, spec, config.RPN_POSITIVE_IOU, sample_size=600, max_evaluations=120)
    assert s.before["matched_fraction"] == np.mean(table.best_iou >= 0.7)
    assert s.after["matched_fraction"] > s.before["matched_fraction"] + 0.2
    assert s.after["matched_fraction"] == np.mean(s.best_after >= 0.7)
    assert len(s.spec.scales) == 5 and list(s.spec.scales) == sorted(s.spec.scales)
    assert len(s.spec.ratios) == len(spec.ratios)
    # The snippet is valid config YAML carrying the suggested values.
    values = yaml.safe_load(s.yaml())
    tuned = config.replace(**values)
    assert tuple(tuned.RPN_ANCHOR_SCALES) == s.spec.scales and tuple(tuned.RPN_ANCHOR_RATIOS) == s.spec.ratios
    # And the after figure holds on a fresh sample of the same distribution.
    fresh, _ = match_dataset(small_boxes_dataset(np.random.default_rng(1)), tuned)
    assert np.mean(fresh.best_iou >= 0.7) > s.before["matched_fraction"] + 0.2


def test_no_change_is_suggested_when_nothing_improves():
    # One box equal to a P3 anchor: already IoU 1, nothing can do better.
    config = Config({"IMAGE_RESIZE_MODE": "none"})
    table, _ = match_dataset([ImageBoxes(0, 256, 256, np.float32([[12, 28, 76, 92]]), np.zeros(1, bool))], config)
    spec = AnchorSpec.from_config(config)
    s = suggest_anchors(table, spec, 0.7, max_evaluations=40)
    assert s.spec == spec and s.after == s.before


def test_guard_rejects_anchors_that_give_up_a_size_bucket():
    from detection.analysis.suggest import _Scorer

    # 16 x 16 boxes on P2 anchors of scale 16 (centres (k + 0.5) * 4) and 128 x 128 boxes on P4
    # anchors of scale 128 (centres (k + 0.5) * 16): all matched at IoU 1 by the baseline.
    small = [[c - 8, c - 8, c + 8, c + 8] for c in (10.0, 50.0, 90.0)]
    large = [[c - 64, c - 64, c + 64, c + 64] for c in (72.0, 136.0, 200.0)]
    boxes = np.float32(small + large)
    shapes = np.tile([256, 256], (6, 1))
    buckets = np.array([0, 0, 0, 2, 2, 2])
    baseline = AnchorSpec((16, 32, 128, 256, 512), (1.0,), (4, 8, 16, 32, 64))
    without_small = baseline.replace(scales=(32, 64, 128, 256, 512))  # P2 now 4x the small boxes' area
    guarded = _Scorer(boxes, shapes, buckets, 0.7, "guarded", baseline)
    assert guarded(baseline) == (True, 1.0, 1.0)
    assert guarded(without_small)[:2] == (False, 0.5)
    assert guarded(baseline) > guarded(without_small)
    assert _Scorer(boxes, shapes, buckets, 0.7, "overall", baseline)(without_small)[:2] == (True, 0.5)


def test_every_level_config_gets_no_suggestion_in_the_wrong_form():
    spec = AnchorSpec((32, 64, 128), (0.5, 1.0, 2.0), (32, 32, 64), every_level=True)
    assert "ANCHOR_SCALES_ON_EVERY_LEVEL" in not_applicable(spec) and "\n" not in not_applicable(spec)
    assert not_applicable(spec.replace(every_level=False, scales=(32, 64, 128))) is None
    config = Config({"IMAGE_RESIZE_MODE": "none"})
    table, _ = match_dataset([ImageBoxes(0, 128, 128, np.float32([[0, 0, 40, 40]]), np.zeros(1, bool))], config)
    with pytest.raises(ValueError, match="ANCHOR_SCALES_ON_EVERY_LEVEL"):
        suggest_anchors(table, spec, 0.7)
