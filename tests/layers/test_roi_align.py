import numpy as np
import tensorflow as tf

from detection.layers.roi_align import PyramidROIAlign, roi_levels


def test_levels_follow_fpn_rule():
    rois = np.array([[0, 0, 224, 224], [0, 0, 112, 112], [0, 0, 448, 448], [0, 0, 10, 10], [0, 0, 2000, 2000.0]])
    assert roi_levels(rois).numpy().tolist() == [2, 1, 3, 0, 3]  # P4, P3, P5, P2 (clipped), P5 (clipped)


def test_non_finite_rois_still_pool_without_error():
    maps = [tf.ones([1, 64 // s, 64 // s, 2]) for s in (4, 8, 16, 32)]
    rois = np.array([[[np.nan, 0, 10, 10], [0, 0, np.inf, 10], [0, 0, 20, 20]]], np.float32)
    assert roi_levels(rois[0]).numpy().tolist() == [0, 0, 0]
    out = PyramidROIAlign(2, name="t")(rois, *maps).numpy()
    assert out.shape == (1, 3, 2, 2, 2)
    np.testing.assert_allclose(out[0, 2], 1.0)  # the finite RoI is unaffected


def test_aligned_samples_on_a_linear_ramp_are_exact():
    # On f(y, x) = y + 10 x (feature pixel centres at integers), bilinear sampling is exact, so
    # each output bin equals f at the bin's centre: with stride s, the input-pixel point (Y, X)
    # sits at feature coordinate (Y / s - 0.5, X / s - 0.5).
    stride, pool = 4, 2
    h = w = 16
    ys, xs = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    ramp = (ys + 10.0 * xs).astype("float32")[None, :, :, None]
    maps = [tf.constant(ramp)] + [tf.zeros([1, h // 2 ** k, w // 2 ** k, 1]) for k in (1, 2, 3)]
    roi = np.array([[[8.0, 12.0, 40.0, 28.0]]], np.float32)  # 32 x 16 px: level P2 (stride 4)
    out = PyramidROIAlign(pool, name="t")(roi, *maps).numpy()[0, 0, :, :, 0]
    for i in range(pool):
        for j in range(pool):
            cy = 8.0 + (i + 0.5) * 32.0 / pool
            cx = 12.0 + (j + 0.5) * 16.0 / pool
            expected = (cy / stride - 0.5) + 10.0 * (cx / stride - 0.5)
            np.testing.assert_allclose(out[i, j], expected, rtol=1e-5)


def test_rois_keep_their_order_across_levels():
    maps = [tf.fill([2, 512 // s, 512 // s, 1], float(s)) for s in (4, 8, 16, 32)]
    rois = np.array([[[0, 0, 500, 500], [0, 0, 20, 20]], [[0, 0, 120, 120], [0, 0, 250, 250]]], np.float32)
    out = PyramidROIAlign(1, name="t")(rois, *maps).numpy()[..., 0, 0, 0]
    # Each RoI reads the constant of its level's map: P5 (32), P2 (4), P3 (8), P4 (16).
    np.testing.assert_allclose(out, [[32, 4], [8, 16]])
