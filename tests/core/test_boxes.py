import numpy as np
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from detection.core import boxes as box_ops


def test_iou_detectron2_case():
    # Detectron2 test_pairwise_iou: [0,0,1,1] against boxes covering a half, a quarter ...
    a = np.array([[0.0, 0.0, 1.0, 1.0]])  # as [y1, x1, y2, x2]
    b = np.array([
        [0.0, 0.0, 1.0, 1.0],
        [0.0, 0.0, 0.5, 1.0],
        [0.0, 0.0, 1.0, 0.5],
        [0.0, 0.0, 0.5, 0.5],
        [0.5, 0.5, 1.0, 1.0],
        [0.5, 0.5, 1.5, 1.5],
    ])
    expected = [1.0, 0.5, 0.5, 0.25, 0.25, 0.25 / 1.75]
    np.testing.assert_allclose(box_ops.iou(a, b).numpy()[0], expected, rtol=1e-6)


def test_iou_empty_sides():
    a = np.zeros((0, 4), np.float32)
    b = np.array([[0, 0, 2, 2]], np.float32)
    assert box_ops.iou(a, b).shape == (0, 1)
    assert box_ops.iou(b, a).shape == (1, 0)


def test_iou_of_two_zero_area_boxes_is_zero_not_nan():
    z = np.zeros((2, 4), np.float32)
    out = box_ops.iou(z, z).numpy()
    assert np.all(out == 0.0)


def test_encode_known_value():
    anchor = np.array([[0.0, 0.0, 10.0, 10.0]])
    box = np.array([[1.0, 2.0, 11.0, 22.0]])  # centre shifted (1, 7), height 10, width 20
    deltas = box_ops.encode(box, anchor, std=(1, 1, 1, 1)).numpy()[0]
    np.testing.assert_allclose(deltas, [0.1, 0.7, 0.0, np.log(2.0)], rtol=1e-6)


def test_decode_clamps_huge_deltas():
    anchor = np.array([[0.0, 0.0, 16.0, 16.0]])
    out = box_ops.decode(np.array([[0.0, 0.0, 1e4, 1e4]]), anchor).numpy()[0]
    assert np.all(np.isfinite(out))
    # Clamped at log(1000/16): the box is at most 1000 pixels high.
    np.testing.assert_allclose(out[2] - out[0], 1000.0, rtol=1e-4)


def test_clip_and_zero_area():
    b = np.array([[-5.0, -5.0, 50.0, 20.0], [30.0, 30.0, 40.0, 40.0]])
    clipped = box_ops.clip(b, [0.0, 0.0, 32.0, 32.0]).numpy()
    np.testing.assert_allclose(clipped, [[0, 0, 32, 20], [30, 30, 32, 32]])
    zero = box_ops.is_zero_area(np.array([[0, 0, 0, 0], [1, 1, 2, 1], [1, 1, 2, 2.0]])).numpy()
    assert zero.tolist() == [True, True, False]


box_strategy = st.tuples(
    st.floats(-500, 500), st.floats(-500, 500), st.floats(1, 400), st.floats(1, 400)
).map(lambda t: [t[0], t[1], t[0] + t[2], t[1] + t[3]])


@settings(max_examples=60, deadline=None)
@given(box=box_strategy, anchor=box_strategy)
def test_encode_decode_round_trip(box, anchor):
    box = np.array([box], np.float32)
    anchor = np.array([anchor], np.float32)
    deltas = box_ops.encode(box, anchor)
    # Only deltas inside the clamp can round-trip.
    if np.max(deltas.numpy()[:, 2:] * 0.2) >= box_ops.BBOX_XFORM_CLIP:
        return
    np.testing.assert_allclose(box_ops.decode(deltas, anchor).numpy(), box, atol=1e-2, rtol=1e-4)


@settings(max_examples=60, deadline=None)
@given(a=st.lists(box_strategy, min_size=1, max_size=5), b=st.lists(box_strategy, min_size=1, max_size=5))
def test_iou_symmetric_and_bounded(a, b):
    ab = box_ops.iou(np.array(a), np.array(b)).numpy()
    ba = box_ops.iou(np.array(b), np.array(a)).numpy()
    np.testing.assert_allclose(ab, ba.T, atol=1e-6)
    assert np.all(ab >= 0.0) and np.all(ab <= 1.0 + 1e-6)


@settings(max_examples=40, deadline=None)
@given(box=box_strategy)
def test_clip_idempotent(box):
    window = tf.constant([0.0, 0.0, 256.0, 300.0])
    once = box_ops.clip(np.array([box], np.float32), window)
    np.testing.assert_array_equal(box_ops.clip(once, window).numpy(), once.numpy())
