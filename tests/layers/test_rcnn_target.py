"""DetectionTargetLayer: sampled RoIs, classes, deltas and mask targets against NumPy.

The sampler draws at random (no seed in the layer's API), so each test asserts what holds
for every draw; where num_rois exceeds the candidates every eligible RoI is sampled and the
sets are compared exactly.
"""
import numpy as np
import pytest
import tensorflow as tf

from detection.layers.rcnn_target import DetectionTargetLayer, rcnn_targets_for_image
from detection.layers.rpn_target import CROWD_IOU
from tests.layers.reference import STD, bilinear, encode, numpy_iou

IOU = 0.5  # ROI_POSITIVE_IOU and ROI_NEGATIVE_IOU
MASK = (8, 8)
MINI = (12, 12)
GT = np.array([[8, 6, 30, 28], [34, 30, 58, 60], [4, 40, 20, 60], [0, 0, 0, 0]], np.float32)
CLASSES = np.array([2, 1, -1, 0], np.int32)  # two objects, a crowd box, padding
REAL = GT[CLASSES > 0]


def mini_masks(seed=0):
    """[4, 12, 12] random binary mini masks (the crowd's and the padding's are never read)."""
    return (np.random.default_rng(seed).uniform(size=(len(GT),) + MINI) > 0.5).astype("float32")


def scene_proposals(seed=0, count=48):
    """[count, 4]: 8 jitters of each real GT box (IoU on both sides of 0.5), the crowd box and
    3 jitters of it, 18 random boxes, then zero padding rows."""
    rng = np.random.default_rng(seed)
    rows = [box + rng.uniform(-8, 8, (8, 4)) for box in REAL]
    rows.append(GT[2] + np.concatenate([np.zeros((1, 4)), rng.uniform(-3, 3, (3, 4))]))
    corner = rng.uniform(0, 48, (18, 2))
    rows.append(np.concatenate([corner, corner + rng.uniform(6, 16, (18, 2))], axis=1))
    rows = np.concatenate(rows).astype("float32")
    return np.concatenate([rows, np.zeros((count - len(rows), 4), np.float32)])


def expected_sets(proposals, class_ids):
    """The candidates (non-zero proposals, then the real GT boxes), their best GT index, and the
    index sets that may be sampled as positive (best IoU >= 0.5) and as negative (best IoU < 0.5,
    IoU <= CROWD_IOU with every crowd box); everything from the definition, in float64."""
    real = GT[class_ids > 0]
    proposals = proposals[np.any(proposals != 0, axis=1)]
    candidates = np.concatenate([proposals, real]).astype(np.float64)
    iou = numpy_iou(real, candidates) if len(real) else np.zeros((1, len(candidates)))
    best, matched = iou.max(0), iou.argmax(0)
    crowd = numpy_iou(GT[class_ids < 0], candidates).max(0) if np.any(class_ids < 0) else 0 * best
    positive = np.flatnonzero(best >= IOU)
    negative = np.flatnonzero((best < IOU) & (crowd <= CROWD_IOU))
    assert np.all(np.abs(best - IOU) > 1e-4)  # no candidate at the threshold, where float rounding decides
    missed = int(np.sum(numpy_iou(real, proposals).max(1, initial=0.0) < IOU)) if len(real) else 0
    return candidates, matched, positive, negative, missed


def sampled_indices(rois, candidates):
    """The candidate index of each RoI row (each must be exactly one candidate)."""
    out = []
    for roi in rois:
        hits = np.flatnonzero(np.all(np.abs(candidates - roi) < 1e-4, axis=1))
        assert len(hits) == 1, roi
        out.append(hits[0])
    return np.array(out, int)


def check_targets(outputs, diag, proposals, class_ids, num_rois, positive_ratio):
    """Asserts every property that holds for any draw (and the diagnostics unless ``diag`` is
    None); returns (candidates, matched, sampled indices, number of positives)."""
    rois, target_class, deltas, masks, weights = [t.numpy() for t in outputs]
    candidates, matched, positive, negative, missed = expected_sets(proposals, class_ids)
    num_pos = min(len(positive), int(num_rois * positive_ratio))
    num_neg = min(len(negative), num_rois - num_pos)
    n = num_pos + num_neg
    assert rois.shape == (num_rois, 4) and masks.shape == (num_rois,) + MASK
    np.testing.assert_array_equal(weights, [1.0] * n + [0.0] * (num_rois - n))
    # Positives first (the mask head reads rows [:int(T x ratio)]), then negatives, then padding.
    assert np.all(target_class[:num_pos] > 0) and np.all(target_class[num_pos:] == 0)
    index = sampled_indices(rois[:n], candidates)
    assert len(set(index)) == n  # no candidate twice
    assert set(index[:num_pos]) <= set(positive) and set(index[num_pos:]) <= set(negative)
    real_classes = class_ids[class_ids > 0]
    np.testing.assert_array_equal(target_class[:num_pos], real_classes[matched[index[:num_pos]]])
    gt_boxes = GT[class_ids > 0][matched[index[:num_pos]]]
    np.testing.assert_allclose(deltas[:num_pos], encode(gt_boxes, candidates[index[:num_pos]]), atol=1e-4)
    np.testing.assert_array_equal(deltas[num_pos:], 0.0)
    np.testing.assert_array_equal(masks[num_pos:], 0.0)
    np.testing.assert_array_equal(rois[n:], 0.0)
    if diag is not None:
        assert float(diag["positive_roi_num"]) == num_pos and float(diag["negative_roi_num"]) == num_neg
        assert float(diag["rcnn_miss_match_gt_num"]) == missed
    return candidates, matched, index, num_pos


