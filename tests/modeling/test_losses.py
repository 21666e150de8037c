"""The five losses on small cases worked out by hand (each expected value is written from the
definition in the comment beside it), and WeightedLoss."""
import math

import numpy as np
import pytest

from detection.modeling import losses

LOG2, LOG3 = math.log(2.0), math.log(3.0)


def test_smooth_l1_both_sides_of_beta():
    diff = np.array([0.05, -0.1, 0.5, -2.0], np.float32)
    # beta 1/9: 0.5 x^2 / beta below beta (0.01125, 0.045), |x| - beta / 2 above (0.5 - 1/18, 2 - 1/18).
    np.testing.assert_allclose(losses.smooth_l1(diff, 1.0 / 9.0).numpy(), [0.01125, 0.045, 4 / 9, 35 / 18], rtol=1e-5)
    # beta 1: 0.5 x^2 for all but the last (0.00125, 0.005, 0.125), then 2 - 0.5.
    np.testing.assert_allclose(losses.smooth_l1(diff, 1.0).numpy(), [0.00125, 0.005, 0.125, 1.5], rtol=1e-5)


def test_rpn_class_loss_ignores_unsampled_anchors_and_averages_per_image():
    labels = np.array([[1, 0, -1, 0], [1, -1, -1, 0]], np.int32)
    logits = np.array([[0.0, 2.0, 100.0, -1.0], [math.log(3.0), 5.0, -5.0, -math.log(3.0)]], np.float32)
    # Image 0: -log sigmoid(0) = log 2; -log(1 - sigmoid(2)) = log(1 + e^2); -log(1 - sigmoid(-1)) =
    # log(1 + e^-1); the ignored anchor (logit 100, which as a negative would cost 100) is left out.
    image0 = (LOG2 + math.log1p(math.exp(2.0)) + math.log1p(math.exp(-1.0))) / 3
    # Image 1: sigmoid(log 3) = 3/4, so -log(3/4) for the positive; sigmoid(-log 3) = 1/4, so
    # -log(1 - 1/4) for the negative: both log(4/3).
    image1 = math.log(4.0 / 3.0)
    loss = losses.rpn_class_loss(labels, logits).numpy()
    np.testing.assert_allclose(loss, (image0 + image1) / 2, rtol=1e-5)


def test_rpn_bbox_loss_beta_sum_over_deltas_mean_over_positives():
    labels = np.array([[1, 0, 1, -1], [0, 0, -1, -1]], np.int32)
    target = np.zeros((2, 4, 4), np.float32)
    deltas = np.full((2, 4, 4), 10.0, np.float32)  # large errors everywhere but where positive
    deltas[0, 0] = [0.05, 0.0, 0.0, 0.5]  # 0.01125 + 0.5 - 1/18
    deltas[0, 2] = [-2.0, 0.0, 0.1, 0.0]  # 2 - 1/18 + 0.045
    image0 = ((0.01125 + 0.5 - 1 / 18) + (2 - 1 / 18 + 0.045)) / 2  # 2 positives
    # Image 1 has no positive: it contributes exactly 0 to the mean over the 2 images.
    np.testing.assert_allclose(losses.rpn_bbox_loss(labels, target, deltas).numpy(), image0 / 2, rtol=1e-5)


def test_rpn_bbox_loss_uses_the_difference_to_the_target():
    labels = np.array([[1]], np.int32)
    target = np.array([[[1.0, -1.0, 0.0, 0.3]]], np.float32)
    deltas = np.array([[[1.05, -1.0, 0.0, 0.2]]], np.float32)  # differences 0.05, 0, 0, -0.1
    np.testing.assert_allclose(losses.rpn_bbox_loss(labels, target, deltas).numpy(), 0.01125 + 0.045, rtol=1e-4)


