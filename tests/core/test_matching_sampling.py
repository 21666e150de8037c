import numpy as np
import tensorflow as tf

from detection.core import batching, matching, sampling
from detection.core import boxes as box_ops


def test_thresholds_and_ignore():
    iou = np.array([[0.1, 0.5, 0.8, 0.29]], np.float32)
    labels, matched, max_iou = matching.match(iou, 0.7, 0.3, allow_low_quality=False)
    assert labels.numpy().tolist() == [0, -1, 1, 0]
    np.testing.assert_allclose(max_iou.numpy(), iou[0])


def test_low_quality_match_keeps_each_gt_best_anchor():
    # GT 1 reaches at most 0.4 (anchor 2): positive only with allow_low_quality.
    iou = np.array([[0.9, 0.1, 0.0], [0.0, 0.2, 0.4]], np.float32)
    labels, matched, _ = matching.match(iou, 0.7, 0.3, allow_low_quality=True)
    assert labels.numpy().tolist() == [1, 0, 1]
    assert matched.numpy().tolist() == [0, 1, 1]
    labels, _, _ = matching.match(iou, 0.7, 0.3, allow_low_quality=False)
    assert labels.numpy().tolist() == [1, 0, -1]


def test_zero_gt_all_negative_no_nan():
    anchors = np.array([[0, 0, 10, 10], [5, 5, 20, 20]], np.float32)
    labels, matched, max_iou = matching.match(box_ops.iou(np.zeros((0, 4), np.float32), anchors))
    assert labels.numpy().tolist() == [0, 0]
    assert matched.numpy().tolist() == [0, 0]
    assert np.all(np.isfinite(max_iou.numpy()))


def test_zero_gt_inside_tf_function():
    @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32)])
    def run(gt):
        return matching.match(box_ops.iou(gt, tf.constant([[0.0, 0.0, 4.0, 4.0]])))[0]

    assert run(tf.zeros([0, 4])).numpy().tolist() == [0]
    assert run(tf.constant([[0.0, 0.0, 4.0, 4.0]])).numpy().tolist() == [1]


def test_torchvision_sampler_case():
    labels = np.array([0] * 6 + [1] * 3 + [-1] * 2, np.int32)
    pos, neg = sampling.sample_balanced(labels, num_samples=4, positive_fraction=0.25, seed=1)
    pos, neg = pos.numpy(), neg.numpy()
    assert pos.sum() == 1 and neg.sum() == 3
    assert np.all(labels[pos] == 1) and np.all(labels[neg] == 0)
    assert not np.any(pos & neg)


def test_sampler_fills_with_negatives_and_is_reproducible():
    labels = np.array([1] * 2 + [0] * 20, np.int32)
    a = sampling.sample_balanced(labels, 10, 0.5, seed=7)
    b = sampling.sample_balanced(labels, 10, 0.5, seed=7)
    c = sampling.sample_balanced(labels, 10, 0.5, seed=8)
    assert a[0].numpy().sum() == 2 and a[1].numpy().sum() == 8
    np.testing.assert_array_equal(a[1].numpy(), b[1].numpy())
    assert not np.array_equal(a[1].numpy(), c[1].numpy())


def test_batch_slice_pads_per_image():
    x = tf.constant([[1.0, 2.0, 0.0], [3.0, 0.0, 0.0]])

    def keep_positive(row):
        kept = tf.boolean_mask(row, row > 0)
        return tf.pad(kept, [[0, 3 - tf.shape(kept)[0]]])

    out = batching.batch_slice(x, keep_positive, batch_size=2)
    np.testing.assert_array_equal(out.numpy(), [[1, 2, 0], [3, 0, 0]])
