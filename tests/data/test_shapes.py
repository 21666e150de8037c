import numpy as np

from detection.config import Config
from detection.data.shapes import MIN_VISIBLE_FRACTION, SHAPE_NAMES, load_shapes, make_shapes_dataset, mask_bbox


def test_same_seed_gives_same_dataset_and_val_uses_another_seed():
    config = Config({"SHAPES_TRAIN_COUNT": 6, "SHAPES_VAL_COUNT": 6, "SHAPES_IMAGE_SIZE": 128})
    a, b = load_shapes(config, "train"), load_shapes(config, "train")
    val = load_shapes(config, "val")
    assert [r.synthetic for r in a.records] == [r.synthetic for r in b.records]
    assert [r.synthetic for r in a.records] != [r.synthetic for r in val.records]
    image_a, _ = a.records[0].synthetic.render()
    image_b, _ = b.records[0].synthetic.render()
    np.testing.assert_array_equal(image_a, image_b)
    assert len(a) == 6 and a.class_names == ["square", "circle", "triangle"] and a.category_ids == [1, 2, 3]
    assert all(r.path is None for r in a.records)


def test_boxes_are_the_bounding_boxes_of_the_visible_masks():
    dataset = make_shapes_dataset(30, seed=3, size=128)
    counts = [r.num_boxes for r in dataset.records]
    assert min(counts) >= 1 and max(counts) <= 4 and len(set(counts)) > 1
    for record in dataset.records:
        image, masks = record.synthetic.render()
        assert image.shape == (128, 128, 3) and image.dtype == np.uint8
        assert masks.shape == (record.num_boxes, 128, 128)
        for box, mask, class_id, shape in zip(record.boxes, masks, record.class_ids, record.synthetic.shapes):
            np.testing.assert_array_equal(mask_bbox(mask), box)
            assert SHAPE_NAMES[class_id - 1] == shape.kind
            # Reasonably sized (12..51 px at 128) and mostly visible.
            side = max(box[2] - box[0], box[3] - box[1])
            assert 10 <= side <= 53
            assert mask.sum() >= MIN_VISIBLE_FRACTION * shape.full_mask(128).sum() - 1
            # The shape's colour is drawn on its visible pixels (noise std <= 12).
            mean = image[mask.astype(bool)].astype(float).mean(axis=0)
            assert np.all(np.abs(mean - shape.colour) < 12)


def test_all_three_classes_occur():
    dataset = make_shapes_dataset(40, seed=0, size=64)
    counts = np.bincount(np.concatenate([r.class_ids for r in dataset.records]), minlength=4)
    assert counts[0] == 0 and all(counts[1:] > 10)


def test_mask_bbox_uses_pixel_edges():
    mask = np.zeros((10, 10), np.uint8)
    mask[2:5, 3:9] = 1
    np.testing.assert_array_equal(mask_bbox(mask), [2, 3, 5, 9])
    np.testing.assert_array_equal(mask_bbox(np.zeros((4, 4), np.uint8)), [0, 0, 0, 0])
