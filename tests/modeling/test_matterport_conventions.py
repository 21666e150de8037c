"""Each convention where matterport differs from us, against matterport's formulas written
here in NumPy (from its mrcnn/model.py and utils.py): anchor centres, the RoI level rule,
the normalized box frame (decoding, clipping), mapping boxes to the original image, mask
pasting, and one class per RoI in the detection layer."""
import numpy as np
import pytest
import tensorflow as tf

from detection.core import boxes as box_ops
from detection.core.anchors import generate_pyramid_anchors
from detection.core.frames import from_frame, to_frame
from detection.core.image_meta import boxes_to_original, compose_image_meta
from detection.layers.detections import DetectionLayer
from detection.layers.roi_align import matterport_levels, roi_levels
from tests.tools import resize_weights


def test_anchors_are_centred_on_cell_corners():
    # matterport's generate_anchors: centres at arange(0, cells, anchor_stride) * stride.
    ours, _ = generate_pyramid_anchors([32], [0.5, 1.0, 2.0], (64, 96), [32], anchor_stride=1, offset=0.0)
    heights, widths = 32 / np.sqrt([0.5, 1, 2]), 32 * np.sqrt([0.5, 1, 2])
    expected = [[cy - h / 2, cx - w / 2, cy + h / 2, cx + w / 2]
                for cy in (0, 32) for cx in (0, 32, 64) for h, w in zip(heights, widths)]
    np.testing.assert_allclose(ours, expected, rtol=1e-6)
    centred, _ = generate_pyramid_anchors([32], [1.0], (64, 96), [32])  # ours: cell centres
    np.testing.assert_allclose(centred[0], [0, 0, 32, 32])


def test_normalized_frame_is_matterports_norm_boxes():
    # norm_boxes: (boxes - [0, 0, 1, 1]) / [h - 1, w - 1, h - 1, w - 1]; denorm_boxes inverts it.
    boxes = np.array([[10, 20, 51, 101], [0, 0, 101, 201]], np.float32)
    expected = (boxes - [0, 0, 1, 1]) / [100, 200, 100, 200]
    normalized = to_frame(boxes, (101, 201), "normalized").numpy()
    np.testing.assert_allclose(normalized, expected, rtol=1e-6)
    np.testing.assert_allclose(from_frame(normalized, (101, 201), "normalized").numpy(), boxes, atol=1e-4)
    np.testing.assert_array_equal(to_frame(boxes, (101, 201), "pixels").numpy(), boxes)


def matterport_apply_box_deltas(boxes, deltas):
    """matterport's apply_box_deltas_graph, in NumPy float64."""
    height, width = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    cy, cx = boxes[:, 0] + 0.5 * height, boxes[:, 1] + 0.5 * width
    cy, cx = cy + deltas[:, 0] * height, cx + deltas[:, 1] * width
    height, width = height * np.exp(deltas[:, 2]), width * np.exp(deltas[:, 3])
    y1, x1 = cy - 0.5 * height, cx - 0.5 * width
    return np.stack([y1, x1, y1 + height, x1 + width], axis=1)


def test_decoding_in_the_normalized_frame_is_matterports():
    rng = np.random.default_rng(0)
    anchors = np.sort(rng.uniform(0, 128, (50, 4)), axis=1)[:, [0, 2, 1, 3]].astype(np.float32)
    deltas = rng.normal(0, 1, (50, 4)).astype(np.float32)
    std = np.array([0.1, 0.1, 0.2, 0.2], np.float32)
    normalized = (anchors.astype(np.float64) - [0, 0, 1, 1]) / 127.0
    expected = np.clip(matterport_apply_box_deltas(normalized, deltas * std), 0.0, 1.0)  # clip to [0, 0, 1, 1]
    ours = box_ops.clip(box_ops.decode(deltas, to_frame(anchors, (128, 128), "normalized"), std), [0.0, 0.0, 1.0, 1.0])
    np.testing.assert_allclose(ours.numpy(), expected, atol=2e-6)
    # In pixels the same deltas give other boxes (extents one pixel larger before the exp):
    # another model's arithmetic, up to half a pixel apart here.
    pixel_decoded = from_frame(ours, (128, 128), "normalized").numpy()
    ours_in_pixels = box_ops.clip(box_ops.decode(deltas, anchors, std), [0.0, 0.0, 128.0, 128.0]).numpy()
    assert np.abs(pixel_decoded - ours_in_pixels).max() > 0.1


