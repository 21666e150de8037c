"""The fast grid matcher against the brute force over every anchor (tests/analysis/brute_force.py)."""
import numpy as np
import pytest
from conftest import REPO

from detection.analysis.anchor_match import AnchorSpec, match_to_anchor_grid
from detection.config import Config

from .brute_force import brute_force_match

FPN = AnchorSpec((32, 64, 128, 256, 512), (0.5, 1.0, 2.0), (4, 8, 16, 32, 64), 1)
SHAPES = AnchorSpec((8, 16, 32, 64, 128), (0.5, 1.0, 2.0), (4, 8, 16, 32, 64), 1)


def assert_matches_brute_force(boxes, padded_shape, spec, positive_iou, exact_above=0.3, **kwargs):
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    fast = match_to_anchor_grid(boxes, np.tile(padded_shape, (len(boxes), 1)), spec, positive_iou, exact_above,
                                **kwargs)
    ref = brute_force_match(boxes, padded_shape, spec, positive_iou)
    assert spec.anchor_count(padded_shape) == ref["anchor_num"]
    np.testing.assert_array_equal(fast.positive_anchors, ref["positive_anchors"])
    exact = ref["best_iou"] >= exact_above
    np.testing.assert_array_equal(fast.best_iou[exact], ref["best_iou"][exact])
    # Below exact_above: the nearest cells' best, equal up to float32 rounding of anchor coordinates.
    np.testing.assert_allclose(fast.best_iou, ref["best_iou"], rtol=1e-5, atol=1e-9)
    # The reported level, scale and ratio hold the best anchor (ties may pick either).
    scale_index = [spec.level_scales[level].index(scale) for level, scale in zip(fast.level, fast.scale)]
    reached = ref["group_best"][np.arange(len(boxes)), fast.level, scale_index, fast.ratio_index]
    np.testing.assert_allclose(reached, ref["best_iou"], rtol=1e-5, atol=1e-9)
    return fast, ref


def test_worked_example_of_the_docstring():
    fast, _ = assert_matches_brute_force([[100, 100, 132, 132]], (256, 256), FPN, 0.7)
    assert fast.best_iou[0] == pytest.approx(900 / (1024 + 1024 - 900))
    assert fast.positive_anchors[0] == 4
    assert (fast.level[0], fast.ratio_index[0]) == (0, 1)  # P2, ratio 1


def test_box_equal_to_an_anchor_has_iou_one():
    # P3 (stride 8), ratio 1, scale 64, cell (5, 7): centre (44, 60).
    fast = match_to_anchor_grid([[12, 28, 76, 92]], [[256, 256]], FPN, 0.7)
    assert fast.best_iou[0] == 1.0 and fast.level[0] == 1 and fast.ratio_index[0] == 1


HAND_BUILT = [
    [0, 0, 10, 10],            # corner, tiny
    [-20, -20, 40, 40],        # partly outside the input (top-left)
    [1000, 1000, 1040, 1060],  # partly outside (bottom-right of 1024)
    [500, 500, 500.5, 500.5],  # half a pixel
    [0, 0, 1024, 1024],        # the whole input
    [-500, -500, 1500, 1500],  # larger than the input
    [300, 10, 304, 1010],      # 4 x 1000, elongated
    [10, 300, 1010, 304],      # 1000 x 4
    [200, 200, 245.25, 222.63],  # close to a ratio-0.5 P2 anchor
    [511.5, 511.5, 512.5, 768],
]


@pytest.mark.parametrize("spec", [FPN, SHAPES, FPN.replace(ratios=(1.0,)), FPN.replace(anchor_stride=2),
                                  FPN.replace(ratios=(0.25, 0.5, 1.0, 2.0, 4.0))],
                         ids=["fpn", "shapes", "one_ratio", "anchor_stride_2", "five_ratios"])
