"""matterport's weights: the compatible model (configs/matterport.yaml), its loader, and its
detections against matterport's own code.

The manifest (../shared/matterport) gives every layer of matterport's COCO model; a file in
its layout loads array by array. tests/fixtures/matterport_oracle holds what matterport's own
detect() (its TF2 port, run beside the project) returned for a ResNet-50 file of seeded
random weights on four images: tools/infer.py on the same file and images must give the same
detections (boxes within 1 px, same classes, scores within 0.01, masks at IoU > 0.95).
"""
import json

import numpy as np
import pytest

from detection.evaluation.detection_match import match_detections
from tests.conftest import REPO
from tests.modeling.legacy_h5 import write_legacy_h5
from tests.modeling.matterport_h5 import MANIFEST, manifest_layers, random_arrays
from tests.tools import load_tool

FIXTURES = REPO / "tests" / "fixtures" / "matterport_oracle"


def need_manifest():
    if not MANIFEST.is_file():
        pytest.skip(f"{MANIFEST} is absent (only CI and developer machines have ../shared)")


def matterport_config(**values):
    from detection.config import Config

    overrides = [f"{k}={json.dumps(v)}" for k, v in values.items()]
    return Config.from_yaml(REPO / "configs" / "matterport.yaml", overrides=overrides)


@pytest.fixture(scope="module")
def coco_file(tmp_path_factory):
    """matterport's COCO model layout (ResNet-101, 81 classes), seeded random values."""
    need_manifest()
    path = tmp_path_factory.mktemp("mp_coco") / "mask_rcnn_coco_random.h5"
    write_legacy_h5(path, random_arrays(manifest_layers("resnet101", 81), seed=1),
                    extra_layer_names=["input_image", "input_image_meta", "ROI", "mrcnn_detection"])
    return path


def test_every_array_of_matterports_coco_file_loads_and_the_model_runs(coco_file):
    from detection.modeling.detector import Detector

    layers = manifest_layers("resnet101", 81)
    assert len(layers) == 233 and sum(len(w) for _, w in layers) == 690
    config = matterport_config(NUM_CLASSES=81, IMAGE_MIN_DIM=128, IMAGE_MAX_DIM=128, IMAGES_PER_GPU=1)
    detector = Detector(config, training=False)
    report = detector.load_weights(coco_file, log=None)
    assert (report.loaded_arrays, report.file_arrays) == (690, 690)
    assert report.not_in_file == [] and report.not_in_model == [] and report.mismatched == []
    assert report.class_specific == [] and report.excluded == []
    np.testing.assert_array_equal(detector.inference_model.get_layer("res4w_branch2c").bias.numpy(),
                                  dict(random_arrays(layers, seed=1)["res4w_branch2c"])["res4w_branch2c/bias:0"])
    image = np.random.default_rng(0).uniform(0, 255, (1, 128, 128, 3)).astype("float32")
    from detection.core.image_meta import compose_image_meta

    meta = compose_image_meta(0, (128, 128, 3), (128, 128, 3), (0, 0, 128, 128), 1.0)[None]
    out = detector.inference_model.predict({"image": image, "image_meta": meta}, verbose=0)
    for key in ("boxes", "scores", "masks", "proposals"):
        assert np.all(np.isfinite(out[key])), key


def test_another_class_count_leaves_exactly_the_class_specific_layers(coco_file):
    from detection.modeling.detector import Detector

    config = matterport_config(NUM_CLASSES=5, IMAGE_MIN_DIM=128, IMAGE_MAX_DIM=128, IMAGES_PER_GPU=1)
    detector = Detector(config, training=False)
    before = detector.inference_model.get_layer("mrcnn_class_logits").kernel.numpy()
    report = detector.load_weights(coco_file, log=None)
    assert report.class_specific == ["mrcnn_class_logits", "mrcnn_bbox_fc", "mrcnn_mask"]
    assert (report.file_classes, report.model_classes) == (81, 5)
    assert report.loaded_arrays == 690 - 6 and report.mismatched == [] and report.not_in_file == []
    np.testing.assert_array_equal(detector.inference_model.get_layer("mrcnn_class_logits").kernel.numpy(), before)
    assert "left initialised, trained for 81 classes, not 5: mrcnn_class_logits, mrcnn_bbox_fc, mrcnn_mask" \
        in report.summary()
    # what exclude leaves out depends on the file and the patterns, not on the weights loaded before
    excluded = detector.load_weights(coco_file, exclude=[r"mrcnn_mask_.*", "fpn_p2"], log=None)
    assert excluded.excluded == ["fpn_p2"] + [f"mrcnn_mask_{k}" for k in ("conv1", "bn1", "conv2", "bn2", "conv3",
                                                                          "bn3", "conv4", "bn4", "deconv")]


