import numpy as np
import pytest
from conftest import REPO

from detection.config import Config
from detection.data.masks import expand_mini_mask
from detection.data.pipeline import make_dataset, make_inference_batches
from detection.data.shapes import load_shapes

from .helpers import make_dataset_of, make_record, small_config, write_image


def shapes_config(**changes):
    config = Config.from_yaml(REPO / "configs" / "shapes.yaml")
    return config.replace(**{"SHAPES_TRAIN_COUNT": 12, "SHAPES_VAL_COUNT": 6, **changes})


def first_batches(dataset, config, count, **kwargs):
    iterator = make_dataset(dataset, config, **kwargs).as_numpy_iterator()
    return [next(iterator) for _ in range(count)]


def test_shapes_batch_shapes_dtypes_and_values():
    config = shapes_config()
    dataset = load_shapes(config, "val")
    batch = first_batches(dataset, config, 1, training=False)[0]
    b, m = config.BATCH_SIZE, config.MAX_GT_INSTANCES
    expected = {"image": ((b, 128, 128, 3), np.float32), "image_meta": ((b, 12), np.float32),
                "gt_class_ids": ((b, m), np.int32), "gt_boxes": ((b, m, 4), np.float32),
                "gt_masks": ((b, m, 56, 56), np.float32)}
    assert {k: (v.shape, v.dtype) for k, v in batch.items()} == expected
    for i, record in enumerate(dataset.records[:b]):  # not training: records in order
        n = record.num_boxes
        image, masks = record.synthetic.render()
        np.testing.assert_array_equal(batch["image"][i], image.astype(np.float32))
        np.testing.assert_array_equal(batch["gt_class_ids"][i, :n], record.class_ids)
        assert not batch["gt_class_ids"][i, n:].any() and not batch["gt_boxes"][i, n:].any()
        np.testing.assert_array_equal(batch["gt_boxes"][i, :n], record.boxes)  # scale 1 at 128 px
        np.testing.assert_array_equal(batch["image_meta"][i],
                                      [record.image_id, 128, 128, 3, 128, 128, 3, 0, 0, 128, 128, 1])
        for j in range(n):
            expanded = expand_mini_mask(batch["gt_masks"][i, j], batch["gt_boxes"][i, j], (128, 128))
            iou = (expanded & masks[j]).sum() / (expanded | masks[j]).sum()
            assert iou > 0.9
        assert set(np.unique(batch["gt_masks"][i])) <= {0.0, 1.0}


def test_same_seed_same_batches_other_seed_other_order():
    config = shapes_config(AUGMENTATION=[{"name": "HorizontalFlip", "p": 0.5},
                                         {"name": "RandomBrightnessContrast", "p": 0.5}])
    dataset = load_shapes(config, "train")
    a = first_batches(dataset, config, 5, training=True, seed=7)  # 20 reads: more than one epoch of 12
    b = first_batches(dataset, config, 5, training=True, seed=7)
    c = first_batches(dataset, config, 5, training=True, seed=8)
    for x, y in zip(a, b):
        for key in x:
            np.testing.assert_array_equal(x[key], y[key])
    assert any(not np.array_equal(x["image"], y["image"]) for x, y in zip(a, c))
    # Training reads every image once per epoch, reshuffled: epoch 1 is a permutation.
    ids = np.concatenate([x["image_meta"][:, 0] for x in a])
    assert sorted(ids[:12]) == list(range(12)) and list(ids[:12]) != list(range(12))


def test_a_stream_started_at_a_position_reads_on_as_the_stream_from_zero():
    """start= (a later stage, a resumed run): the same records and augmentations as the
    uninterrupted stream from there on, across an epoch boundary (12 images, batches of 2)."""
    config = shapes_config(AUGMENTATION=[{"name": "HorizontalFlip", "p": 0.5},
                                         {"name": "RandomBrightnessContrast", "p": 0.5}])
    dataset = load_shapes(config, "train")
    whole = first_batches(dataset, config, 9, training=True, seed=7)
    for first_batch in (5, 7):  # 10 images in (inside epoch 1); 14 (inside epoch 2)
        later = first_batches(dataset, config, 9 - first_batch, training=True, seed=7,
                              start=first_batch * config.BATCH_SIZE)
        for x, y in zip(whole[first_batch:], later, strict=True):
            for key in x:
                np.testing.assert_array_equal(x[key], y[key], err_msg=key)
    assert not np.array_equal(whole[0]["image_meta"], whole[5]["image_meta"])  # what a restart would read
    with pytest.raises(ValueError, match="needs a repeating training stream"):
        make_dataset(dataset, config, training=False, start=4)


def test_boxes_scale_to_the_input_and_crowd_is_negative_and_extra_rows_truncated(tmp_path):
    path = write_image(tmp_path / "a.png", height=32, width=16)
    record = make_record(path, [[0, 0, 8, 8], [8, 4, 16, 12], [1, 1, 2, 2], [2, 2, 4, 4], [4, 4, 8, 8]],
                         [1, 2, 3, 1, 2], height=32, width=16, iscrowd=[0, 1, 0, 0, 0])
    dataset = make_dataset_of([record])
    config = small_config()  # 64 px square input: scale 2, 4 GT rows
    batch = first_batches(dataset, config, 1, training=False, repeat=True)[0]
    np.testing.assert_array_equal(batch["gt_class_ids"][0], [1, -2, 3, 1])
    np.testing.assert_allclose(batch["gt_boxes"][0, 1], [16, 8, 32, 24])
    np.testing.assert_allclose(batch["image_meta"][0, 7:], [0, 0, 64, 32, 2.0])
    assert batch["image"][0, :, 32:].max() == 0 and batch["image"][0, :, :32].min() == 128
    assert dataset.report.counts["truncated_to_max_gt"] >= 1


