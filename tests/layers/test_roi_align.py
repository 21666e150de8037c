import numpy as np
import pytest
import tensorflow as tf

from detection.layers.roi_align import PyramidROIAlign, roi_levels

MODES = ["crop_and_resize", "gather"]
STRIDES = (4, 8, 16, 32)


def random_maps(size, channels=3, batch=2, seed=0):
    rng = np.random.default_rng(seed)
    return [tf.constant(rng.normal(size=(batch, size // s, size // s, channels)).astype("float32")) for s in STRIDES]


def random_rois(size, num_rois, batch=2, padding=4, seed=0):
    """[batch, num_rois, 4] boxes of sqrt(area) 2..900 px (all levels), aspect 1:2..2:1, centres
    up to 20 px outside the image (some poke out), the last ``padding`` rows of each image zero."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(-20, size + 20, (batch, num_rois, 2))
    scale = np.exp(rng.uniform(np.log(2), np.log(900), (batch, num_rois, 1)))
    aspect = np.exp(rng.uniform(-0.5, 0.5, (batch, num_rois, 1)) * np.log(2))
    sides = np.concatenate([scale * aspect, scale / aspect], axis=-1)
    rois = np.concatenate([centres - sides / 2, centres + sides / 2], axis=-1).astype("float32")
    rois[:, num_rois - padding:] = 0.0
    return rois


def test_levels_follow_fpn_rule():
    rois = np.array([[0, 0, 224, 224], [0, 0, 112, 112], [0, 0, 448, 448], [0, 0, 10, 10], [0, 0, 2000, 2000.0]])
    assert roi_levels(rois).numpy().tolist() == [2, 1, 3, 0, 3]  # P4, P3, P5, P2 (clipped), P5 (clipped)


@pytest.mark.parametrize("mode", MODES)
def test_non_finite_rois_still_pool_without_error(mode):
    maps = [tf.ones([1, 64 // s, 64 // s, 2]) for s in STRIDES]
    rois = np.array([[[np.nan, 0, 10, 10], [0, 0, np.inf, 10], [0, 0, 20, 20]]], np.float32)
    assert roi_levels(rois[0]).numpy().tolist() == [0, 0, 0]
    out = PyramidROIAlign(2, mode=mode, name="t")(rois, *maps).numpy()
    assert out.shape == (1, 3, 2, 2, 2)
    np.testing.assert_allclose(out[0, 2], 1.0)  # the finite RoI is unaffected


@pytest.mark.parametrize("mode", MODES)
def test_aligned_samples_on_a_linear_ramp_are_exact(mode):
    # On f(y, x) = y + 10 x (feature pixel centres at integers), bilinear sampling is exact, so
    # each output bin equals f at the bin's centre: with stride s, the input-pixel point (Y, X)
    # sits at feature coordinate (Y / s - 0.5, X / s - 0.5).
    stride, pool = 4, 2
    h = w = 16
    ys, xs = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    ramp = (ys + 10.0 * xs).astype("float32")[None, :, :, None]
    maps = [tf.constant(ramp)] + [tf.zeros([1, h // 2 ** k, w // 2 ** k, 1]) for k in (1, 2, 3)]
    roi = np.array([[[8.0, 12.0, 40.0, 28.0]]], np.float32)  # 32 x 16 px: level P2 (stride 4)
    out = PyramidROIAlign(pool, mode=mode, name="t")(roi, *maps).numpy()[0, 0, :, :, 0]
    for i in range(pool):
        for j in range(pool):
            cy = 8.0 + (i + 0.5) * 32.0 / pool
            cx = 12.0 + (j + 0.5) * 16.0 / pool
            expected = (cy / stride - 0.5) + 10.0 * (cx / stride - 0.5)
            np.testing.assert_allclose(out[i, j], expected, rtol=1e-5)


@pytest.mark.parametrize("mode", MODES)
def test_rois_keep_their_order_across_levels(mode):
    maps = [tf.fill([2, 512 // s, 512 // s, 1], float(s)) for s in STRIDES]
    rois = np.array([[[0, 0, 500, 500], [0, 0, 20, 20]], [[0, 0, 120, 120], [0, 0, 250, 250]]], np.float32)
    out = PyramidROIAlign(1, mode=mode, name="t")(rois, *maps).numpy()[..., 0, 0, 0]
    # Each RoI reads the constant of its level's map: P5 (32), P2 (4), P3 (8), P4 (16).
    np.testing.assert_allclose(out, [[32, 4], [8, 16]])


@pytest.mark.parametrize("pool", [2, 7])
def test_gather_mode_matches_crop_and_resize(pool):
    size = 128
    maps, rois = random_maps(size), random_rois(size, 96)
    assert set(roi_levels(rois).numpy().ravel()) == {0, 1, 2, 3}
    assert (rois[..., :2] < 0).any() and (rois[..., 2:] > size).any()  # some poke out of the image
    expected = PyramidROIAlign(pool, mode="crop_and_resize", name="t")(rois, *maps).numpy()
    out = PyramidROIAlign(pool, mode="gather", name="t")(rois, *maps).numpy()
    assert np.abs(expected).max() > 0.5
    np.testing.assert_allclose(out, expected, atol=1e-5, rtol=0)
    np.testing.assert_array_equal(out[:, -4:], 0.0)  # zero padding rows sample outside the map


def test_gather_mode_compiles_with_xla_and_matches_eager():
    size = 256
    maps = random_maps(size)
    # Random boxes, and integer boxes whose samples land exactly on a map's edge, where XLA's
    # rounding differs from eager's by an ulp: [0, 0, 8, 8] (P2, pool 7: a sample at y = 0) and
    # [32, 32, 256, 256] (P4: the last sample at h_k - 1).
    edge = np.array([[0, 0, 8, 8], [32, 32, 256, 256], [0, 0, 56, 56], [200, 0, 256, 56]], np.float32)
    rois = random_rois(size, 64)
    rois[:, :4] = edge
    layer = PyramidROIAlign(7, mode="gather", name="t")
    eager = layer(rois, *maps).numpy()
    compiled = tf.function(lambda r, *m: layer(r, *m), jit_compile=True)(rois, *maps).numpy()
    np.testing.assert_allclose(compiled, eager, atol=1e-4, rtol=0)


def disjoint_rois():
    """[2, 8, 4] RoIs of all levels on a 128 px image, no two of one level and image overlapping.

    crop_and_resize's CPU gradient adds the crops of one image in parallel without locking
    (tensorflow/tensorflow#42033), so where crops overlap it sometimes loses a contribution;
    with disjoint crops its gradient is exact and can serve as the reference."""
    p2 = [[3.3, 5.1, 50.2, 44.7], [4.6, 70.2, 40.9, 120.3], [66.1, 8.4, 110.8, 60.2], [70.3, 66.6, 131.5, 133.2]]
    image = p2 + [[-20.5, -30.3, 140.7, 110.2],  # P3, pokes out
                  [-80.2, -60.6, 220.1, 190.4],  # P4
                  [-250.3, -200.1, 350.4, 420.7],  # P5
                  [0, 0, 0, 0]]  # padding
    rois = np.array([image, image], np.float32)
    rois[1, :4] += 2.7  # the second image's P2 boxes elsewhere
    return rois


def test_gather_gradient_matches_crop_and_resize():
    maps, rois = random_maps(128), disjoint_rois()
    assert roi_levels(rois[0]).numpy().tolist() == [0, 0, 0, 0, 1, 2, 3, 0]
    weights = tf.constant(np.random.default_rng(1).normal(size=(2, 8, 7, 7, 3)).astype("float32"))

    def gradient(mode):
        layer = PyramidROIAlign(7, mode=mode, name="t")
        with tf.GradientTape() as tape:
            tape.watch(maps)
            loss = tf.reduce_sum(layer(rois, *maps) * weights)
        return [g.numpy() for g in tape.gradient(loss, maps)]

    for expected, got in zip(gradient("crop_and_resize"), gradient("gather")):
        assert np.abs(expected).max() > 0.1
        np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)


def test_mode_is_checked_and_kept_in_config():
    layer = PyramidROIAlign(7, mode="gather", name="t")
    assert PyramidROIAlign.from_config(layer.get_config()).mode == "gather"
    with pytest.raises(ValueError, match="mode"):
        PyramidROIAlign(7, mode="bilinear")


@pytest.mark.parametrize("mode, frame", [("crop_and_resize", "pixels"), ("gather", "pixels"),
                                         ("matterport", "normalized")])
def test_mixed_bfloat16_pools_at_the_float32_coordinates(mode, frame):
    # Under mixed_bfloat16 the RoIs must reach the sampling in float32: in bfloat16 a
    # coordinate of 700 px moves by up to 2 px (0.5 feature px at stride 4). Features given in
    # bfloat16 are pooled in float32 and the result rounded once, so the mixed layer gives
    # exactly the float32 layer's output on the same (bfloat16-valued) features, rounded.
    size = 1024
    maps = [tf.cast(m, tf.bfloat16) for m in random_maps(size, channels=4, batch=1, seed=3)]
    rois = random_rois(size, 40, batch=1, padding=0, seed=3)
    rois = rois / size if frame == "normalized" else rois
    mixed = PyramidROIAlign(7, mode=mode, frame=frame, dtype="mixed_bfloat16", name="t")(rois, *maps)
    single = PyramidROIAlign(7, mode=mode, frame=frame, name="t")(rois, *[tf.cast(m, tf.float32) for m in maps])
    assert mixed.dtype == tf.bfloat16
    np.testing.assert_array_equal(tf.cast(mixed, tf.float32).numpy(),
                                  tf.cast(tf.cast(single, tf.bfloat16), tf.float32).numpy())
