"""tools/infer.py and tools/export.py end to end on the tiny trained shapes model, and the
TensorFlow copies of the pipeline's resize (geometry and pixels) that the export relies on."""

import json

import cv2
import numpy as np
import pytest
import tensorflow as tf
from conftest import REPO

from detection.data.images import read_image
from detection.data.resize import resize_geometry
from detection.export import SIGNATURE_INPUT, load_serving, tf_resize_geometry, tf_resize_image
from detection.inference import find_images
from tests.model_fixtures import numpy_iou
from tests.tools import load_tool, resize_weights


def write_rgb(path, rgb):
    assert cv2.imwrite(str(path), np.ascontiguousarray(rgb[:, :, ::-1]))


# ---------------------------------------------------------------------------------------
# The resize arithmetic and pixels, against the pipeline's (no model).


class FakeConfig:
    def __init__(self, mode, min_dim, max_dim, min_scale=0.0, method="opencv"):
        self.IMAGE_RESIZE_MODE, self.IMAGE_MIN_DIM, self.IMAGE_MAX_DIM = mode, min_dim, max_dim
        self.IMAGE_MIN_SCALE = min_scale
        self.IMAGE_RESIZE_METHOD = method


@pytest.mark.parametrize("method", ["opencv", "matterport", "torchvision"])
@pytest.mark.parametrize("mode,min_dim,max_dim,min_scale", [
    ("square", 800, 1024, 0.0), ("square", 64, 64, 0.0), ("square", 100, 128, 0.0),
    ("pad64", 600, 1000, 0.0), ("pad64", 0, 512, 2.0), ("none", 800, 1024, 0.0), ("pad32", 800, 1333, 0.0),
    ("pad32", 256, 416, 0.0)])
def test_tf_resize_geometry_equals_resize_geometry(mode, min_dim, max_dim, min_scale, method):
    rng = np.random.default_rng(min_dim + max_dim)
    sizes = [tuple(s) for s in rng.integers(1, 3000, (150, 2))]
    # Ties and edges: exact multiples, squares, the .5 roundings of 1024/3 and 64/3.
    sizes += [(1, 1), (3, 3), (1024, 1024), (600, 800), (800, 600), (480, 640), (333, 500), (3, 1000),
              (1000, 3), (48, 80), (100, 60), (37, 111), (75, 125), (64, 64), (128, 64)]
    config = FakeConfig(mode, min_dim, max_dim, min_scale, method)
    geometry = tf.function(lambda h, w: tf_resize_geometry(h, w, config))
    for h, w in sizes:
        expected = resize_geometry(int(h), int(w), mode, min_dim, max_dim, min_scale, method)
        scale, rh, rw, ph, pw, oy, ox = (v.numpy() for v in geometry(tf.constant(h, tf.int32),
                                                                     tf.constant(w, tf.int32)))
        got = (float(scale), (int(rh), int(rw)), (int(ph), int(pw)), (int(oy), int(ox)))
        assert got == (expected.scale, expected.resized_shape, expected.padded_shape, expected.offset), (h, w)


def test_matterport_geometry_follows_its_resize_image():
    # matterport's resize_image: the image centred; the long-side limit tested on the rounded
    # side, in square mode only (pad64 ignores IMAGE_MAX_DIM).
    square = resize_geometry(480, 640, "square", 800, 1024, method="matterport")
    assert (square.scale, square.resized_shape, square.window) == (1.6, (768, 1024), (128, 0, 896, 1024))
    # 1024.4 rounds to 1024, which is not over the limit: the scale stays min_dim's.
    kept = resize_geometry(500, 640.3125, "square", 800, 1024, method="matterport")
    assert kept.scale == 1.6 and kept.resized_shape == (800, 1024)
    assert resize_geometry(500, 640.3125, "square", 800, 1024).scale == 1024 / 640.3125  # ours: not rounded
    pad64 = resize_geometry(300, 2000, "pad64", 600, 1024, method="matterport")
    assert pad64.scale == 2.0 and pad64.resized_shape == (600, 4000) and pad64.padded_shape == (640, 4032)
    assert pad64.offset == (20, 16)