def targets(proposals, class_ids=CLASSES, num_rois=16, positive_ratio=0.33, aligned_masks=True, masks=None):
    return rcnn_targets_for_image(proposals, class_ids, GT, mini_masks() if masks is None else masks,
                                  num_rois=num_rois, positive_ratio=positive_ratio, positive_iou=IOU,
                                  negative_iou=IOU, bbox_std=STD, mask_shape=MASK, aligned_masks=aligned_masks)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sample_count_positive_cap_order_labels_and_deltas(seed):
    # 16 RoIs at 0.33: at most int(5.28) = 5 positives, of more than 5 candidates.
    proposals = scene_proposals(seed)
    _, _, positive, negative, _ = expected_sets(proposals, CLASSES)
    assert len(positive) > 5 and len(negative) > 11
    outputs, diag = targets(proposals)
    _, _, _, num_pos = check_targets(outputs, diag, proposals, CLASSES, 16, 0.33)
    assert num_pos == 5 and float(tf.reduce_sum(outputs[4])) == 16


@pytest.mark.parametrize("seed", [0, 1])
def test_every_eligible_candidate_sampled_when_there_is_room(seed):
    # 64 RoIs at 0.5 exceed every count: the sampled sets are exactly the eligible ones, so the
    # GT boxes are among the positives and the crowd-touching candidates absent from the negatives.
    proposals = scene_proposals(seed)
    candidates, _, positive, negative, _ = expected_sets(proposals, CLASSES)
    crowd_iou = numpy_iou(GT[2:3], candidates)[0]
    assert np.sum(crowd_iou > CROWD_IOU) >= 4  # the crowd box and its jitters are candidates
    outputs, diag = targets(proposals, num_rois=64, positive_ratio=0.5)
    _, _, index, num_pos = check_targets(outputs, diag, proposals, CLASSES, 64, 0.5)
    assert set(index[:num_pos]) == set(positive) and set(index[num_pos:]) == set(negative)
    assert {len(candidates) - 2, len(candidates) - 1} <= set(index[:num_pos])  # the two GT boxes
    # The crowd box itself is a proposal, yet never a GT nor a sampled RoI.
    assert not np.any(np.all(np.abs(outputs[0].numpy() - GT[2]) < 1e-4, axis=1))


def test_proposals_missing_the_gt_still_give_the_gt_boxes_as_positives():
    # Boxes in the lower-left corner overlap neither object (IoU 0): the positives are the two
    # GT boxes themselves, with deltas 0, and both GT count as missed by the proposals.
    proposals = np.array([[40, 0, 52, 10], [44, 2, 60, 18], [50, 5, 62, 20], [0, 0, 0, 0]], np.float32)
    outputs, diag = targets(proposals)
    rois, target_class, deltas, _, weights = [t.numpy() for t in outputs]
    order = np.argsort(target_class[:2])[::-1]  # the positives' order is random: class 2 then 1
    np.testing.assert_allclose(rois[:2][order], REAL, atol=1e-6)
    np.testing.assert_array_equal(target_class[:2][order], [2, 1])
    np.testing.assert_allclose(deltas[:2], 0.0, atol=1e-6)
    np.testing.assert_array_equal(weights, [1.0] * 5 + [0.0] * 11)  # 2 positives, 3 negatives
    assert float(diag["rcnn_miss_match_gt_num"]) == 2.0
    check_targets(outputs, diag, proposals, CLASSES, 16, 0.33)


@pytest.mark.parametrize("num_rois", [16, 64])
def test_image_without_gt_gives_only_negatives_and_padding(num_rois):
    proposals = scene_proposals(0)
    no_gt = np.zeros(len(GT), np.int32)
    outputs, diag = targets(proposals, no_gt, num_rois=num_rois)
    rois, target_class, deltas, masks, weights = [t.numpy() for t in outputs]
    n = min(num_rois, int(np.sum(np.any(proposals != 0, axis=1))))  # 38 proposals
    np.testing.assert_array_equal(weights, [1.0] * n + [0.0] * (num_rois - n))
    assert np.all(target_class == 0) and np.all(deltas == 0.0) and np.all(masks == 0.0)
    assert float(diag["positive_roi_num"]) == 0 and float(diag["negative_roi_num"]) == n
    assert float(diag["rcnn_miss_match_gt_num"]) == 0
    check_targets(outputs, diag, proposals, no_gt, num_rois, 0.33)


