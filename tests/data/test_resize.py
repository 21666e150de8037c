import numpy as np

from detection.data.resize import resize_geometry


def test_square_scales_up_short_side_then_limits_long_side():
    g = resize_geometry(480, 640, "square", 800, 1024)
    # 800 / 480 = 1.667 would make the long side 1067 > 1024, so 1024 / 640 = 1.6.
    assert g.scale == 1.6 and g.resized_shape == (768, 1024) and g.padded_shape == (1024, 1024)
    assert g.window == (0, 0, 768, 1024)


def test_square_never_scales_down_below_one_unless_too_big():
    g = resize_geometry(100, 50, "square", 32, 128)
    assert g.scale == 1.0 and g.resized_shape == (100, 50)
    g = resize_geometry(300, 150, "square", 32, 128)
    assert abs(g.scale - 128 / 300) < 1e-9 and g.resized_shape == (128, 64)


def test_pad64_and_none_pad_to_multiples_of_64():
    assert resize_geometry(480, 640, "pad64", 600, 1000).padded_shape == (640, 832)
    g = resize_geometry(100, 130, "none", 800, 1024)
    assert g.scale == 1.0 and g.padded_shape == (128, 192)


def test_torchvision_resize_floors_the_sides_and_keeps_float_pixels():
    """torchvision's GeneralizedRCNNTransform: scale min(256 / 200, 416 / 300) = 1.28, 300 x 200
    -> 384 x 256 (floor), padded to multiples of 32; 240 x 320 -> 256 x 341 (341.33 floored),
    padded 256 x 352; pixels interpolated as torch's bilinear (tf.image.resize), not rounded."""
    import tensorflow as tf

    from detection.data.images import resize_bilinear_torch
    from detection.data.resize import resize_geometry

    geometry = resize_geometry(300, 200, "pad32", 256, 416, method="torchvision")
    assert (geometry.resized_shape, geometry.padded_shape, geometry.offset) == ((384, 256), (384, 256), (0, 0))
    geometry = resize_geometry(240, 320, "pad32", 256, 416, method="torchvision")
    assert (geometry.resized_shape, geometry.padded_shape) == ((256, 341), (256, 352))
    image = np.random.default_rng(0).integers(0, 256, (37, 53, 3)).astype(np.uint8)
    for hw in [(20, 70), (80, 11)]:
        ours = resize_bilinear_torch(image, hw)
        assert ours.dtype == np.float32 and not np.all(ours == np.round(ours))
        np.testing.assert_allclose(ours, tf.image.resize(image.astype(np.float32), hw, antialias=False).numpy(),
                                   atol=1e-4)