def test_tf_resize_image_is_bit_exact_with_opencv():
    rng = np.random.default_rng(0)
    resize = tf.function(tf_resize_image)
    cases = [((48, 80), (38, 64)), ((100, 60), (64, 38)), ((30, 40), (48, 64)), ((128, 128), (64, 64)),
             ((64, 64), (64, 64)), ((7, 5), (11, 13)), ((1, 9), (3, 4)), ((333, 517), (659, 1024))]
    cases += [(tuple(rng.integers(1, 200, 2)), tuple(rng.integers(1, 200, 2))) for _ in range(25)]
    for (h, w), (rh, rw) in cases:
        image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        expected = cv2.resize(image, (int(rw), int(rh)), interpolation=cv2.INTER_LINEAR)
        got = resize(tf.constant(image), tf.constant(rh, tf.int32), tf.constant(rw, tf.int32)).numpy()
        np.testing.assert_array_equal(got, expected, err_msg=f"{h}x{w} -> {rh}x{rw}")


def zero_border_reference(image, out_hw):
    """scikit-image's resize(order=1, mode="constant", anti_aliasing=False, clip=True), written
    from its definition (tests.tools.resize_weights per axis), then clipped to the input's
    [min, max]."""
    rows, cols = resize_weights(image.shape[0], out_hw[0]), resize_weights(image.shape[1], out_hw[1])
    out = np.stack([rows @ image[..., c].astype(np.float64) @ cols.T for c in range(image.shape[2])], axis=-1)
    # clip=True: to the input's range (0 lies outside it here and the output never reaches 0).
    return np.clip(out, image.min(), image.max())


def test_matterport_resize_numpy_and_graph_follow_scikit_image():
    from detection.data.images import resize_bilinear_zero_border
    from detection.export import tf_resize_bilinear_zero_border

    rng = np.random.default_rng(1)
    resize = tf.function(tf_resize_bilinear_zero_border)
    for (h, w), (rh, rw) in [((97, 143), (256, 377)), ((300, 200), (128, 85)), ((5, 7), (13, 3)), ((64, 64), (64, 64))]:
        image = rng.integers(20, 256, (h, w, 3), dtype=np.uint8)
        image[h // 2, w // 2] = 0 if h > 10 else 20  # once 0 is in range, blended borders stay dark
        expected = zero_border_reference(image, (rh, rw))
        if h > 10 and rh > h:  # the border blends with zero when upsampling
            assert expected[0, 0, 0] < image[0, 0, 0]
        np.testing.assert_allclose(resize_bilinear_zero_border(image, (rh, rw)), expected, atol=1e-9)
        got = resize(tf.constant(image), tf.constant(rh), tf.constant(rw)).numpy()
        np.testing.assert_allclose(got, expected, atol=1e-9)
        # Truncated to uint8, as matterport's astype does: equal but within rounding of an integer.
        for values in (got, resize_bilinear_zero_border(image, (rh, rw))):
            assert np.mean(values.astype(np.uint8) == expected.astype(np.uint8)) > 0.999


# ---------------------------------------------------------------------------------------
# tools/infer.py


def test_infer_tool_finds_the_shapes_and_skips_an_unreadable_image(trained_shapes, tmp_path, capsys):
    config, weights, dataset = trained_shapes
    folder = tmp_path / "images"
    folder.mkdir()
    expected = {}  # file name -> (GT boxes in ITS pixels, class ids)
    for record in dataset.records:
        image, _ = record.synthetic.render()
        # Half the images at 2x (128 px: the model scales them back to 64), upper-case
        # extension on one: detections must come back in each file's own pixels.
        factor = 2 if record.image_id % 2 else 1
        name = f"shape{record.image_id}.{'PNG' if record.image_id == 3 else 'png'}"
        write_rgb(folder / name, cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_NEAREST))
        expected[name] = (record.boxes * factor, record.class_ids)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    (folder / "notes.txt").write_text("not an image: ignored")
    out = tmp_path / "out"

    # 4 images in batches of 3: the last batch is partial (padded by the pipeline).
    status = load_tool("infer").main([
        "--config", str(weights.parent / "config.yaml"), "--weights", str(weights), "--output", str(out),
        "--batch-size", "3", "--score-threshold", "0.6", str(folder)])
    captured = capsys.readouterr()
    assert status == 0
    assert "broken.jpg" in captured.err and "warning" in captured.err
    assert "4 image(s) processed" in captured.out and "1 unreadable image(s) skipped" in captured.out

    results = json.loads((out / "detections.json").read_text())
    by_file = {}
    for r in results:
        assert set(r) == {"image_id", "category_id", "bbox", "score", "segmentation", "file_name"}
        assert r["score"] >= 0.6
        by_file.setdefault(r["file_name"].rsplit("/", 1)[-1], []).append(r)
    assert sorted(by_file) == sorted(expected)
    for name, (gt_boxes, gt_classes) in expected.items():
        dets = by_file[name]
        boxes = np.array([[y, x, y + h, x + w] for x, y, w, h in (d["bbox"] for d in dets)])
        iou = numpy_iou(gt_boxes, boxes)
        for i, k in enumerate(gt_classes):
            j = int(np.argmax(iou[i]))
            assert iou[i, j] >= 0.5 and dets[j]["category_id"] == int(k), (name, i, iou[i], dets)
        assert len(dets) == len(gt_classes), name  # nothing extra on these images
        size = 128 if "1" in name or "3" in name else 64
        assert all(d["segmentation"]["size"] == [size, size] for d in dets)
        picture = read_image(str(out / (name.rsplit(".", 1)[0] + ".jpg")))
        assert picture.shape == (256, 256, 3)  # drawn at >= 256 px


