import numpy as np
import pytest

from detection.config import ConfigError
from detection.data.augment import AUGMENTATIONS, Augmenter
from detection.data.pipeline import make_dataset
from detection.data.shapes import make_shapes_dataset, mask_bbox

from .helpers import small_config


def l_shaped_case():
    """A 40x60 image with two instances: masks [2, 40, 60] and their boxes [y1, x1, y2, x2]."""
    image = np.zeros((40, 60, 3), np.uint8)
    masks = np.zeros((2, 40, 60), np.uint8)
    masks[0, 5:15, 2:12] = 1
    masks[1, 20:35, 30:38] = 1
    masks[1, 30:35, 38:50] = 1
    image[masks[0].astype(bool)] = (255, 0, 0)
    image[masks[1].astype(bool)] = (0, 255, 0)
    boxes = np.stack([mask_bbox(m) for m in masks])
    return image, boxes, masks


@pytest.mark.parametrize("name", ["HorizontalFlip", "VerticalFlip"])
def test_flip_moves_boxes_masks_and_pixels_together(name):
    image, boxes, masks = l_shaped_case()
    out_image, out_boxes, keep, out_masks = Augmenter([{"name": name, "p": 1.0}], 0.3)(image, boxes, masks, seed=1)
    axis = 1 if name == "HorizontalFlip" else 0
    np.testing.assert_array_equal(out_image, np.flip(image, axis=axis))
    np.testing.assert_array_equal(out_masks, np.flip(masks, axis=axis + 1))
    np.testing.assert_array_equal(keep, [0, 1])
    for box, mask in zip(out_boxes, out_masks):
        np.testing.assert_allclose(box, mask_bbox(mask), atol=1e-4)
    if name == "HorizontalFlip":  # x1' = W - x2
        np.testing.assert_allclose(out_boxes[0], [5, 48, 15, 58], atol=1e-4)


def test_box_pushed_mostly_out_of_the_image_is_dropped_with_its_mask():
    image, boxes, masks = l_shaped_case()
    # Shift right by 30 px: box 0 (x 2..12) stays; box 1 (x 30..50) keeps 10 of 20 columns
    # but only 1/4 of its area by box: below visibility 0.6 it goes.
    augment = Augmenter([{"name": "Affine", "p": 1.0, "translate_px": {"x": 30, "y": 0}}], 0.6)
    _, out_boxes, keep, out_masks = augment(image, boxes, masks, seed=0)
    np.testing.assert_array_equal(keep, [0])
    np.testing.assert_allclose(out_boxes, [[5, 32, 15, 42]], atol=1e-4)
    assert out_masks.shape == (1, 40, 60) and out_masks[0, 5:15, 32:42].all()


def test_same_seed_same_result_and_seeds_differ():
    image = np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    boxes = np.array([[4, 4, 20, 20]], np.float32)
    augment = Augmenter([{"name": "Affine", "p": 1.0, "scale": [0.7, 1.3]}, {"name": "ColorJitter", "p": 1.0}], 0.1)
    a, b, c = (augment(image, boxes, None, seed=s) for s in (5, 5, 6))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_unknown_name_or_bad_arguments_name_the_entry():
    with pytest.raises(ConfigError,
                       match=r"AUGMENTATION\[1\]: unknown augmentation 'Flip'; valid names: .*HorizontalFlip"):
        Augmenter([{"name": "HorizontalFlip"}, {"name": "Flip"}], 0.3)
    with pytest.raises(ConfigError,
                       match=r"AUGMENTATION\[0\] \(RandomScale\): unknown argument\(s\) sizes; valid: .*scale_limit"):
        Augmenter([{"name": "RandomScale", "sizes": 3}], 0.3)
    with pytest.raises(ConfigError, match=r"AUGMENTATION\[0\] \(HorizontalFlip\): invalid arguments"):
        Augmenter([{"name": "HorizontalFlip", "p": "often"}], 0.3)
    assert {"HorizontalFlip", "VerticalFlip", "Affine", "RandomScale", "RandomSizedBBoxSafeCrop",
            "RandomResizedCrop", "ColorJitter", "RandomBrightnessContrast"} <= set(AUGMENTATIONS)


def test_size_changing_augmentation_is_fitted_back_to_the_input_and_masks_follow_boxes():
    dataset = make_shapes_dataset(8, seed=1, size=64)
    config = small_config(MAX_GT_INSTANCES=4, IMAGES_PER_GPU=2, AUGMENTATION=[
        {"name": "RandomScale", "p": 1.0, "scale_limit": [-0.5, -0.5]},      # to 32 px, fitted back to 64
        {"name": "RandomSizedBBoxSafeCrop", "p": 0.5, "height": 48, "width": 48},
        {"name": "HorizontalFlip", "p": 0.5}])
    batches = make_dataset(dataset, config, training=True, seed=3).as_numpy_iterator()
    for _ in range(4):
        batch = next(batches)
        assert batch["image"].shape == (2, 64, 64, 3)
        valid = batch["gt_class_ids"] != 0
        boxes = batch["gt_boxes"][valid]
        assert np.all(boxes[:, 2:] > boxes[:, :2]) and boxes.min() >= 0 and boxes.max() <= 64
        # The mini masks stay filled: each mask was cropped to a box that fits it.
        assert np.all(batch["gt_masks"][valid].mean(axis=(1, 2)) > 0.3)


def test_pipeline_counts_boxes_dropped_by_augmentation():
    dataset = make_shapes_dataset(4, seed=2, size=64)
    # Every shape moves out of the image: no box survives.
    config = small_config(AUGMENTATION=[{"name": "Affine", "p": 1.0, "translate_px": {"x": 64, "y": 0}}])
    batch = next(make_dataset(dataset, config, training=True).as_numpy_iterator())
    assert not batch["gt_class_ids"].any() and not batch["gt_boxes"].any()
    assert dataset.report.counts["dropped_by_augmentation"] >= 1