@pytest.mark.parametrize("positive_iou", [0.5, 0.7])
def test_hand_built_boxes_match_brute_force(spec, positive_iou):
    assert_matches_brute_force(HAND_BUILT, (1024, 1024), spec, positive_iou)


def test_non_square_input_and_odd_grid():
    # 320 x 704: P6 has 5 x 11 cells; with anchor stride 2, 3 x 6 (ceil).
    boxes = [[0, 0, 320, 704], [290, 650, 330, 720], [100, 100, 164, 164], [5, 690, 50, 704]]
    for spec in (FPN, FPN.replace(anchor_stride=2)):
        assert_matches_brute_force(boxes, (320, 704), spec, 0.7)


def test_random_boxes_and_configs_match_brute_force():
    rng = np.random.default_rng(7)
    for _ in range(12):
        spec = AnchorSpec(tuple(np.sort(rng.uniform(4, 300, 5)).round(1)),
                          tuple(np.exp(rng.uniform(-1.5, 1.5, rng.integers(1, 4))).round(2)),
                          (4, 8, 16, 32, 64), int(rng.integers(1, 3)))
        shape = (int(rng.integers(1, 7)) * 64, int(rng.integers(1, 7)) * 64)
        n = 120
        h = np.exp(rng.uniform(np.log(0.5), np.log(1.5 * max(shape)), n))
        w = h * np.exp(rng.uniform(-2.5, 2.5, n))
        cy, cx = rng.uniform(-30, shape[0] + 30, n), rng.uniform(-30, shape[1] + 30, n)
        boxes = np.stack([cy - h / 2, cx - w / 2, cy + h / 2, cx + w / 2], axis=1).astype(np.float32)
        boxes = boxes[(boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])]
        assert_matches_brute_force(boxes, shape, spec, float(rng.choice([0.3, 0.5, 0.7, 0.9])))


def test_chunking_and_exactness_window_do_not_change_the_result():
    rng = np.random.default_rng(3)
    xy = rng.uniform(0, 900, (300, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(4, 120, (300, 2))], axis=1).astype(np.float32)
    shapes = np.tile([1024, 1024], (300, 1))
    a = match_to_anchor_grid(boxes, shapes, FPN, 0.7, exact_above=0.3)
    b = match_to_anchor_grid(boxes, shapes, FPN, 0.7, exact_above=0.7, chunk_elements=7)
    np.testing.assert_array_equal(a.positive_anchors, b.positive_anchors)
    exact = a.best_iou >= 0.7
    np.testing.assert_array_equal(a.best_iou[exact], b.best_iou[exact])


def test_boxes_of_differently_padded_inputs_use_their_own_grid():
    # A 32 x 32 box centred on y = 256: the P2 ratio-1 anchors centred at y 254 or 258 and
    # x 114 or 118 overlap it 30 x 30 (IoU 0.784). A 256-high input has no row at 258.
    box = np.array([[240, 100, 272, 132]], np.float32)
    both = match_to_anchor_grid(np.repeat(box, 2, 0), [[256, 256], [1024, 256]], FPN, 0.7)
    for i, shape in enumerate([(256, 256), (1024, 256)]):
        ref = brute_force_match(box, shape, FPN, 0.7)
        assert both.positive_anchors[i] == ref["positive_anchors"][0]
    assert both.positive_anchors.tolist() == [2, 4]


def test_zero_positive_threshold_counts_every_anchor_and_empty_input():
    fast = match_to_anchor_grid([[10, 10, 50, 50]], [[128, 192]], FPN, 0.0)
    assert fast.positive_anchors[0] == FPN.anchor_count((128, 192))
    empty = match_to_anchor_grid(np.zeros((0, 4)), np.zeros((0, 2)), FPN, 0.7)
    assert len(empty.best_iou) == 0 and len(empty.positive_anchors) == 0


