"""Damaged image files in a real dataset (../shared/data/bccd), at training and at inference.

A copy of a few BCCD images holds, in the train split and in the test split, one JPEG cut 20
bytes short (header intact: what an interrupted download leaves) and one whose header is
overwritten with zeros (undecodable). What must hold, in square and pad64 modes and batch
sizes 1 and 3: loading finds the truncated file before anything is read; training reads it as
far as its data go and skips the undecodable one, both counted; tools/train.py (with the
per-epoch AP callback and validation loss), tools/eval_coco.py, tools/infer.py and
Predictor.detect run to the end and say what they met.
"""
import contextlib
import dataclasses
import io
import json
import shutil

import numpy as np
import pytest

from tests.conftest import shared_dataset
from tests.model_fixtures import TINY_128_YAML
from tests.tools import load_tool as tool

TRAIN, TEST = 6, 5  # images copied from each split
TRUNCATED, CORRUPT = 1, 3  # positions, in each split, of the damaged files

TINY = """
NAME: bccd_damaged
DATASET_FORMAT: voc
NUM_CLASSES: 4
TRAIN_IMAGES: {root}/JPEGImages
TRAIN_ANNOTATIONS: {root}/Annotations
TRAIN_SPLIT: {root}/train.txt
VAL_IMAGES: {root}/JPEGImages
VAL_ANNOTATIONS: {root}/Annotations
VAL_SPLIT: {root}/test.txt
BACKBONE_WEIGHTS: none
IMAGES_PER_GPU: 3
USE_MASK: false
VALIDATION_STEPS: 1
EVAL_AP_IMAGES: 5
""" + TINY_128_YAML


def _split(source, name, count):
    return (source / "ImageSets" / "Main" / f"{name}.txt").read_text().split()[:count]


@pytest.fixture(scope="module")
def damaged(tmp_path_factory):
    """{"root", "config", "train", "test"}: a BCCD copy with damaged files; train/test: the
    stems of each split in order, with the damaged ones at TRUNCATED and CORRUPT."""
    source = shared_dataset("bccd")
    root = tmp_path_factory.mktemp("bccd_damaged")
    (root / "JPEGImages").mkdir()
    (root / "Annotations").mkdir()
    stems = {"train": _split(source, "train", TRAIN), "test": _split(source, "test", TEST)}
    for split, names in stems.items():
        for stem in names:
            shutil.copy(source / "JPEGImages" / f"{stem}.jpg", root / "JPEGImages")
            shutil.copy(source / "Annotations" / f"{stem}.xml", root / "Annotations")
        (root / f"{split}.txt").write_text("\n".join(names) + "\n")
        truncated = root / "JPEGImages" / f"{names[TRUNCATED]}.jpg"
        truncated.write_bytes(truncated.read_bytes()[:-20])
        corrupt = root / "JPEGImages" / f"{names[CORRUPT]}.jpg"
        data = bytearray(corrupt.read_bytes())
        data[2:600] = bytes(598)  # the header's markers gone; the end marker stays
        corrupt.write_bytes(bytes(data))
    (root / "tiny.yaml").write_text(TINY.format(root=root))
    return {"root": root, "config": root / "tiny.yaml", **stems}


def _config(damaged, **changes):
    from detection.config import Config

    return Config.from_yaml(str(damaged["config"]), overrides=[f"{k}={v}" for k, v in changes.items()])


def _load(damaged, subset, **changes):
    from detection.data.datasets import load_dataset

    config = _config(damaged, **changes)
    return config, load_dataset(config, subset)


def _stem(record):
    return record.path.rsplit("/", 1)[-1][:-4]


def test_loading_finds_the_truncated_file_before_any_image_is_read(damaged):
    for subset, split in (("train", "train"), ("val", "test")):
        _, dataset = _load(damaged, subset)
        names = damaged[split]
        assert dataset.report.counts["truncated_image"] == 1, subset
        assert names[TRUNCATED] in dataset.report.summary(file=None)
        # The corrupt file ends as a JPEG ends: only reading finds it (next tests).
        assert [_stem(r) for r in dataset.records] == names and not dataset.report.counts["unreadable_image"]


def test_strict_loading_stops_at_the_truncated_file(damaged):
    from detection.data.datasets import load_dataset
    from detection.data.validation import DataError

    names = damaged["train"]
    with pytest.raises(DataError, match=f"{names[TRUNCATED]}.jpg: truncated JPEG"):
        load_dataset(_config(damaged), "train", strict=True)


