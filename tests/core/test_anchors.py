import numpy as np

from detection.core import anchors


def test_detectron2_centered_case():
    # Detectron2 test_default_anchor_generator_centered: sizes (32, 64), aspect ratios h/w
    # (0.25, 1, 4), stride 4, a 1x2 map. Their h/w 0.25, 1, 4 are our w/h 4, 1, 0.25.
    out = anchors.generate_anchors([32, 64], [4.0, 1.0, 0.25], (1, 2), stride=4)
    expected_xyxy = np.array([
        [-30, -6, 34, 10], [-14, -14, 18, 18], [-6, -30, 10, 34],
        [-62, -14, 66, 18], [-30, -30, 34, 34], [-14, -62, 18, 66],
        [-26, -6, 38, 10], [-10, -14, 22, 18], [-2, -30, 14, 34],
        [-58, -14, 70, 18], [-26, -30, 38, 34], [-10, -62, 22, 66],
    ], np.float32)
    np.testing.assert_allclose(out, expected_xyxy[:, [1, 0, 3, 2]], atol=1e-4)


def test_model_garden_level5_case():
    # TF Model Garden anchor test: level 5 (stride 32), one scale, ratio 1, anchor size 64,
    # 64x64 image.
    out, levels = anchors.generate_pyramid_anchors([64], [1.0], (64, 64), [32])
    np.testing.assert_allclose(out, [[-16, -16, 48, 48], [-16, 16, 48, 80], [16, -16, 80, 48], [16, 16, 80, 80]])
    assert levels.tolist() == [0, 0, 0, 0]


def test_ratio_is_width_over_height_and_scale_is_side():
    (a,) = anchors.generate_anchors([32], [2.0], (1, 1), stride=16)
    h, w = a[2] - a[0], a[3] - a[1]
    np.testing.assert_allclose([w / h, np.sqrt(h * w)], [2.0, 32.0], rtol=1e-5)


def test_pyramid_counts_and_order():
    out, levels = anchors.generate_pyramid_anchors([8, 16], [0.5, 1, 2], (64, 48), [4, 8])
    assert len(out) == 16 * 12 * 3 + 8 * 6 * 3
    assert levels.tolist() == [0] * (16 * 12 * 3) + [1] * (8 * 6 * 3)
    # Row (y * W + x) * A + a of level 0: the anchor at y=1, x=2, ratio index 1 is centred at (6, 10).
    row = (1 * 12 + 2) * 3 + 1
    np.testing.assert_allclose([(out[row, 0] + out[row, 2]) / 2, (out[row, 1] + out[row, 3]) / 2], [6, 10])


def test_anchor_stride_skips_cells():
    out = anchors.generate_anchors([16], [1.0], (4, 4), stride=8, anchor_stride=2)
    centres = (out[:, :2] + out[:, 2:]) / 2
    np.testing.assert_allclose(centres, [[4, 4], [4, 20], [20, 4], [20, 20]])


def test_graph_anchors_equal_numpy_anchors():
    import tensorflow as tf

    from detection.config import Config

    config = Config({"RPN_ANCHOR_SCALES": [8, 16, 32, 64, 128], "RPN_ANCHOR_RATIOS": [0.5, 1, 2]})
    spec = anchors.AnchorSpec.from_config(config)
    static = spec.anchors((192, 128))
    dynamic = spec.anchors((tf.constant(192), tf.constant(128)))
    np.testing.assert_allclose(dynamic.numpy(), static, atol=1e-4)


def test_torchvision_generator_rounds_base_anchors_and_uses_the_integer_stride():
    """torchvision's AnchorGenerator: size 32, its ratios h / w (0.5, 1, 2) = ours w / h (2, 1, 0.5)
    give base anchors xyxy [-23, -11, 23, 11], [-16, -16, 16, 16], [-11, -23, 11, 23]; centres at
    i x (padded side // level side): a 256 x 352 input has a 4 x 6 P6, strides 64 and 58."""
    from detection.core.anchors import AnchorSpec, torchvision_base_anchors

    np.testing.assert_array_equal(torchvision_base_anchors(32, (2.0, 1.0, 0.5)),
                                  [[-11, -23, 11, 23], [-16, -16, 16, 16], [-23, -11, 23, 11]])
    spec = AnchorSpec((32, 64, 128, 256, 512), (2.0, 1.0, 0.5), (4, 8, 16, 32, 64), 1, 0.5, "torchvision")
    anchors = spec.anchors((256, 352))
    assert len(anchors) == spec.anchor_count((256, 352)) == 3 * (64 * 88 + 32 * 44 + 16 * 22 + 8 * 11 + 4 * 6)
    p6 = anchors[-3 * 24:].reshape(4, 6, 3, 4)
    base = torchvision_base_anchors(512, (2.0, 1.0, 0.5))
    np.testing.assert_array_equal(p6[1, 2], base + [64, 2 * 58, 64, 2 * 58])
    import tensorflow as tf

    graph = spec.anchors((tf.constant(256), tf.constant(352)))
    np.testing.assert_array_equal(graph.numpy(), anchors)
