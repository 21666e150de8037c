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
