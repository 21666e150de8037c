"""ProposalLayer against a brute-force NumPy reference, and small cases worked out by hand."""
import numpy as np
import pytest

from detection.core.anchors import AnchorSpec
from detection.core.image_meta import compose_image_meta
from detection.layers.proposals import ProposalLayer, proposals_for_image
from tests.layers.reference import STD, decode, encode, greedy_nms, numpy_iou, pyramid_anchors

SIZE = 64
SCALES, RATIOS, STRIDES = (16.0, 32.0), (0.5, 1.0, 2.0), (16, 32)
ANCHORS = pyramid_anchors(SIZE, SCALES, RATIOS, STRIDES)  # 4 x 4 x 3 + 2 x 2 x 3 = 60 anchors
# Where the resized image sits in each padded input: the pixel frame clips to these.
WINDOWS = np.array([[8.0, 4.0, 56.0, 60.0], [0.0, 10.0, 64.0, 50.0]])
NMS = 0.5


def reference_proposals(scores, deltas, anchors, window, pre_nms_limit, count):
    """Top-k by score, decode, clip to ``window``, greedy NMS, zero rows up to ``count``."""
    order = np.argsort(-scores)[:pre_nms_limit]
    boxes = decode(deltas[order], anchors[order])
    boxes = np.clip(boxes, np.tile(window[:2], 2), np.tile(window[2:], 2))
    # No pair may sit at the NMS threshold, where float rounding could decide either way.
    assert np.all(np.abs(numpy_iou(boxes, boxes) - NMS) > 1e-4)
    kept = greedy_nms(boxes, NMS, count)
    out = np.zeros((count, 4))
    out[:len(kept)] = boxes[kept]
    return out, len(kept)


def to_normalized(boxes):
    """matterport's normalized frame of a SIZE x SIZE input: (y1, x1, y2 - 1, x2 - 1) / (SIZE - 1)."""
    return (boxes - np.array([0.0, 0.0, 1.0, 1.0])) / (SIZE - 1)


@pytest.mark.parametrize("seed", [2, 3, 4])  # seeds 0 and 1 put a pair of boxes within 1e-4 of the NMS threshold
@pytest.mark.parametrize("pre_nms_limit, count", [(40, 16), (24, 40)])
@pytest.mark.parametrize("frame", ["pixels", "normalized"])
def test_layer_matches_brute_force_reference(frame, pre_nms_limit, count, seed):
    rng = np.random.default_rng(seed)
    batch = len(WINDOWS)
    scores = rng.uniform(size=(batch, len(ANCHORS))).astype("float32")
    deltas = rng.normal(scale=1.5, size=(batch, len(ANCHORS), 4)).astype("float32")
    meta = np.stack([compose_image_meta(i, (SIZE, SIZE, 3), (SIZE, SIZE, 3), w, 1.0) for i, w in enumerate(WINDOWS)])
    layer = ProposalLayer(AnchorSpec(SCALES, RATIOS, STRIDES), count, pre_nms_limit=pre_nms_limit,
                          nms_threshold=NMS, bbox_std=STD, frame=frame, name="proposals")
    out = layer(scores, deltas, np.zeros((batch, SIZE, SIZE, 3), "float32"), meta).numpy()
    assert out.shape == (batch, count, 4)
    for i in range(batch):
        if frame == "pixels":
            anchors, window, atol = ANCHORS, WINDOWS[i], 1e-4
        else:  # the whole input, whatever the image window
            anchors, window, atol = to_normalized(ANCHORS), np.array([0.0, 0.0, 1.0, 1.0]), 1e-6
        expected, kept = reference_proposals(scores[i].astype(float), deltas[i].astype(float), anchors, window,
                                             pre_nms_limit, count)
        np.testing.assert_allclose(out[i], expected, rtol=1e-5, atol=atol)
        assert 0 < kept <= min(count, pre_nms_limit)
        np.testing.assert_array_equal(out[i, kept:], 0.0)  # padding rows are exactly zero
    if count > pre_nms_limit:
        assert np.all(out[:, pre_nms_limit:] == 0.0)  # fewer survivors than count


def test_large_deltas_are_clamped_before_exp_then_clipped():
    # Anchor [0, 0, 16, 16]: centre 8, side 16. Deltas / std: dy = -300 * 0.1 = -30 moves the
    # centre to 8 - 30 * 16 = -472; dh = 50 * 0.2 = 10 is clamped to log(62.5), so the height is
    # 16 * 62.5 = 1000: y from -972 to 28, clipped to [0, 28]. Unclamped, y2 would pass 64.
    boxes = proposals_for_image(np.array([0.9], np.float32), np.array([[-300.0, 0.0, 50.0, 0.0]], np.float32),
                                np.array([[0.0, 0.0, 16.0, 16.0]], np.float32), [0.0, 0.0, 64.0, 64.0],
                                pre_nms_limit=10, count=3, nms_threshold=0.7, std=STD)
    np.testing.assert_allclose(boxes.numpy(), [[0, 0, 28, 16], [0, 0, 0, 0], [0, 0, 0, 0]], atol=1e-3)


def converging_case():
    """Four anchors whose deltas all decode to [10, 12, 30, 40], and a fifth, lowest-scored,
    left where it is ([40, 40, 56, 56], no overlap)."""
    anchors = np.array([[0, 0, 16, 16], [8, 8, 40, 40], [20, 30, 36, 62], [2, 20, 18, 36], [40, 40, 56, 56.0]])
    target = np.array([[10.0, 12.0, 30.0, 40.0]])
    deltas = np.zeros((5, 4))
    deltas[:4] = encode(np.repeat(target, 4, 0), anchors[:4])
    scores = np.array([0.2, 0.9, 0.5, 0.7, 0.1])
    return scores.astype("float32"), deltas.astype("float32"), anchors.astype("float32")


@pytest.mark.parametrize("pre_nms_limit, expected_boxes", [
    (5, [[10, 12, 30, 40], [40, 40, 56, 56]]),  # NMS keeps the best of the four copies, then the fifth
    (4, [[10, 12, 30, 40]]),  # the fifth anchor is below the top 4 scores: cut before NMS
])
def test_nms_survivors_and_pre_nms_limit_by_hand(pre_nms_limit, expected_boxes):
    scores, deltas, anchors = converging_case()
    boxes = proposals_for_image(scores, deltas, anchors, [0.0, 0.0, 64.0, 64.0], pre_nms_limit,
                                count=4, nms_threshold=0.7, std=STD)
    n = len(expected_boxes)
    np.testing.assert_allclose(boxes.numpy()[:n], expected_boxes, atol=1e-4)  # best first, in score order
    np.testing.assert_array_equal(boxes.numpy()[n:], 0.0)


@pytest.mark.parametrize("threshold, kept", [(0.6, 2), (0.4, 1)])
def test_nms_drops_a_box_only_above_the_threshold(threshold, kept):
    # [0, 0, 10, 10] and [0, 0, 10, 5]: IoU 50 / 100 = 0.5.
    anchors = np.array([[0, 0, 10, 10], [0, 0, 10, 5]], np.float32)
    boxes = proposals_for_image(np.array([0.8, 0.6], np.float32), np.zeros((2, 4), np.float32), anchors,
                                [0.0, 0.0, 64.0, 64.0], 10, count=2, nms_threshold=threshold, std=STD)
    expected = np.zeros((2, 4))
    expected[:kept] = anchors[:kept]
    np.testing.assert_allclose(boxes.numpy(), expected, atol=1e-5)