def test_unreadable_image_is_skipped_and_counted(tmp_path):
    good = [write_image(tmp_path / f"{i}.jpg") for i in range(3)]
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(open(good[0], "rb").read()[:100])
    records = [make_record(p, [[1, 1, 9, 9]], [1], image_id=i)
               for i, p in enumerate(good[:2] + [str(broken)] + good[2:])]
    dataset = make_dataset_of(records)
    batches = list(make_dataset(dataset, small_config(), training=False).as_numpy_iterator())
    assert [int(b["image_meta"][0, 0]) for b in batches] == [0, 1, 3]
    assert dataset.report.counts["unreadable_image"] == 1
    assert "broken.jpg" in dataset.report.summary(file=None)


@pytest.mark.parametrize("mode", ["square", "pad64", "none"])
@pytest.mark.parametrize("batch_size", [1, 3])
def test_an_unreadable_image_is_skipped_whatever_the_input_size(tmp_path, mode, batch_size):
    # The placeholder of a skipped read must pass the static shape check of the mode: at
    # 128 px (not the 64 of small_config) square mode once stopped every pipeline there.
    good = [write_image(tmp_path / f"{i}.jpg") for i in range(5)]
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff" + bytes(300) + b"\xff\xd9")
    paths = good[:2] + [str(tmp_path / "broken.jpg")] + good[2:]
    records = [make_record(p, [[1, 1, 9, 9]], [1], image_id=i) for i, p in enumerate(paths)]
    config = small_config(IMAGE_RESIZE_MODE=mode, IMAGE_MIN_DIM=128, IMAGE_MAX_DIM=128, IMAGES_PER_GPU=batch_size)
    dataset = make_dataset_of(records)
    batches = list(make_dataset(dataset, config, training=False).as_numpy_iterator())
    expected = [0, 1, 3, 4, 5][: 5 // batch_size * batch_size]
    assert [int(i) for b in batches for i in b["image_meta"][:, 0]] == expected
    inference = list(make_inference_batches(dataset, config, batch_size=batch_size))
    assert [r.image_id for b in inference for r in b.records] == [0, 1, 3, 4, 5]
    assert dataset.report.counts["unreadable_image"] == 1


def test_pad64_batches_pad_to_the_largest_image(tmp_path):
    records = [make_record(write_image(tmp_path / "a.png", 40, 60), [[0, 0, 4, 4]], [1], 40, 60, image_id=0),
               make_record(write_image(tmp_path / "b.png", 100, 70), [[0, 0, 4, 4]], [1], 100, 70, image_id=1)]
    config = small_config(IMAGE_RESIZE_MODE="none", IMAGES_PER_GPU=2, USE_MASK=False)
    batch = first_batches(make_dataset_of(records), config, 1, training=False)[0]
    assert batch["image"].shape == (2, 128, 128, 3)
    np.testing.assert_array_equal(batch["image_meta"][:, 4:7], [[128, 128, 3]] * 2)
    np.testing.assert_array_equal(batch["image_meta"][:, 7:11], [[0, 0, 40, 60], [0, 0, 100, 70]])
    assert batch["gt_masks"].shape == (2, 4, 1, 1) and not batch["gt_masks"].any()


def test_inference_batches_cover_every_image_and_pad_the_last(tmp_path):
    records = [make_record(write_image(tmp_path / f"{i}.png", value=10 * i + 10), [], [], image_id=i) for i in range(5)]
    batches = list(make_inference_batches(records, small_config(), batch_size=2))
    assert [b.num_real for b in batches] == [2, 2, 1]
    assert [r.image_id for b in batches for r in b.records] == [0, 1, 2, 3, 4]
    last = batches[-1].inputs
    assert last["image"].shape == (2, 64, 64, 3) and last["image"].dtype == np.float32
    assert last["image"][0, 0, 0, 0] == 50 and not last["image"][1].any() and not last["image_meta"][1].any()


def test_too_few_images_for_a_batch_is_a_clear_error():
    config = shapes_config(SHAPES_VAL_COUNT=2)
    with pytest.raises(ValueError, match="fewer than BATCH_SIZE 4"):
        make_dataset(load_shapes(config, "val"), config, training=False)


def test_a_script_holding_a_live_iterator_exits_cleanly(tmp_path):
    # Without the pipeline's atexit hook this hangs or aborts ("terminate called without an
    # active exception") in most runs: the iterator dies during interpreter finalisation.
    import os
    import subprocess
    import sys

    script = tmp_path / "hold.py"
    script.write_text(
        "from detection.config import Config\n"
        "from detection.data.shapes import load_shapes\n"
        "from detection.data.pipeline import make_dataset\n"
        f"config = Config.from_yaml({str(REPO / 'configs' / 'shapes.yaml')!r})\n"
        "iterator = iter(make_dataset(load_shapes(config), config, training=True))\n"
        "for _ in range(5):\n"
        "    next(iterator)\n"
        "print('pulled', flush=True)\n")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120,
                            cwd=str(tmp_path), env=env)
    assert result.returncode == 0 and "pulled" in result.stdout, result.stderr[-500:]