def test_a_file_that_fits_nothing_is_one_line(coco_file, tmp_path):
    from detection.modeling.weights import WeightsError

    config = matterport_config(NUM_CLASSES=81, IMAGE_MIN_DIM=128, IMAGE_MAX_DIM=128, IMAGES_PER_GPU=1)
    ours = config.replace(BACKBONE="resnet_tiny", RPN_HEAD="standard", BOX_HEAD="fc", MASK_HEAD="fcn",
                          TOP_DOWN_PYRAMID_SIZE=16, FPN_CLASSIF_FC_LAYERS_SIZE=32)
    from detection.modeling.detector import Detector

    with pytest.raises(WeightsError, match="no array of the file fits the model") as error:
        Detector(ours.replace(TOP_DOWN_PYRAMID_SIZE=8), training=False).load_weights(coco_file, log=None)
    assert "\n" not in str(error.value) and "configs/matterport.yaml" in str(error.value)


@pytest.fixture(scope="module")
def oracle_weights(tmp_path_factory):
    need_manifest()
    path = tmp_path_factory.mktemp("mp_r50") / "matterport_r50_4.h5"
    write_legacy_h5(path, random_arrays(manifest_layers("resnet50", 4), seed=0))
    return path


@pytest.mark.parametrize("mode", ["square", "pad64"])
def test_infer_gives_matterports_own_detections(oracle_weights, tmp_path, mode):
    from pycocotools import mask as mask_utils

    expected = json.loads((FIXTURES / "expected.json").read_text())["configs"][mode]
    values = dict(expected["matterport_config"], BACKBONE="matterport_" + expected["matterport_config"]["BACKBONE"])
    (tmp_path / "model.yaml").write_text(f"_BASE_: {REPO / 'configs' / 'matterport.yaml'}\n" + "".join(
        f"{k}: {json.dumps(v)}\n" for k, v in values.items()))
    assert load_tool("infer").main(["--config", str(tmp_path / "model.yaml"), "--weights", str(oracle_weights),
                                    "--output", str(tmp_path / "out"), "--no-pictures",
                                    *[str(FIXTURES / e["file"]) for e in expected["images"]]]) == 0
    written = json.loads((tmp_path / "out" / "detections.json").read_text())
    total = matched = 0
    for index, image in enumerate(expected["images"]):
        rows = [d for d in written if d["image_id"] == index]
        ours = {"rois": np.array([[y, x, y + h, x + w] for x, y, w, h in (d["bbox"] for d in rows)]).reshape(-1, 4),
                "class_ids": [d["category_id"] for d in rows], "scores": [d["score"] for d in rows]}
        theirs = {"rois": np.array(image["rois"], float).reshape(-1, 4), "class_ids": image["class_ids"],
                  "scores": image["scores"]}
        pairs = match_detections(theirs, ours)
        for i, j in pairs:
            assert np.abs(ours["rois"][j] - theirs["rois"][i]).max() <= 1.0, (image["file"], i)
            assert abs(ours["scores"][j] - theirs["scores"][i]) <= 0.01, (image["file"], i)
            a = mask_utils.decode(rows[j]["segmentation"]).astype(bool)
            b = mask_utils.decode(image["masks_rle"][i]).astype(bool)
            union = np.count_nonzero(a | b)
            assert union == 0 or np.count_nonzero(a & b) / union > 0.95, (image["file"], i)
        total += len(theirs["scores"])
        matched += len(pairs)
        # Nothing extra either (a near tie in a score, float noise, may trade one detection).
        assert abs(len(rows) - len(theirs["scores"])) <= max(1, len(theirs["scores"]) // 50), image["file"]
    # 170 (square) and 211 (pad64) detections; all matched here, a near tie may swap one or two.
    assert total > 150 and matched >= 0.98 * total


def test_convert_writes_our_weights_file_that_loads_by_structure(oracle_weights, tmp_path):
    from detection.modeling.detector import Detector

    config = matterport_config(NUM_CLASSES=4, BACKBONE="matterport_resnet50", IMAGE_MIN_DIM=128, IMAGE_MAX_DIM=128,
                               IMAGES_PER_GPU=1)
    (tmp_path / "c.yaml").write_text("".join(f"{k}: {json.dumps(v)}\n" for k, v in config.to_dict().items()))
    out = tmp_path / "converted.weights.h5"
    assert load_tool("convert_weights").main(["--config", str(tmp_path / "c.yaml"), "--weights", str(oracle_weights),
                                              "--output", str(out)]) == 0
    by_name, converted = Detector(config, training=False), Detector(config, training=False)
    by_name.load_weights(oracle_weights, log=None)
    assert converted.load_weights(out) is None  # ours: by structure, no report
    for a, b in zip(by_name.inference_model.weights, converted.inference_model.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert load_tool("convert_weights").main(["--config", str(tmp_path / "c.yaml"), "--weights", str(out),
                                              "--output", str(tmp_path / "again.weights.h5")]) == 2


FINE_TUNE = """
BACKBONE: matterport_resnet50
NUM_CLASSES: 4
DATASET_FORMAT: shapes
SHAPES_TRAIN_COUNT: 4
SHAPES_IMAGE_SIZE: 128
IMAGE_MIN_DIM: 128
IMAGE_MAX_DIM: 128
IMAGES_PER_GPU: 1
RPN_ANCHOR_SCALES: [8, 16, 32, 64, 128]
PRE_NMS_LIMIT: 1000
POST_NMS_ROIS_TRAINING: 200
TRAIN_ROIS_PER_IMAGE: 32
MAX_GT_INSTANCES: 8
STEPS_PER_EPOCH: 1
VALIDATION_STEPS: 0
LEARNING_RATE: 0.001
LR_WARMUP_STEPS: 0
TRAIN_STAGES: [{layers: heads, epochs: 1}, {layers: 4+, epochs: 1}, {layers: all, epochs: 1}]
"""


def test_fine_tuning_from_a_coco_file_heads_then_4plus_then_all(tmp_path, capsys):
    """matterport's usual fine-tuning: its 81-class weights, a 4-class dataset, heads first,
    then stage 4 and up, then everything; every loss and diagnostic of ours; BatchNorm frozen."""
    import csv

    from detection.engine import checkpoints
    from detection.modeling.detector import Detector

    need_manifest()
    weights = tmp_path / "coco81_r50.h5"
    write_legacy_h5(weights, random_arrays(manifest_layers("resnet50", 81), seed=2))
    (tmp_path / "c.yaml").write_text(f"_BASE_: {REPO / 'configs' / 'matterport.yaml'}\n" + FINE_TUNE)
    run = tmp_path / "run"
    assert load_tool("train").main(["--config", str(tmp_path / "c.yaml"), "--weights", str(weights),
                                    "--output", str(run)]) == 0
    out = capsys.readouterr().out
    assert "left initialised, trained for 81 classes, not 4: mrcnn_class_logits, mrcnn_bbox_fc, mrcnn_mask" in out
    rows = list(csv.DictReader(open(run / "log.csv")))
    assert len(rows) == 3
    for name in ("rpn_class_loss", "rpn_bbox_loss", "rcnn_class_loss", "rcnn_bbox_loss", "mask_loss", "gt_num",
                 "positive_anchor_num", "miss_match_gt_num", "gt_match_min_iou", "rcnn_miss_match_gt_num"):
        assert all(np.isfinite(float(row[name])) for row in rows), name

    from detection.config import Config

    config = Config.from_yaml(run / "config.yaml")
    detector = Detector(config)
    detector.load_weights(weights, log=None)

    def snapshot():
        return {n: detector.training_model.get_layer(n).get_weights()[0].copy()
                for n in ("res3a_branch2a", "res4a_branch2a", "rpn_conv_shared", "mrcnn_mask_conv1", "bn4a_branch2a")}

    states = [snapshot()]
    for path in checkpoints.list_checkpoints(run):
        checkpoints.load_model_weights(detector.training_model, path)
        states.append(snapshot())
    assert len(states) == 4  # before, after each stage

    def changed(name, stage):
        return not np.array_equal(states[stage][name], states[stage - 1][name])

    assert changed("rpn_conv_shared", 1) and changed("mrcnn_mask_conv1", 1)  # heads
    assert not changed("res4a_branch2a", 1) and not changed("res3a_branch2a", 1)
    assert changed("res4a_branch2a", 2) and not changed("res3a_branch2a", 2)  # 4+
    assert changed("res3a_branch2a", 3)  # all
    assert not any(changed("bn4a_branch2a", stage) for stage in (1, 2, 3))  # TRAIN_BN false: frozen
