"""Dataset -> per-GT table in the input frame -> summary, against hand-computed values."""
import numpy as np
from conftest import REPO

from detection.analysis.anchor_match import AnchorSpec
from detection.analysis.anchor_stats import ImageBoxes, gt_table, match_dataset, summarize
from detection.config import Config

from .brute_force import brute_force_match


def image(image_id, height, width, boxes, crowd=None):
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    crowd = np.zeros(len(boxes), bool) if crowd is None else np.asarray(crowd, bool)
    return ImageBoxes(image_id, height, width, boxes, crowd)


def test_boxes_go_to_the_input_frame_and_crowd_empty_degenerate_are_counted():
    config = Config({"IMAGE_RESIZE_MODE": "square", "IMAGE_MIN_DIM": 800, "IMAGE_MAX_DIM": 1024})
    images = [
        image("a", 480, 640, [[10, 20, 110, 220], [0, 0, 50, 50]], crowd=[False, True]),  # scale 1.6
        image("b", 300, 300, []),                                                         # empty
        image("c", 300, 300, [[1, 1, 40, 40]], crowd=[True]),                             # only crowd
        image("d", 300, 300, [[5, 5, 5, 10], [0, 0, 100, 30]]),                           # one without area
    ]
    table, counts = gt_table(images, config)
    assert (counts.image_num, counts.images_without_gt, counts.crowd_num, counts.degenerate_num) == (4, 2, 2, 1)
    assert list(table.image_id) == ["a", "d"] and table.image_index.tolist() == [0, 3]
    np.testing.assert_allclose(table.boxes[0], [16, 32, 176, 352])
    np.testing.assert_allclose(table.original_boxes[0], [10, 20, 110, 220])
    # 300 px: the short side goes to 800 (scale 8 / 3), the long side stays within 1024.
    np.testing.assert_allclose(table.boxes[1], np.float32([0, 0, 100, 30]) * np.float32(800 / 300))
    assert table.padded_shape.tolist() == [[1024, 1024]] * 2
    assert counts.anchors_by_shape == {(1024, 1024): (4, AnchorSpec.from_config(config).anchor_count((1024, 1024)))}


def test_pad64_images_are_matched_against_their_own_anchors():
    config = Config({"IMAGE_RESIZE_MODE": "pad64", "IMAGE_MIN_DIM": 256, "IMAGE_MAX_DIM": 512,
                     "RPN_ANCHOR_SCALES": [16, 32, 64, 128, 256]})
    rng = np.random.default_rng(1)
    images = []
    for i, (h, w) in enumerate([(256, 256), (200, 500), (500, 180), (333, 257)]):
        xy = rng.uniform(0, min(h, w) - 40, (15, 2))
        size = rng.uniform(3, 150, (15, 2))
        boxes = np.concatenate([xy, np.minimum(xy + size, [h, w])], axis=1)
        images.append(image(i, h, w, boxes))
    table, counts = match_dataset(images, config)
    assert len(counts.anchors_by_shape) == 4
    spec = AnchorSpec.from_config(config)
    for i in range(len(images)):
        rows = table.image_index == i
        shape = tuple(table.padded_shape[rows][0])
        ref = brute_force_match(table.boxes[rows], shape, spec, config.RPN_POSITIVE_IOU)
        np.testing.assert_array_equal(table.positive_anchors[rows], ref["positive_anchors"])
        np.testing.assert_allclose(table.best_iou[rows], ref["best_iou"], rtol=1e-5)


def fields_config():
    # No resize (scale 1, inputs padded to multiples of 64), positive IoU 0.6 so it is reported too.
    return Config({"IMAGE_RESIZE_MODE": "none", "RPN_POSITIVE_IOU": 0.6})


def fields_images():
    return [
        image(7, 256, 256, [
            [12, 28, 76, 92],       # 64 x 64: equals a P3 ratio-1 anchor, IoU 1 (medium)
            [100, 100, 110, 110],   # 10 x 10: small, poorly matched
            [0, 0, 200, 200],       # large
            [150, 10, 160, 50],     # 10 x 40: w/h 4, small
            [40, 140, 72, 172],     # 32 x 32 exactly: medium (area >= 32^2)
        ]),
        image(8, 100, 100, []),
    ]