@pytest.mark.parametrize("side", [10.0, 55.9, 56.0, 112.0, 158.4, 158.5, 200.0, 400.0, 0.0])
def test_roi_level_rule_rounds_on_normalized_boxes(side):
    # matterport: level = min(5, max(2, 4 + round(log2(sqrt(h * w) / (224 / sqrt(H * W)))))),
    # h, w normalized by (H - 1, W - 1): a 1024 input normalizes a side s to (s - 1) / 1023.
    image = 1024
    box = np.array([[100, 100, 100 + side, 100 + side]], np.float32)
    normalized = to_frame(box, (image, image), "normalized").numpy().astype(np.float64)
    h, w = normalized[0, 2] - normalized[0, 0], normalized[0, 3] - normalized[0, 1]
    with np.errstate(divide="ignore"):
        level = np.log2(np.sqrt(h * w) / (224.0 / np.sqrt(image * image)))
    expected = int(min(5, max(2, 4 + np.round(level)))) if np.isfinite(level) else 2
    assert int(matterport_levels(tf.constant(normalized, tf.float32), (image, image))[0]) + 2 == expected
    # Ours floors the FPN paper's formula on pixel sides: 200 px -> P3 (4 + log2(200 / 224)
    # = 3.84), matterport rounds log2(199 / 1023 * 1024 / 224) = -0.17 to 0 -> P4.
    if side == 200.0:
        assert int(roi_levels(tf.constant(box))[0]) + 2 == 3 and expected == 4


def test_boxes_map_to_the_original_image_as_matterports_unmold_detections():
    # A 200 x 300 image resized by 0.8533 to 171 x 256, centred at rows 42..213 of 256 x 256.
    meta = compose_image_meta(0, (200, 300, 3), (256, 256, 3), (42, 0, 213, 256), 256 / 300)[None]
    boxes_n = np.array([[[0.3, 0.1, 0.6, 0.45], [0.17, 0.0, 0.83, 1.0]]], np.float32)
    window = (np.array([42, 0, 213, 256], np.float64) - [0, 0, 1, 1]) / 255.0
    shift = np.array([window[0], window[1], window[0], window[1]])
    scale = np.array([window[2] - window[0], window[3] - window[1]] * 2)
    expected = np.around((boxes_n[0] - shift) / scale * [199, 299, 199, 299] + [0, 0, 1, 1])
    expected = np.clip(expected, 0, [200, 300, 200, 300])
    np.testing.assert_array_equal(boxes_to_original(boxes_n, meta, "normalized").numpy()[0], expected)


def test_masks_are_pasted_as_matterports_unmold_mask():
    from detection.engine.predictor import paste_masks_matterport

    rng = np.random.default_rng(3)
    mask = rng.uniform(0.05, 0.95, (28, 28)).astype(np.float32)
    box = np.array([[5, 7, 45, 20]], np.float32)  # 40 x 13: up on rows, down on columns

    resized = np.clip(resize_weights(28, 40) @ mask.astype(np.float64) @ resize_weights(28, 13).T,
                      mask.min(), mask.max())  # clip=True
    expected = np.zeros((50, 30), bool)
    expected[5:45, 7:20] = resized >= 0.5
    ours = paste_masks_matterport(mask[None], box, 50, 30)[0].astype(bool)
    assert np.mean(ours == expected) > 0.999 and ours.sum() > 100


def test_one_class_per_roi_as_matterports_refine_detections():
    """classes_per_roi "top": each RoI's argmax class only (background included), scores >=
    the threshold, per-class NMS, best first; "all" also gives a RoI's second class."""
    rois = np.array([[[10, 10, 50, 50], [12, 12, 52, 52], [60, 60, 100, 90], [0, 0, 0, 0]]], np.float32)
    probs = np.array([[[0.1, 0.8, 0.1], [0.1, 0.7, 0.2], [0.5, 0.1, 0.4], [1.0, 0.0, 0.0]]], np.float32)
    deltas = np.zeros((1, 4, 3, 4), np.float32)
    meta = compose_image_meta(0, (128, 128, 3), (128, 128, 3), (0, 0, 128, 128), 1.0)[None]
    # matterport by hand: argmax classes 1, 1, 0 (background: dropped); NMS of class 1 at 0.3
    # keeps RoI 0 (0.8) and drops RoI 1 (IoU 0.82 with it); so one detection.
    _, boxes, _, classes, scores, num = DetectionLayer(10, min_confidence=0.05, nms_threshold=0.3,
                                                       classes_per_roi="top")(rois, probs, deltas, meta)
    assert int(num[0]) == 1 and classes.numpy()[0, 0] == 1
    np.testing.assert_allclose(scores.numpy()[0, 0], 0.8, rtol=1e-6)
    np.testing.assert_allclose(boxes.numpy()[0, 0], [10, 10, 50, 50], atol=1e-4)
    # Every class: also RoI 1's class 2 (0.2) and RoI 2's class 2 (0.4) and class 1 (0.1).
    _, _, _, classes, scores, num = DetectionLayer(10, min_confidence=0.05, nms_threshold=0.3,
                                                   classes_per_roi="all")(rois, probs, deltas, meta)
    assert int(num[0]) == 4
    np.testing.assert_allclose(np.sort(scores.numpy()[0, :4]), [0.1, 0.2, 0.4, 0.8], rtol=1e-6)