def test_folded_predictor_equals_the_model_as_trained(trained_shapes):
    """Predictor.from_weights folds the BatchNormalizations (trained ones here: TRAIN_BN is
    true in the shapes config); detections and masks must not change beyond float rounding."""
    from detection.engine.predictor import Predictor

    config, weights, dataset = trained_shapes
    config = config.replace(DETECTION_MIN_CONFIDENCE=0.05)  # uncertain detections too
    folded = Predictor.from_weights(config, weights)
    plain = Predictor.from_weights(config, weights, fold_batch_norm=False)
    assert not any("_bn" in layer.name for layer in folded.model.layers)
    assert sum("_bn" in layer.name for layer in plain.model.layers) >= 5
    compared = 0
    for got, expected in zip(folded.predict_records(dataset), plain.predict_records(dataset)):
        assert len(got["boxes"]) == len(expected["boxes"]), got["image_id"]
        np.testing.assert_array_equal(got["class_ids"], expected["class_ids"])
        np.testing.assert_allclose(got["boxes"], expected["boxes"], atol=1e-3)
        np.testing.assert_allclose(got["scores"], expected["scores"], atol=1e-5)
        np.testing.assert_allclose(got["proposals"], expected["proposals"], atol=1e-3)
        assert np.mean(got["masks"] != expected["masks"]) < 1e-3
        compared += len(got["boxes"])
    assert compared >= len(dataset.records) * 2


def test_find_images_lists_folders_sorted_and_keeps_files_as_given(tmp_path):
    write_rgb(tmp_path / "b.JPG", np.zeros((30, 50, 3), np.uint8))
    write_rgb(tmp_path / "a.png", np.zeros((30, 50, 3), np.uint8))
    (tmp_path / "notes.txt").write_text("not an image")
    found = find_images([tmp_path, tmp_path / "missing.png"])
    assert [p.rsplit("/", 1)[-1] for p in found] == ["a.png", "b.JPG", "missing.png"]


def test_model_categories_from_config_dataset_or_fallback():
    from detection.categories import model_categories
    from detection.config import Config

    shapes = Config.from_yaml(REPO / "configs" / "shapes.yaml", overrides=["SHAPES_VAL_COUNT=2"])
    assert model_categories(shapes) == (["square", "circle", "triangle"], [1, 2, 3])  # CLASS_NAMES
    # No CLASS_NAMES: the dataset's names and ids.
    assert model_categories(shapes.replace(CLASS_NAMES=None)) == (["square", "circle", "triangle"], [1, 2, 3])
    # No CLASS_NAMES and no annotations to read: "class k", ids k, and a warning.
    coco = Config.from_yaml(REPO / "configs" / "coco_r50_fpn.yaml", overrides=["VAL_ANNOTATIONS=/nonexistent.json"])
    messages = []
    names, ids = model_categories(coco, log=messages.append)
    assert names[0] == "class 1" and ids == list(range(1, 81)) and "CLASS_NAMES" in messages[0]


# ---------------------------------------------------------------------------------------
# tools/export.py: the SavedModel against the Keras Predictor


# Exported and compared at a low score threshold, so that the comparison covers many
# detections, also uncertain ones, whatever the exact weights of the tiny model.
MIN_CONFIDENCE = 0.1


@pytest.fixture(scope="module")
def exported(trained_shapes, tmp_path_factory):
    config, weights, _ = trained_shapes
    path = tmp_path_factory.mktemp("export") / "detector" / "1"
    status = load_tool("export").main(["--config", str(weights.parent / "config.yaml"), "--weights", str(weights),
                                       "--output", str(path), "--set", f"DETECTION_MIN_CONFIDENCE={MIN_CONFIDENCE}"])
    assert status == 0
    return path


