"""Balanced sampling of positives and negatives, as in Faster R-CNN.

Example (torchvision's case): labels [0 x6, 1 x3, -1 x2], 4 samples at positive fraction
0.25 gives 1 positive and 3 negatives; the IGNORE (-1) entries are never sampled.
"""

import tensorflow as tf


def sample_balanced(labels, num_samples, positive_fraction, seed=None):
    """Picks at most ``num_samples`` entries of ``labels``.

    labels: [N] int32, 1 positive, 0 negative, -1 ignored.
    Takes min(#positives, floor(num_samples * positive_fraction)) positives at random, then
    fills the rest with negatives at random. Reproducible for a given ``seed`` (stateless).
    Returns (positive_mask [N] bool, negative_mask [N] bool), disjoint.
    """
    labels = tf.convert_to_tensor(labels, tf.int32)
    max_positives = int(num_samples * positive_fraction)
    positive = tf.equal(labels, 1)
    negative = tf.equal(labels, 0)
    noise = _uniform(tf.shape(labels), seed)
    num_pos = tf.minimum(tf.reduce_sum(tf.cast(positive, tf.int32)), max_positives)
    num_neg = tf.minimum(tf.reduce_sum(tf.cast(negative, tf.int32)), num_samples - num_pos)
    return _take_random(positive, num_pos, noise), _take_random(negative, num_neg, noise)


def _uniform(shape, seed):
    if seed is None:
        return tf.random.uniform(shape)
    return tf.random.stateless_uniform(shape, seed=[seed, 0])


def _take_random(candidates, count, noise):
    """Marks ``count`` of the True entries of ``candidates`` [N], those with the largest noise."""
    score = tf.where(candidates, noise, -1.0)
    n = tf.shape(candidates)[0]
    # top_k over all N entries: ranks candidates first (noise >= 0), then the rest.
    _, order = tf.math.top_k(score, k=n)
    rank = tf.scatter_nd(order[:, None], tf.range(n), [n])
    return tf.logical_and(candidates, rank < count)