def test_crowd_only_image_keeps_crowd_touching_proposals_out():
    proposals = scene_proposals(0)
    crowd_only = np.where(CLASSES > 0, 0, CLASSES).astype(np.int32)
    outputs, diag = targets(proposals, crowd_only, num_rois=64)
    _, _, index, num_pos = check_targets(outputs, diag, proposals, crowd_only, 64, 0.33)
    _, _, _, negative, _ = expected_sets(proposals, crowd_only)
    assert num_pos == 0 and set(index) == set(negative) and len(negative) < 38 - 4


def reference_mask(mini, roi, gt, aligned):
    """The RoI's mask target sampled from its GT's mini mask, before rounding, and which samples
    lie within 1e-4 of the mini mask's border (crop_and_resize may put them either side).

    aligned: MASK bin centres roi_y1 + (k + 0.5) * roi_h / MASK, mapped into the mini mask whose
    pixel i covers gt_y1 + [i, i + 1) * gt_h / mini_h (centre at integer i).
    matterport: the RoI corners relative to the GT box, (roi - gt_y1) / gt_h, sampled corner to
    corner in crop_and_resize's convention, position t * (mini_h - 1).
    """
    (mh, mw), (oh, ow) = mini.shape, MASK
    gh, gw = gt[2] - gt[0], gt[3] - gt[1]
    if aligned:
        ys = roi[0] + (np.arange(oh) + 0.5) * (roi[2] - roi[0]) / oh
        xs = roi[1] + (np.arange(ow) + 0.5) * (roi[3] - roi[1]) / ow
        u, v = (ys - gt[0]) * mh / gh - 0.5, (xs - gt[1]) * mw / gw - 0.5
    else:
        u = ((roi[0] - gt[0]) + np.arange(oh) * (roi[2] - roi[0]) / (oh - 1)) / gh * (mh - 1)
        v = ((roi[1] - gt[1]) + np.arange(ow) * (roi[3] - roi[1]) / (ow - 1)) / gw * (mw - 1)
    return bilinear(mini, u, v)


@pytest.mark.parametrize("aligned", [True, False])
def test_mask_targets_match_numpy_crop_of_the_mini_mask(aligned):
    proposals, masks = scene_proposals(3), mini_masks(1)
    outputs, diag = targets(proposals, num_rois=64, positive_ratio=0.5, aligned_masks=aligned, masks=masks)
    candidates, matched, index, num_pos = check_targets(outputs, diag, proposals, CLASSES, 64, 0.5)
    got = outputs[3].numpy()
    decided = 0
    for row in range(num_pos):
        gt = matched[index[row]]  # REAL[gt] is GT[gt] and its mask masks[gt]: the real boxes come first
        raw, near_edge = reference_mask(masks[gt].astype(float), candidates[index[row]], REAL[gt], aligned)
        sure = ~near_edge & (np.abs(raw - 0.5) > 1e-3)
        np.testing.assert_array_equal(got[row][sure], np.round(raw)[sure], err_msg=f"row {row}")
        decided += sure.sum()
    assert decided >= 0.75 * num_pos * MASK[0] * MASK[1] and num_pos >= 8
    assert 0 < np.sum(got[:num_pos]) < num_pos * MASK[0] * MASK[1]


def test_layer_batches_images_and_updates_diagnostics():
    proposals = np.stack([scene_proposals(0), scene_proposals(1)])
    class_ids = np.stack([CLASSES, np.zeros_like(CLASSES)])  # the second image has no GT
    layer = DetectionTargetLayer(16, 0.33, IOU, IOU, STD, MASK, mini_mask_shape=MINI, name="rcnn_targets")
    outputs = layer(proposals, class_ids, np.stack([GT, GT]), np.stack([mini_masks(), mini_masks()]))
    assert [t.shape for t in outputs] == [(2, 16, 4), (2, 16), (2, 16, 4), (2, 16) + MASK, (2, 16)]
    assert outputs[1].dtype == tf.int32
    counts = []
    for i in range(2):
        per_image = [t[i] for t in outputs]
        _, _, positive, negative, missed = expected_sets(proposals[i], class_ids[i])
        num_pos = min(len(positive), 5)
        counts.append((num_pos, min(len(negative), 16 - num_pos), missed))
        check_targets(per_image, None, proposals[i], class_ids[i], 16, 0.33)
    result = [float(layer.trackers[name].result())
              for name in ("positive_roi_num", "negative_roi_num", "rcnn_miss_match_gt_num")]
    expected = np.mean(counts, axis=0)  # plain means over the two images
    np.testing.assert_allclose(result, expected, rtol=1e-6)
    assert expected[0] == 2.5 and expected[1] == 13.5  # (5 + 0) / 2 positives, (11 + 16) / 2 negatives


def test_layer_without_masks_takes_placeholders_and_gives_zero_masks():
    proposals = scene_proposals(0)[None]
    layer = DetectionTargetLayer(16, 0.33, IOU, IOU, STD, MASK, use_mask=False, mini_mask_shape=MINI, name="t")
    outputs = layer(proposals, CLASSES[None], GT[None], np.zeros((1, len(GT), 1, 1), np.float32))
    assert outputs[3].shape == (1, 16) + MASK and np.all(outputs[3].numpy() == 0.0)
    assert np.sum(outputs[1].numpy() > 0) == 5