def test_summary_fields_and_values():
    config = fields_config()
    table, counts = match_dataset(fields_images(), config)
    s = summarize(table, counts, config, worst=3)
    assert (s["image_num"], s["images_without_gt"], s["gt_num"], s["crowd_num"]) == (2, 1, 5, 0)
    assert s["anchor_num"] == round((AnchorSpec.from_config(config).anchor_count((256, 256))
                                     + AnchorSpec.from_config(config).anchor_count((128, 128))) / 2)
    assert set(s["matched_fraction"]) == {"0.3", "0.5", "0.6", "0.7"}
    best = table.best_iou
    assert s["best_iou"]["min"] == best.min() and s["best_iou"]["median"] == np.median(best)
    assert s["matched_fraction"]["0.6"] == np.mean(best >= 0.6)
    assert s["miss_match_gt_num"] == int(np.sum(best < 0.6))
    assert best[0] == 1.0 and s["best_level"]["P3"] >= 1
    assert {k: v["gt_num"] for k, v in s["by_size"].items()} == {"small": 2, "medium": 2, "large": 1}
    assert s["by_aspect"]["w/h>=3"]["gt_num"] == 1 and s["by_aspect"]["2/3-3/2"]["gt_num"] == 4
    assert sum(s["positive_anchors_per_gt"]["histogram"].values()) == 5
    assert s["positive_anchors_per_gt"]["mean"] == table.positive_anchors.mean()
    assert [w["best_iou"] for w in s["worst"]] == sorted(best)[:3]
    assert s["worst"][0]["image_id"] == 7 and len(s["worst"][0]["box"]) == 4


def test_summary_of_a_dataset_without_boxes_has_no_nan():
    config = fields_config()
    table, counts = match_dataset([image(1, 64, 64, [])], config)
    s = summarize(table, counts, config)
    assert s["gt_num"] == 0 and s["best_iou"] is None and s["matched_fraction"]["0.7"] is None
    assert s["positive_anchors_per_gt"]["mean"] is None and s["worst"] == []
    assert s["by_size"]["small"]["gt_num"] == 0




def test_every_scale_on_every_level_per_input_grids_match_brute_force():
    # The mobile model (torchvision generator, 5 scales on levels at strides 32, 32, 64) at a small
    # size: pad32 inputs whose P6 step is padded side // cells (224 -> 4 cells, step 56).
    config = Config.from_yaml(REPO / "configs" / "torchvision_fasterrcnn_mobilenet_v3_large_fpn.yaml",
                              overrides=["IMAGE_MIN_DIM=160", "IMAGE_MAX_DIM=224"])
    rng = np.random.default_rng(4)
    images = []
    for i, (h, w) in enumerate([(200, 300), (300, 170), (150, 150)]):
        xy = rng.uniform(0, min(h, w) - 20, (25, 2))
        boxes = np.concatenate([xy, np.minimum(xy + rng.uniform(8, 200, (25, 2)), [h, w])], axis=1)
        images.append(image(i, h, w, boxes))
    table, counts = match_dataset(images, config)
    spec = AnchorSpec.from_config(config)
    assert len(counts.anchors_by_shape) == 3 and spec.anchors_per_location == 15
    for i in range(len(images)):
        rows = table.image_index == i
        ref = brute_force_match(table.boxes[rows], tuple(table.padded_shape[rows][0]), spec, config.RPN_POSITIVE_IOU)
        np.testing.assert_array_equal(table.positive_anchors[rows], ref["positive_anchors"])
        np.testing.assert_allclose(table.best_iou[rows], ref["best_iou"], rtol=1e-5)
        # The reported (level, scale, ratio) group holds the best anchor.
        scale_index = np.searchsorted(spec.scales, table.scale[rows])
        reached = ref["group_best"][np.arange(rows.sum()), table.level[rows], scale_index, table.ratio_index[rows]]
        np.testing.assert_allclose(reached, ref["best_iou"], rtol=1e-5)
    s = summarize(table, counts, config, worst=1)
    assert list(s["best_level"]) == ["L0 (stride 32)", "L1 (stride 32)", "L2 (stride 64)"]
    assert sum(s["best_scale"].values()) == len(table) and len([v for v in s["best_scale"].values() if v]) >= 3
    worst = int(np.argmin(table.best_iou))
    assert s["worst"][0]["scale"] == table.scale[worst] and s["config"]["ANCHOR_SCALES_ON_EVERY_LEVEL"]