# The mobile model: torchvision's generator, five scales on each of the levels at strides 32, 32, 64.
MOBILE_CONFIG = REPO / "configs" / "torchvision_fasterrcnn_mobilenet_v3_large_fpn.yaml"
MOBILE = AnchorSpec.from_config(Config.from_yaml(MOBILE_CONFIG))


def boxes_of_every_size(shape, rng, n=150):
    """n boxes of sides 6 .. 1.5 x the input, centred anywhere in (and a little beyond) it."""
    h = np.exp(rng.uniform(np.log(6), np.log(1.5 * max(shape)), n))
    w = h * np.exp(rng.uniform(-1.5, 1.5, n))
    cy, cx = rng.uniform(-20, shape[0] + 20, n), rng.uniform(-20, shape[1] + 20, n)
    return np.stack([cy - h / 2, cx - w / 2, cy + h / 2, cx + w / 2], axis=1).astype(np.float32)


@pytest.mark.parametrize("generator", ["torchvision", "standard"])
@pytest.mark.parametrize("shape", [(320, 320), (352, 224)], ids=["320x320", "352x224_p6_step_58"])
def test_every_scale_on_every_level_matches_brute_force(generator, shape):
    # 352 / 64 -> a 6-cell P6 whose torchvision step is 352 // 6 = 58, not 64.
    assert MOBILE.every_level and MOBILE.anchors_per_location == 15
    spec = MOBILE.replace(generator=generator)
    rng = np.random.default_rng(11)
    boxes = np.concatenate([boxes_of_every_size(shape, rng), HAND_BUILT_SMALL], axis=0)
    for positive_iou in (0.5, 0.7):
        fast, ref = assert_matches_brute_force(boxes, shape, spec, positive_iou)
        # Every scale holds some box's best anchor, so skipping one would show (a skipped level
        # would change the positive counts: levels 0 and 1 hold the same anchors, ties go to 0).
        assert set(fast.scale[fast.best_iou >= 0.5]) == set(spec.scales)
        if generator == "torchvision" and shape[0] == 352:  # P6's rows at 58 are not on the stride-32 grid
            assert 2 in set(fast.level)


# Boxes equal to mobile anchors: scale 32 ratio 1 at cell (3, 2) of a stride-32 level (torchvision:
# centre (96, 64)), and scale 512 ratio 0.5 (w / h; rounded 362 x 724) at P6 cell (1, 1).
HAND_BUILT_SMALL = np.array([[80, 48, 112, 80], [64 - 362, 64 - 181, 64 + 362, 64 + 181], [0, 0, 320, 224]],
                            np.float32)


def test_torchvision_anchor_equal_to_a_box_has_iou_one():
    fast = match_to_anchor_grid(HAND_BUILT_SMALL[:2], [[320, 320], [320, 320]], MOBILE, 0.7)
    assert fast.best_iou.tolist() == [1.0, 1.0]
    assert fast.scale.tolist() == [32.0, 512.0] and fast.ratio_index.tolist() == [1, 2]
    # Standard centres (cell + 0.5) x stride miss both exactly.
    standard = match_to_anchor_grid(HAND_BUILT_SMALL[:2], [[320, 320], [320, 320]],
                                    MOBILE.replace(generator="standard"), 0.7)
    assert (standard.best_iou < 1).all()


def test_torchvision_generator_one_scale_per_level_matches_brute_force():
    spec = FPN.replace(generator="torchvision")
    rng = np.random.default_rng(5)
    assert_matches_brute_force(np.concatenate([boxes_of_every_size((352, 224), rng), HAND_BUILT_SMALL]),
                               (352, 224), spec, 0.7)


def test_torchvision_generator_with_anchor_stride_is_refused():
    """It puts anchors on every cell: the model, the targets and the statistics would disagree."""
    with pytest.raises(ValueError, match="RPN_ANCHOR_STRIDE 2: ANCHOR_GENERATOR torchvision puts anchors on every"):
        MOBILE.replace(anchor_stride=2)