def off_size_images(dataset, folder):
    """Each training image placed in 48x80 and 100x60 originals (scaled to 48 and 60 px,
    the rest filled by repeating the border): {size: [paths]}."""
    paths = {(48, 80): [], (100, 60): []}
    for record in dataset.records:
        image, _ = record.synthetic.render()
        for h, w in paths:
            side = min(h, w)
            small = cv2.resize(image, (side, side), interpolation=cv2.INTER_AREA)
            full = cv2.copyMakeBorder(small, 0, h - side, 0, w - side, cv2.BORDER_REPLICATE)
            path = folder / f"s{record.image_id}_{h}x{w}.png"
            write_rgb(path, full)
            paths[(h, w)].append(str(path))
    return paths


def test_saved_model_matches_the_keras_predictor(trained_shapes, exported, tmp_path):
    from detection.engine.predictor import Predictor

    config, weights, dataset = trained_shapes
    config = config.replace(DETECTION_MIN_CONFIDENCE=MIN_CONFIDENCE)
    paths = off_size_images(dataset, tmp_path)
    files = [p for group in paths.values() for p in group]
    keras_dets = dict(zip(files, Predictor.from_weights(config, weights).detect([read_image(p) for p in files])))
    serve = load_serving(exported)
    signature_input = serve.loaded.signatures["serving_default"].structured_input_signature[1][SIGNATURE_INPUT]
    assert signature_input.dtype == tf.uint8 and signature_input.shape.as_list() == [None, None, None, 3]

    compared = 0
    for (h, w), group in paths.items():
        images = np.stack([read_image(p) for p in group])
        # The whole group as one batch, and its first two images as a batch of 2.
        for batch in (images, images[:2]):
            out = serve(batch)
            assert out["masks"].shape[1:] == (config.DETECTION_MAX_INSTANCES, 28, 28)
            for i in range(len(batch)):
                n = int(out["num_detections"][i])
                det = keras_dets[group[i]]
                assert n == len(det["rois"]), group[i]
                np.testing.assert_array_equal(out["class_ids"][i, :n], det["class_ids"])  # ids 1..3 = category ids
                np.testing.assert_allclose(out["boxes"][i, :n], det["rois"], atol=1e-3)
                np.testing.assert_allclose(out["scores"][i, :n], det["scores"], atol=1e-4)
                assert np.all(out["boxes"][i, :n] <= [h, w, h, w]) and np.all(out["class_ids"][i, n:] == 0)
                compared += n
    assert compared >= 20  # the comparison covered many detections

    classes = json.loads((exported / "assets.extra" / "classes.json").read_text())
    assert classes == {"class_names": ["square", "circle", "triangle"], "category_ids": [1, 2, 3]}


def test_saved_model_runs_without_the_detection_package(exported, tmp_path):
    """What TensorFlow Serving does: load the SavedModel with TensorFlow alone (no custom
    Python classes) and call serving_default."""
    import subprocess
    import sys

    images = np.random.default_rng(0).integers(0, 256, (3, 50, 70, 3), dtype=np.uint8)
    np.save(tmp_path / "images.npy", images)
    script = (
        "import sys, numpy as np, tensorflow as tf\n"
        f"f = tf.saved_model.load({str(exported)!r}).signatures['serving_default']\n"
        f"out = f(images=tf.constant(np.load({str(tmp_path / 'images.npy')!r})))\n"
        "assert not any(m == 'detection' or m.startswith('detection.') for m in sys.modules), 'imported detection'\n"
        "print(sorted(out), out['boxes'].shape, out['num_detections'].shape)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          cwd=tmp_path, env={**__import__("os").environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert "['boxes', 'class_ids', 'masks', 'num_detections', 'scores'] (3, 10, 4) (3,)" in done.stdout


def test_serving_maps_classes_to_the_dataset_ids(trained_shapes):
    """Non-contiguous dataset ids (COCO-like): class k comes out as category_ids[k - 1]."""
    from detection.export import ServingModel
    from detection.modeling.detector import Detector

    config, weights, dataset = trained_shapes
    detector = Detector(config, batch_size=1, training=False)
    detector.load_weights(weights)
    serve = tf.function(ServingModel(detector, category_ids=[10, 20, 30]).serve)
    image, _ = dataset.records[0].synthetic.render()
    out = serve(tf.constant(image[None]))
    n = int(out["num_detections"][0])
    assert sorted(out["class_ids"][0, :n].numpy().tolist()) == sorted((10 * dataset.records[0].class_ids).tolist())
    assert np.all(out["class_ids"][0, n:].numpy() == 0)
