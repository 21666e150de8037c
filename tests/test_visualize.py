"""detection/visualize.py: what lands on which pixels, on hand-made images (no model)."""

import cv2
import numpy as np
import pytest

from detection.data.images import read_image
from detection.data.masks import mini_masks
from detection.visualize import (
    PALETTE,
    class_colour,
    draw_detections,
    draw_ground_truth,
    draw_input_batch,
    draw_scale,
    save_image,
)

NAMES = ["square", "circle", "triangle"]


def grey(height, width, value=128):
    return np.full((height, width, 3), value, np.uint8)


def test_box_edge_has_the_class_colour_and_input_is_untouched():
    image = grey(300, 400)
    before = image.copy()
    out = draw_detections(image, [[100, 50, 200, 250]], [2], [0.9], NAMES)
    assert out is not image and out.dtype == np.uint8 and out.shape == image.shape  # 400 px: no upscale
    np.testing.assert_array_equal(image, before)
    # Bottom edge (last row inside the box is y2 - 1 = 199), away from the label at the top.
    assert tuple(out[199, 150]) == class_colour(2)
    assert tuple(out[150, 249]) == class_colour(2)  # right edge
    assert tuple(out[150, 150]) == (128, 128, 128)  # inside: no fill without masks
    assert tuple(out[20, 20]) == (128, 128, 128)  # far away: untouched


def test_small_images_are_upscaled_and_boxes_follow():
    image = grey(64, 48)
    assert draw_scale(image.shape) == 4  # 64 * 4 = 256
    out = draw_ground_truth(image, [[10, 10, 40, 30]], [1], NAMES)
    assert out.shape == (256, 192, 3)
    assert tuple(out[40 * 4 - 1, 20 * 4]) == class_colour(1)  # bottom edge, scaled
    assert tuple(out[25 * 4, 30 * 4 - 1]) == class_colour(1)  # right edge, scaled
    assert tuple(out[4, 180]) == (128, 128, 128)
    assert draw_scale((256, 100)) == 1 and draw_scale((255, 10)) == 2


def test_mask_fill_is_translucent_class_colour_and_threshold_hides():
    image = grey(300, 300, 0)
    masks = np.zeros((2, 300, 300), np.uint8)
    masks[0, 120:180, 120:180] = 1
    masks[1, 10:20, 10:20] = 1
    out = draw_detections(image, [[100, 100, 200, 200], [5, 5, 25, 25]], [3, 1], [0.8, 0.3], NAMES, masks=masks,
                          score_threshold=0.5)
    inside = out[150, 150].astype(int)
    colour = np.array(class_colour(3))
    assert np.all(np.abs(inside - np.round(colour * 0.45)) <= 1)  # black image: fill = alpha x colour
    assert tuple(out[110, 110]) == (0, 0, 0)  # in the box, outside the mask
    assert tuple(out[15, 15]) == (0, 0, 0)  # the 0.3 detection is below the threshold


def test_padding_rows_skipped_and_unknown_class_named():
    image = grey(300, 300)
    out = draw_ground_truth(image, [[0, 0, 0, 0], [100, 100, 200, 200]], [0, 7], NAMES)
    assert tuple(out[199, 150]) == class_colour(7)
    assert tuple(out[0, 150]) == (128, 128, 128)  # the all-zero padding row drew nothing


def test_palette_colours_are_distinct():
    colours = [class_colour(k) for k in range(1, len(PALETTE) + 1)]
    assert len(set(colours)) == len(PALETTE)
    assert class_colour(-2) == class_colour(2)  # crowd GT rows share their class colour


def test_draw_input_batch_expands_mini_masks_in_the_input_frame():
    mask = np.zeros((1, 64, 64), np.uint8)
    mask[0, 10:30, 20:40] = 1
    boxes = np.array([[10, 20, 30, 40]], np.float32)
    batch = {"image": np.zeros((1, 64, 64, 3), np.float32),
             "gt_class_ids": np.array([[2, 0]], np.int32),
             "gt_boxes": np.concatenate([boxes, np.zeros((1, 4), np.float32)])[None],
             "gt_masks": np.concatenate([mini_masks(mask, boxes, (28, 28)), np.zeros((1, 28, 28), np.uint8)])[None]}
    (picture,) = draw_input_batch(batch, NAMES)
    assert picture.shape == (256, 256, 3)
    expected = np.round(np.array(class_colour(2)) * 0.45)
    assert np.all(np.abs(picture[20 * 4, 30 * 4].astype(int) - expected) <= 1)  # inside the mask
    assert tuple(picture[50 * 4, 50 * 4]) == (0, 0, 0)


@pytest.mark.parametrize("name", ["a.png", "sub dir/b.jpg"])
def test_save_image_writes_rgb(tmp_path, name):
    image = np.zeros((20, 30, 3), np.uint8)
    image[:, :, 0] = 200  # red
    path = tmp_path / name
    save_image(path, image)
    back = read_image(str(path))
    assert back.shape == (20, 30, 3)
    assert abs(int(back[10, 10, 0]) - 200) <= 2 and int(back[10, 10, 2]) <= 2  # still red, not blue
    assert cv2.imread(str(path)) is not None


def test_show_samples_tool_draws_augmented_inputs(tmp_path, capsys):
    """Every sample is a record flipped upside down (VerticalFlip p=1) and scaled 32 -> 64 px
    (then drawn at 256: x 8 in all): each GT box's right edge is found where the flip puts it."""
    import importlib.util

    from conftest import REPO

    from detection.config import Config
    from detection.data.datasets import load_dataset

    overrides = ["SHAPES_IMAGE_SIZE=32", "IMAGE_MIN_DIM=64", "IMAGE_MAX_DIM=64", "SHAPES_TRAIN_COUNT=2",
                 "IMAGES_PER_GPU=2", "MINI_MASK_SHAPE=[28,28]", "AUGMENTATION=[{name: VerticalFlip, p: 1.0}]"]
    spec = importlib.util.spec_from_file_location("tool_show_samples", REPO / "tools" / "show_samples.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    args = ["--config", str(REPO / "configs" / "shapes.yaml"), "-n", "3", "--output", str(tmp_path)]
    assert tool.main(args + [a for o in overrides for a in ("--set", o)]) == 0
    assert "wrote 3 sample(s)" in capsys.readouterr().out

    records = load_dataset(Config.from_yaml(REPO / "configs" / "shapes.yaml", overrides=overrides), "train").records
    for k in range(3):  # 3 from a dataset of 2: the stream repeats
        picture = read_image(str(tmp_path / f"sample_{k:03d}.png"))
        assert picture.shape == (256, 256, 3)

        def matches(record, picture=picture):
            for (y1, _x1, y2, x2), c in zip(record.boxes, record.class_ids):
                fy1, fy2 = 32 - y2, 32 - y1
                if tuple(picture[int((fy1 + fy2) / 2 * 8), int(x2 * 8) - 1]) != class_colour(c):
                    return False
            return True

        assert any(matches(r) for r in records), k