@pytest.mark.parametrize("mode", ["square", "pad64"])
@pytest.mark.parametrize("batch_size", [1, 3])
def test_training_batches_read_the_truncated_file_and_skip_the_corrupt_one(damaged, mode, batch_size):
    from detection.data.pipeline import make_dataset

    config, dataset = _load(damaged, "train", IMAGE_RESIZE_MODE=mode, IMAGES_PER_GPU=batch_size)
    batches = list(make_dataset(dataset, config, training=True).take(10 // batch_size).as_numpy_iterator())
    seen = {int(i) for b in batches for i in b["image_meta"][:, 0]}
    ids = [r.image_id for r in dataset.records]
    assert seen == set(ids) - {ids[CORRUPT]}  # 10 reads cover the 5 readable images twice
    assert all(b["image"].shape[0] == batch_size for b in batches)
    assert dataset.report.counts["unreadable_image"] == 1 and dataset.report.counts["truncated_image"] == 1
    assert damaged["train"][CORRUPT] in dataset.report.summary(file=None)


@pytest.mark.parametrize("mode", ["square", "pad64"])
@pytest.mark.parametrize("batch_size", [1, 3])
def test_inference_batches_hold_every_readable_image_once_in_order(damaged, mode, batch_size):
    from detection.data.pipeline import make_inference_batches

    config, dataset = _load(damaged, "val", IMAGE_RESIZE_MODE=mode)
    batches = list(make_inference_batches(dataset, config, batch_size=batch_size))
    records = [r for b in batches for r in b.records]
    assert [_stem(r) for r in records] == [s for i, s in enumerate(damaged["test"]) if i != CORRUPT]
    assert all(b.inputs["image"].shape[0] == batch_size for b in batches)
    assert dataset.report.counts["unreadable_image"] == 1 and dataset.report.counts["truncated_image"] == 1
    # The truncated image is the original but for its last rows (20 bytes hold a few pixels).
    original = shared_dataset("bccd") / "JPEGImages" / f"{damaged['test'][TRUNCATED]}.jpg"
    record = dataset.records[TRUNCATED]
    reference = next(make_inference_batches([dataclasses.replace(record, path=str(original))], config, 1))
    where = {_stem(r): (b, i) for b in batches for i, r in enumerate(b.records)}
    batch, row = where[damaged["test"][TRUNCATED]]
    np.testing.assert_array_equal(batch.inputs["image"][row, :64], reference.inputs["image"][0, :64])
    assert batch.inputs["image"][row, :64].any()


@pytest.fixture(scope="module")
def trained(damaged, tmp_path_factory):
    """{mode: (run folder, stdout, stderr)}: tools/train.py, 2 steps, with the per-epoch AP
    callback and validation loss."""
    runs = {}
    for mode, batch in (("square", 3), ("pad64", 1)):
        run = tmp_path_factory.mktemp(f"run_{mode}")
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = tool("train").main(["--config", str(damaged["config"]), "--output", str(run), "--epochs", "1",
                                         "--steps-per-epoch", "2", "--set", f"IMAGE_RESIZE_MODE={mode}",
                                         "--set", f"IMAGES_PER_GPU={batch}"])
        assert status == 0, (mode, err.getvalue()[-2000:])
        runs[mode] = run, out.getvalue(), err.getvalue()
    return runs


def test_train_tool_reports_the_damaged_files_and_finishes(trained, damaged):
    for run, out, err in trained.values():
        log = (run / "log.csv").read_text().splitlines()
        assert len(log) == 2 and "val_loss" in log[0] and "val_bbox_AP" in log[0]  # the AP callback ran
        # Loading shows the truncated files (train and val); reading, the corrupt ones, once each.
        assert out.count("1 x truncated JPEG") == 2
        for split in ("train", "test"):
            assert damaged[split][TRUNCATED] in out
            assert err.count(f"skipped unreadable image {damaged['root']}/JPEGImages/{damaged[split][CORRUPT]}") <= 1
        assert f"{damaged['train'][CORRUPT]}.jpg" in err


@pytest.mark.parametrize("mode", ["square", "pad64"])
@pytest.mark.parametrize("batch_size", [1, 3])
def test_eval_coco_skips_the_corrupt_image_and_reports_both(trained, damaged, mode, batch_size, tmp_path, capsys):
    run = trained[mode][0]
    status = tool("eval_coco").main(["--config", str(run / "config.yaml"), "--weights", str(run / "final.weights.h5"),
                                     "--batch-size", str(batch_size), "--output", str(tmp_path / "dt.json"),
                                     "--set", "EVAL_MIN_CONFIDENCE=0"])
    out = capsys.readouterr().out
    assert status == 0
    assert "1 x truncated JPEG" in out and "1 x corrupt or undecodable image" in out
    assert damaged["test"][TRUNCATED] in out and damaged["test"][CORRUPT] in out
    image_ids = {r["image_id"] for r in json.loads((tmp_path / "dt.json").read_text())}
    assert len(image_ids) == TEST - 1  # an untrained model detects something at threshold 0 everywhere


@pytest.mark.parametrize("mode", ["square", "pad64"])
def test_infer_tool_reads_the_truncated_file_and_skips_the_corrupt_one(trained, damaged, mode, tmp_path, capsys):
    run = trained[mode][0]
    images = [str(damaged["root"] / "JPEGImages" / f"{s}.jpg") for s in damaged["test"]]
    status = tool("infer").main(["--config", str(run / "config.yaml"), "--weights", str(run / "final.weights.h5"),
                                 "--output", str(tmp_path / "out"), "--batch-size", "3", "--score-threshold", "0",
                                 "--no-pictures", *images])
    captured = capsys.readouterr()
    assert status == 0
    assert "4 image(s) processed" in captured.out and "1 unreadable image(s) skipped" in captured.out
    assert "1 truncated image(s)" in captured.out
    assert f"truncated image {images[TRUNCATED]}" in captured.err and images[CORRUPT] in captured.err


def test_predictor_detects_on_a_truncated_file_read_with_a_warning(trained, damaged):
    from detection.config import Config
    from detection.data.images import TruncatedImageWarning, read_image
    from detection.engine.predictor import Predictor

    run = trained["square"][0]
    predictor = Predictor.from_weights(Config.from_yaml(str(run / "config.yaml")), str(run / "final.weights.h5"),
                                       batch_size=3, score_threshold=0)
    path = damaged["root"] / "JPEGImages" / f"{damaged['test'][TRUNCATED]}.jpg"
    with pytest.warns(TruncatedImageWarning, match=damaged["test"][TRUNCATED]):
        image = read_image(str(path))
    results = predictor.detect([image, image[:100]])
    assert len(results) == 2 and len(results[0]["rois"]) > 0
    # Records of the damaged split: the corrupt one skipped and counted, the others detected.
    _, dataset = _load(damaged, "val")
    detected = [d["image_id"] for d in predictor.predict_records(dataset)]
    assert detected == [r.image_id for i, r in enumerate(dataset.records) if i != CORRUPT]
    assert dataset.report.counts["unreadable_image"] == 1


def test_a_coco_dataset_with_damaged_files_loads_and_reads(tmp_path):
    from detection.data.coco import load_coco
    from detection.data.pipeline import make_inference_batches

    source = shared_dataset("coco_tiny")
    data = json.loads((source / "annotations" / "instances_val2017.json").read_text())
    data["images"] = sorted(data["images"], key=lambda i: i["id"])[:TEST]
    kept = {i["id"] for i in data["images"]}
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] in kept]
    (tmp_path / "val.json").write_text(json.dumps(data))
    (tmp_path / "images").mkdir()
    for image in data["images"]:
        shutil.copy(source / "val2017" / image["file_name"], tmp_path / "images")
    names = [i["file_name"] for i in data["images"]]
    cut = tmp_path / "images" / names[TRUNCATED]
    cut.write_bytes(cut.read_bytes()[:-20])
    corrupt = tmp_path / "images" / names[CORRUPT]
    header = corrupt.read_bytes()
    corrupt.write_bytes(header[: header.index(b"\xff\xda")])  # ends before the image data (start of scan)

    config = _config_of(IMAGE_MIN_DIM=128, IMAGE_MAX_DIM=128, MAX_GT_INSTANCES=100)
    dataset = load_coco(str(tmp_path / "val.json"), str(tmp_path / "images"), config)
    # Both found by loading: the one cut in its header does not decode, so it is not a record.
    assert dataset.report.counts["truncated_image"] == 1 and dataset.report.counts["unreadable_image"] == 1
    assert [r.path.rsplit("/", 1)[-1] for r in dataset.records] == [n for i, n in enumerate(names) if i != CORRUPT]
    for batch_size in (1, 3):
        batches = list(make_inference_batches(dataset, config, batch_size=batch_size))
        assert [r.image_id for b in batches for r in b.records] == [r.image_id for r in dataset.records]


def _config_of(**values):
    from detection.config import Config

    return Config(values)
