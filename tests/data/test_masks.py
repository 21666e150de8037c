import numpy as np
from pycocotools import mask as mask_utils

from detection.data.masks import decode_segmentation, expand_mini_mask, mini_masks, resize_masks


def test_mini_mask_of_a_hand_made_case():
    # Box [2, 2, 6, 6]; the mask covers the top half of the box and a pixel outside it.
    mask = np.zeros((1, 10, 10), np.uint8)
    mask[0, 2:4, 2:6] = 1
    mask[0, 9, 9] = 1
    mini = mini_masks(mask, np.array([[2, 2, 6, 6]], np.float32), (2, 2))
    np.testing.assert_array_equal(mini[0], [[1, 1], [0, 0]])
    # A left-half mask at a non-square mini shape.
    mask = np.zeros((1, 10, 10), np.uint8)
    mask[0, 2:6, 2:4] = 1
    mini = mini_masks(mask, np.array([[2, 2, 6, 6]], np.float32), (4, 8))
    np.testing.assert_array_equal(mini[0], np.repeat([[1, 1, 1, 1, 0, 0, 0, 0]], 4, axis=0))


def test_mini_mask_of_empty_box_is_zero_and_expand_inverts():
    mask = np.zeros((2, 20, 20), np.uint8)
    mask[1, 5:15, 4:10] = 1
    boxes = np.array([[3, 3, 3, 8], [5, 4, 15, 10]], np.float32)
    mini = mini_masks(mask, boxes, (7, 7))
    assert mini[0].sum() == 0 and mini[1].all()
    np.testing.assert_array_equal(expand_mini_mask(mini[1], boxes[1], (20, 20)), mask[1])


def test_polygon_is_rasterised_at_the_scaled_size():
    square = [[2, 2, 6, 2, 6, 6, 2, 6]]  # x, y pairs of a 4x4 square
    m = decode_segmentation(square, 10, 10)
    assert m.sum() == 16 and m[2:6, 2:6].all()
    m2 = decode_segmentation(square, 10, 10, scale=2.0)
    assert m2.shape == (20, 20) and m2.sum() == 64 and m2[4:12, 4:12].all()


def test_rle_compressed_and_uncompressed_decode_alike():
    mask = np.zeros((6, 5), np.uint8)
    mask[1:4, 2:5] = 1
    compressed = mask_utils.encode(np.asfortranarray(mask))
    compressed_text = {"size": compressed["size"], "counts": compressed["counts"].decode("ascii")}
    # Uncompressed COCO RLE: run lengths in column-major order, starting with zeros.
    flat = mask.flatten(order="F")
    runs, value, count = [], 0, 0
    for v in flat:
        if v == value:
            count += 1
        else:
            runs.append(count)
            value, count = v, 1
    runs.append(count)
    uncompressed = {"size": [6, 5], "counts": runs}
    np.testing.assert_array_equal(decode_segmentation(compressed_text, 6, 5), mask)
    np.testing.assert_array_equal(decode_segmentation(uncompressed, 6, 5), mask)
    assert decode_segmentation(uncompressed, 6, 5, scale=2.0).sum() == 4 * mask.sum()


def test_resize_masks_nearest():
    masks = np.zeros((1, 2, 2), np.uint8)
    masks[0, 0, 0] = 1
    out = resize_masks(masks, (4, 4))
    assert out[0, :2, :2].all() and out.sum() == 4
