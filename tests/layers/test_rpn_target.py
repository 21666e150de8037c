"""Crowd handling of the RPN targets, against labels computed in NumPy from the definition."""
import numpy as np
import pytest

from detection.core.anchors import AnchorSpec
from detection.layers.rpn_target import CROWD_IOU, RPNTargetLayer, rpn_targets_for_image
from tests.layers.reference import STD, encode, numpy_iou, pyramid_anchors

SIZE = 64
SCALES, RATIOS, STRIDES = (16.0, 32.0), (0.5, 1.0, 2.0), (8, 16)
ANCHORS = pyramid_anchors(SIZE, SCALES, RATIOS, STRIDES)  # 8 x 8 x 3 + 4 x 4 x 3 = 240
POSITIVE_IOU, NEGATIVE_IOU = 0.7, 0.3

GT = np.array([[4, 4, 20, 20],  # class 1: exactly the 16 px square anchor at (12, 12)
               [34, 3, 57, 21],  # class 2: best anchor IoU 0.618, positive only as a low-quality match
               [24, 24, 56, 56],  # crowd: exactly the 32 px square anchor at (40, 40)
               [2, 44, 10, 62],  # crowd: best anchor IoU 0.526
               [0, 0, 0, 0.0]])  # padding
CLASSES = np.array([1, 2, -1, -1, 0], np.int32)
CROWD_ONLY = np.where(CLASSES > 0, 0, CLASSES).astype(np.int32)  # the same image without its real GT


def expected_labels(class_ids):
    """Every anchor's label when all are sampled (1 / 0 / -1), matched GT and best IoU, from
    the definition: IoU >= 0.7 with a non-crowd GT, or a GT's unique best anchor, is positive;
    best IoU < 0.3 and IoU <= CROWD_IOU with every crowd box is negative; the rest ignored."""
    real, crowd = GT[class_ids > 0], GT[class_ids < 0]
    labels = np.full(len(ANCHORS), -1)
    crowd_iou = numpy_iou(crowd, ANCHORS).max(0)
    assert np.all(np.abs(crowd_iou - CROWD_IOU) > 1e-5)  # no anchor at a threshold, where rounding decides
    if len(real) == 0:
        labels[crowd_iou <= CROWD_IOU] = 0
        return labels, None, None
    iou = numpy_iou(real, ANCHORS)
    best, matched = iou.max(0), iou.argmax(0)
    assert np.all(np.abs(best - NEGATIVE_IOU) > 1e-4) and np.all(np.abs(best - POSITIVE_IOU) > 1e-4)
    labels[(best < NEGATIVE_IOU) & (crowd_iou <= CROWD_IOU)] = 0
    labels[best >= POSITIVE_IOU] = 1
    for row in iou:
        top2 = np.sort(row)[-2:]
        assert top2[1] - top2[0] > 1e-4  # the best anchor is unique, no float tie
        labels[np.argmax(row)] = 1
    return labels, matched, best


def run(class_ids, num_samples, positive_fraction=0.5):
    labels, deltas, diag = rpn_targets_for_image(ANCHORS.astype("float32"), class_ids, GT.astype("float32"),
                                                 POSITIVE_IOU, NEGATIVE_IOU, True, num_samples, positive_fraction,
                                                 STD)
    return labels.numpy(), deltas.numpy(), {k: float(v) for k, v in diag.items()}


def test_all_sampled_labels_and_deltas_match_numpy():
    # 512 samples at 0.5 exceed every class's count, so every eligible anchor is sampled.
    labels, deltas, _ = run(CLASSES, 512)
    expected, matched, _ = expected_labels(CLASSES)
    crowd_iou = numpy_iou(GT[CLASSES < 0], ANCHORS).max(0)
    # The case exercises the rule: anchors a real GT leaves negative but a crowd box touches.
    assert np.sum((expected == -1) & (crowd_iou > CROWD_IOU)) > 50
    np.testing.assert_array_equal(labels, expected)
    positive = labels == 1
    assert positive.sum() == 2  # one per real GT, none from the crowd box that equals an anchor
    real = GT[CLASSES > 0]
    np.testing.assert_allclose(deltas[positive], encode(real[matched[positive]], ANCHORS[positive]), atol=1e-5)
    np.testing.assert_array_equal(deltas[~positive], 0.0)


@pytest.mark.parametrize("draw", range(3))
def test_sampled_negatives_never_touch_a_crowd_box(draw):
    # 32 samples, at most 8 positives: both positives, then 30 of the eligible negatives at random.
    labels, _, _ = run(CLASSES, 32, positive_fraction=0.25)
    expected, _, _ = expected_labels(CLASSES)
    assert np.sum(expected == 0) > 30  # more eligible negatives than places: a real draw
    assert np.sum(labels == 1) == 2 and np.sum(labels == 0) == 30
    assert np.all(expected[labels == 1] == 1) and np.all(expected[labels == 0] == 0)
    assert np.all(numpy_iou(GT[CLASSES < 0], ANCHORS[labels == 0]) <= CROWD_IOU)


def test_crowd_only_image_has_no_positives_and_keeps_crowd_anchors_out():
    labels, deltas, diag = run(CROWD_ONLY, 512)
    expected, _, _ = expected_labels(CROWD_ONLY)
    assert np.sum(expected == -1) > 100  # the anchors touching a crowd box
    np.testing.assert_array_equal(labels, expected)
    assert np.all(deltas == 0.0)
    assert diag["gt_num"] == 0.0 and diag["miss_match_gt_num"] == 0.0 and diag["gt_match_min_iou"] == 0.0


def test_layer_diagnostics_count_only_non_crowd_gt():
    layer = RPNTargetLayer(AnchorSpec(SCALES, RATIOS, STRIDES), positive_iou=POSITIVE_IOU, negative_iou=NEGATIVE_IOU,
                           num_samples=512, positive_fraction=0.5, bbox_std=STD, name="rpn_targets")
    labels, deltas = layer(np.zeros((2, SIZE, SIZE, 3), "float32"), np.stack([CLASSES, CROWD_ONLY]),
                           np.stack([GT, GT]).astype("float32"))
    expected = [expected_labels(CLASSES), expected_labels(CROWD_ONLY)]
    for i, (want, _, _) in enumerate(expected):
        np.testing.assert_array_equal(labels.numpy()[i], want)
    best_per_gt = numpy_iou(GT[CLASSES > 0], ANCHORS).max(1)  # [1.0, 0.618]
    result = {name: float(t.result()) for name, t in layer.trackers.items()}
    assert result["gt_num"] == 1.0  # (2 + 0) / 2: the crowd boxes are not GT
    assert result["miss_match_gt_num"] == 0.5  # (1 + 0) / 2: only the class-2 box, not crowd box 2 (0.526)
    np.testing.assert_allclose(result["gt_match_min_iou"], best_per_gt.min(), rtol=1e-5)  # image 0 only
    np.testing.assert_allclose(result["gt_match_mean_iou"], best_per_gt.mean(), rtol=1e-5)
    assert result["positive_anchor_num"] == (2 + 0) / 2
    assert result["negative_anchor_num"] == (np.sum(expected[0][0] == 0) + np.sum(expected[1][0] == 0)) / 2