def test_rcnn_class_loss_weights_out_padding():
    class_ids = np.array([[1, 0, 0], [2, 0, 0]], np.int32)
    weights = np.array([[1, 1, 0], [1, 0, 0]], np.float32)
    logits = np.array([[[0, 0, 0], [2, 0, 0], [-50, 50, 0]],
                       [[0, 0, math.log(2.0)], [0, 50, 0], [0, 50, 0]]], np.float32)
    # Image 0: uniform logits, -log(1/3) = log 3; class 0 at logit 2 against two 0s,
    # -log(e^2 / (e^2 + 2)) = log(1 + 2 e^-2); the padding row (cost 100) has weight 0.
    image0 = (LOG3 + math.log1p(2 * math.exp(-2.0))) / 2
    # Image 1: class 2 with probability 2 / (1 + 1 + 2): log 2; two padding rows.
    image1 = LOG2
    loss = losses.rcnn_class_loss(class_ids, logits, weights).numpy()
    np.testing.assert_allclose(loss, (image0 + image1) / 2, rtol=1e-5)


def test_rcnn_bbox_loss_reads_the_target_class_deltas_with_beta_1():
    class_ids = np.array([[2, 1, 0], [0, 0, 0]], np.int32)
    target = np.zeros((2, 3, 4), np.float32)
    deltas = np.full((2, 3, 3, 4), 7.0, np.float32)  # the other classes' deltas are far off
    target[0, 0] = [1.0, 0.0, 0.0, 0.0]
    deltas[0, 0, 2] = [1.5, -2.0, 0.0, 0.0]  # differences 0.5 (0.5 * 0.25), -2 (2 - 0.5)
    target[0, 1] = [0.0, 0.0, -0.2, 0.0]
    deltas[0, 1, 1] = [0.0, 0.0, 0.0, -1.0]  # differences 0.2 (0.5 * 0.04), -1 (1 - 0.5)
    image0 = ((0.125 + 1.5) + (0.02 + 0.5)) / 2  # 2 positives; the class-0 row does not count
    np.testing.assert_allclose(losses.rcnn_bbox_loss(class_ids, target, deltas).numpy(), image0 / 2, rtol=1e-5)


def test_mask_loss_reads_the_target_class_mask():
    class_ids = np.array([[1, 0], [0, 0]], np.int32)
    target = np.zeros((2, 2, 2, 2), np.float32)
    target[0, 0] = [[1, 1], [0, 1]]
    logits = np.full((2, 2, 2, 2, 2), -100.0, np.float32)  # class 0's mask would cost 100 on the 1s
    logits[0, 0, :, :, 1] = [[0.0, math.log(3.0)], [-math.log(3.0), 100.0]]
    # Per pixel: -log sigmoid(0) = log 2; -log(3/4); -log(1 - 1/4); ~0. Mean over 4 pixels.
    image0 = (LOG2 + 2 * math.log(4.0 / 3.0)) / 4
    np.testing.assert_allclose(losses.mask_loss(class_ids, target, logits).numpy(), image0 / 2, rtol=1e-5)


def test_images_without_positives_give_exactly_zero():
    labels = np.array([[0, -1], [-1, 0]], np.int32)
    class_ids = np.zeros((2, 3), np.int32)
    big = np.full((2, 2, 4), 9.0, np.float32)
    assert losses.rpn_bbox_loss(labels, np.zeros_like(big), big).numpy() == 0.0
    assert losses.rcnn_bbox_loss(class_ids, np.zeros((2, 3, 4), np.float32),
                                 np.full((2, 3, 2, 4), 9.0, np.float32)).numpy() == 0.0
    assert losses.mask_loss(class_ids, np.ones((2, 3, 2, 2), np.float32),
                            np.full((2, 3, 2, 2, 2), -9.0, np.float32)).numpy() == 0.0


@pytest.mark.parametrize("weight", [1.0, 2.5])
def test_weighted_loss_adds_weight_times_loss_and_tracks_the_loss(weight):
    class_ids = np.array([[1, 0]], np.int32)
    target = np.zeros((1, 2, 4), np.float32)
    deltas = np.zeros((1, 2, 2, 4), np.float32)
    deltas[0, 0, 1] = [0.0, 0.0, 3.0, 0.0]  # one positive, difference 3: 3 - 0.5 = 2.5
    layer = losses.WeightedLoss("rcnn_bbox_loss", weight)
    out = layer(class_ids, target, deltas)
    np.testing.assert_allclose(out.numpy(), 2.5, rtol=1e-6)
    assert len(layer.losses) == 1
    np.testing.assert_allclose(layer.losses[0].numpy(), weight * 2.5, rtol=1e-6)
    np.testing.assert_allclose(layer.tracker.result().numpy(), 2.5, rtol=1e-6)
