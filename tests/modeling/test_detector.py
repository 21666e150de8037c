"""The detector end to end on 64 px images with a tiny backbone."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from detection.core.anchors import AnchorSpec
from detection.core.image_meta import compose_image_meta
from detection.layers.detections import DetectionLayer
from detection.layers.rpn_target import RPNTargetLayer
from detection.modeling.detector import Detector
from tests.model_fixtures import SIZE, batch, numpy_iou, tiny_config
from tests.modeling.legacy_h5 import conv, write_legacy_h5

LOSSES = ["rpn_class_loss", "rpn_bbox_loss", "rcnn_class_loss", "rcnn_bbox_loss", "mask_loss"]
DIAGNOSTICS = ["gt_num", "positive_anchor_num", "negative_anchor_num", "miss_match_gt_num", "gt_match_min_iou",
               "gt_match_mean_iou", "positive_roi_num", "negative_roi_num", "rcnn_miss_match_gt_num"]


def compiled_detector(config):
    keras.utils.set_random_seed(0)
    detector = Detector(config)
    detector.compile(keras.optimizers.SGD(0.001))
    return detector


def fit_step(detector, inputs):
    """One step of ``detector``'s compiled training model on ``inputs`` -> that step's logs."""
    history = detector.training_model.fit(tf.data.Dataset.from_tensors(inputs), epochs=1, verbose=0, shuffle=False)
    return {k: v[-1] for k, v in history.history.items()}


def fit_one_step(config, inputs):
    detector = compiled_detector(config)
    return detector, fit_step(detector, inputs)


@pytest.fixture(scope="module")
def tiny_detector():
    """A compiled tiny_config() detector shared by the batch tests: the training step is traced
    once (every batch has the same shapes) and each test's fit reports that step's own logs."""
    return compiled_detector(tiny_config())


@pytest.fixture(scope="module")
def tiny_inference():
    """A tiny_config() inference-only detector (seeded), shared by the inference tests: its
    predict function is traced once."""
    keras.utils.set_random_seed(3)
    return Detector(tiny_config(), training=False)


def test_half_empty_batch_trains_with_finite_losses_and_diagnostics(tiny_detector):
    config = tiny_detector.config
    inputs = batch(config, [[], [[8, 8, 40, 30], [30, 30, 60, 62]]], [[], [1, 2]])
    logs = fit_step(tiny_detector, inputs)
    for name in LOSSES + DIAGNOSTICS + ["loss"]:
        assert np.isfinite(logs[name]), name
    assert logs["gt_num"] == 1.0  # (0 + 2) / 2 images
    # IoU diagnostics average over the one image with GT only, so they are real IoUs.
    assert 0.3 < logs["gt_match_min_iou"] <= logs["gt_match_mean_iou"] <= 1.0
    assert logs["positive_anchor_num"] > 0 and logs["negative_anchor_num"] > 0
    total = sum(config.LOSS_WEIGHTS[n] * logs[n] for n in LOSSES)
    np.testing.assert_allclose(logs["loss"], total, rtol=1e-4)


def test_all_empty_batch_has_zero_box_and_mask_losses(tiny_detector):
    config = tiny_detector.config
    logs = fit_step(tiny_detector, batch(config, [[], []]))
    assert logs["rpn_bbox_loss"] == 0.0 and logs["rcnn_bbox_loss"] == 0.0 and logs["mask_loss"] == 0.0
    assert np.isfinite(logs["rpn_class_loss"]) and logs["rpn_class_loss"] > 0
    assert np.isfinite(logs["rcnn_class_loss"]) and logs["rcnn_class_loss"] > 0
    assert logs["gt_num"] == 0.0 and logs["positive_anchor_num"] == 0.0 and logs["positive_roi_num"] == 0.0
    assert logs["gt_match_min_iou"] == 0.0 and logs["miss_match_gt_num"] == 0.0
    assert logs["negative_anchor_num"] == config.RPN_TRAIN_ANCHORS_PER_IMAGE


def test_compile_builds_the_optimizer_before_the_first_step():
    """Detector.compile creates the optimizer's slots up front, not inside the first training
    step (which would make TensorFlow trace that step twice)."""
    keras.utils.set_random_seed(0)
    detector = Detector(tiny_config())
    optimizer = keras.optimizers.SGD(0.001, momentum=0.9)
    detector.compile(optimizer)
    trainable = detector.training_model.trainable_variables
    assert optimizer.built and len(optimizer.momentums) == len(trainable) > 50
    assert [m.shape for m in optimizer.momentums] == [v.shape for v in trainable]
    with pytest.raises(ValueError, match="no training model"):
        Detector(tiny_config(), training=False).compile(keras.optimizers.SGD(0.001))


def test_rpn_target_counts_on_a_hand_made_case():
    config = tiny_config(RPN_TRAIN_ANCHORS_PER_IMAGE=32, RPN_POSITIVE_FRACTION=0.5, RPN_ANCHOR_RATIOS=[1.0])
    anchors = AnchorSpec.from_config(config).anchors((SIZE, SIZE))
    gt = np.array([[4.0, 4.0, 20.0, 20.0]])  # exactly the P3 anchor (scale 16, stride 8) centred at (12, 12)
    iou = numpy_iou(gt, anchors)[0]
    expected_pos = int(np.sum(iou >= 0.7))
    assert expected_pos >= 1
    inputs = batch(config, [[gt[0]], []])
    layer = RPNTargetLayer(AnchorSpec.from_config(config), num_samples=32, positive_fraction=0.5, name="rpn_targets")
    labels, deltas = layer(tf.constant(inputs["image"]), tf.constant(inputs["gt_class_ids"]),
                           tf.constant(inputs["gt_boxes"]))
    labels, deltas = labels.numpy(), deltas.numpy()
    assert np.sum(labels[0] == 1) == min(expected_pos, 16)
    assert np.sum(labels[0] == 0) == 32 - min(expected_pos, 16)
    assert np.all(iou[labels[0] == 1] >= 0.7) and np.all(iou[labels[0] == 0] < 0.3)
    best = int(np.argmax(iou))
    assert labels[0, best] == 1 and np.allclose(deltas[0, best], 0.0, atol=1e-6)
    assert np.sum(labels[1] == 1) == 0 and np.sum(labels[1] == 0) == 32  # the empty image
    assert np.all(deltas[1] == 0.0)
    # Diagnostics: 1 GT over 2 images, its best anchor IoU is 1.
    assert layer.trackers["gt_num"].result().numpy() == 0.5
    np.testing.assert_allclose(layer.trackers["gt_match_min_iou"].result().numpy(), 1.0, rtol=1e-6)
    assert layer.trackers["miss_match_gt_num"].result().numpy() == 0.0


@pytest.mark.parametrize("mode", ["crop_and_resize", "gather"])
def test_gradient_reaches_backbone_through_roi_align(mode):
    config = tiny_config(ROI_ALIGN_MODE=mode)
    detector = Detector(config)
    inputs = {k: tf.constant(v) for k, v in batch(config, [[[8, 8, 40, 30]], [[20, 20, 60, 50]]]).items()}
    kernel = detector.training_model.get_layer("conv1_conv").kernel
    with tf.GradientTape() as tape:
        losses = detector.training_model(inputs, training=True)
        rcnn_class_loss = losses[2]  # depends on the backbone only through RoIAlign
    grad = tape.gradient(rcnn_class_loss, kernel)
    assert grad is not None and float(tf.reduce_sum(tf.abs(grad))) > 0.0


def test_detection_layer_maps_boxes_to_original_pixels_exactly():
    # Original 100 x 150 image, scaled by 0.4 to 40 x 60 and padded into 64 x 64 with the
    # image placed at (12, 2): a detection at input box B is at (B - offset) / 0.4.
    meta = compose_image_meta(7, (100, 150, 3), (SIZE, SIZE, 3), (12, 2, 52, 62), 0.4)[None]
    rois = np.zeros((1, 4, 4), np.float32)
    rois[0, 0] = [20.0, 10.0, 40.0, 50.0]
    probs = np.zeros((1, 4, 3), np.float32)
    probs[0, :, 0] = 1.0
    probs[0, 0] = [0.1, 0.0, 0.9]
    deltas = np.zeros((1, 4, 3, 4), np.float32)
    _, boxes_input, boxes, class_ids, scores, num = DetectionLayer(
        10, min_confidence=0.5, bbox_std=[1, 1, 1, 1], name="d")(rois, probs, deltas, meta)
    assert num.numpy().tolist() == [1] and class_ids.numpy()[0, 0] == 2
    np.testing.assert_allclose(boxes_input.numpy()[0, 0], [20, 10, 40, 50])
    np.testing.assert_allclose(boxes.numpy()[0, 0], [(20 - 12) / 0.4, (10 - 2) / 0.4, (40 - 12) / 0.4, (50 - 2) / 0.4],
                               rtol=1e-6)
    np.testing.assert_allclose(scores.numpy()[0, 0], 0.9, rtol=1e-6)
    assert np.all(class_ids.numpy()[0, 1:] == 0) and np.all(boxes.numpy()[0, 1:] == 0)


def test_inference_model_outputs_and_original_frame(tiny_inference):
    config, detector = tiny_inference.config, tiny_inference
    inputs = batch(config, [[], []])
    # Original 32 x 32 images upscaled by 2 into the 64 x 64 input.
    inputs["image_meta"] = np.stack([compose_image_meta(i, (32, 32, 3), (SIZE, SIZE, 3), (0, 0, 64, 64), 2.0)
                                     for i in range(2)])
    out = detector.inference_model.predict({k: inputs[k] for k in ("image", "image_meta")}, verbose=0)
    d = config.DETECTION_MAX_INSTANCES
    assert out["boxes"].shape == (2, d, 4) and out["masks"].shape == (2, d, 28, 28)
    valid = np.arange(d)[None, :] < out["num_detections"][:, None]
    np.testing.assert_allclose(out["boxes"][valid], np.clip(out["boxes_input"][valid] / 2.0, 0, 32), rtol=1e-5)
    assert np.all(out["boxes"][valid] <= 32.0)


def test_weights_round_trip_between_training_and_inference_only_models(tmp_path):
    config = tiny_config()
    keras.utils.set_random_seed(1)
    trained = Detector(config)
    path = str(tmp_path / "w.weights.h5")
    trained.save_weights(path)
    keras.utils.set_random_seed(2)
    fresh = Detector(config, batch_size=1, training=False)
    fresh.load_weights(path)
    for name in ("conv1_conv", "fpn_p2", "rpn_class_raw", "rcnn_fc1", "mask_logits"):
        a = trained.inference_model.get_layer(name).get_weights()
        b = fresh.inference_model.get_layer(name).get_weights()
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)


def test_faster_rcnn_without_masks_trains():
    config = tiny_config(USE_MASK=False)
    inputs = batch(config, [[[8, 8, 40, 30]], []])
    inputs["gt_masks"] = np.zeros((2, config.MAX_GT_INSTANCES, 1, 1), np.float32)
    detector, logs = fit_one_step(config, inputs)
    assert "mask_loss" not in logs and np.isfinite(logs["loss"])
    assert "masks" not in detector.inference_model.output


def test_gather_roi_align_trains_a_step():
    config = tiny_config(ROI_ALIGN_MODE="gather", IMAGES_PER_GPU=1)  # one image: one trace of the per-image graph
    _, logs = fit_one_step(config, batch(config, [[[8, 8, 40, 30], [20, 20, 60, 50]]]))
    assert all(np.isfinite(logs[n]) for n in LOSSES)


def test_roi_align_modes_give_the_same_losses():
    def losses(mode):
        keras.utils.set_random_seed(0)  # the same weights and RoI samples in both detectors
        config = tiny_config(ROI_ALIGN_MODE=mode)
        inputs = {k: tf.constant(v) for k, v in batch(config, [[[8, 8, 40, 30]], [[20, 20, 60, 50]]]).items()}
        return [float(x) for x in Detector(config).training_model(inputs, training=True)[:len(LOSSES)]]

    np.testing.assert_allclose(losses("gather"), losses("crop_and_resize"), rtol=1e-4)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_trains_a_step(policy):
    keras.mixed_precision.set_global_policy(policy)
    try:
        config = tiny_config(IMAGES_PER_GPU=1)  # one image: one trace of the per-image graph
        _, logs = fit_one_step(config, batch(config, [[[8, 8, 40, 30], [20, 20, 60, 50]]]))
        assert all(np.isfinite(logs[n]) for n in LOSSES)
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_legacy_h5_loads_by_name_and_skips_mismatches(tmp_path):
    config = tiny_config()
    detector = Detector(config, batch_size=1, training=False)
    rpn = detector.inference_model.get_layer("rpn_conv_shared")
    kernel_shape = tuple(rpn.kernel.shape)
    rng = np.random.default_rng(0)
    new_kernel = rng.normal(size=kernel_shape).astype("float32")
    new_bias = rng.normal(size=(kernel_shape[-1],)).astype("float32")
    fc1_before = detector.inference_model.get_layer("rcnn_fc1").get_weights()
    path = str(tmp_path / "legacy.h5")
    write_legacy_h5(path, {
        "rpn_conv_shared": conv("rpn_conv_shared", new_kernel, new_bias),
        "rcnn_fc1": conv("rcnn_fc1", np.zeros((3, 3), "float32"), np.zeros((3,), "float32")),  # wrong shape
        "mrcnn_mask_conv1": [("mrcnn_mask_conv1/kernel:0", np.zeros((1,), "float32"))],  # a layer we do not have
    }, extra_layer_names=["input_image", "mrcnn_mask_loss"])
    report = detector.load_weights(path, log=None)
    assert report.loaded_layers == ["rpn_conv_shared"] and report.loaded_arrays == 2 and report.file_arrays == 5
    assert [m[0] for m in report.mismatched] == ["rcnn_fc1"] and report.not_in_model == ["mrcnn_mask_conv1"]
    np.testing.assert_array_equal(rpn.get_weights()[0], new_kernel)
    np.testing.assert_array_equal(rpn.get_weights()[1], new_bias)
    for before, after in zip(fc1_before, detector.inference_model.get_layer("rcnn_fc1").get_weights()):
        np.testing.assert_array_equal(before, after)


def test_inference_model_saves_and_reloads_in_safe_mode(tiny_inference, tmp_path):
    config, detector = tiny_inference.config, tiny_inference
    inputs = batch(config, [[], []])
    inputs = {k: inputs[k] for k in ("image", "image_meta")}
    expected = detector.inference_model.predict(inputs, verbose=0)
    path = str(tmp_path / "detector.keras")
    detector.inference_model.save(path)
    reloaded = keras.saving.load_model(path, safe_mode=True)
    got = reloaded.predict(inputs, verbose=0)
    for key in ("boxes", "class_ids", "scores", "proposals"):
        np.testing.assert_allclose(got[key], expected[key], rtol=1e-5, atol=1e-4)


def test_anchor_stride_two_trains_and_predicts():
    """RPN_ANCHOR_STRIDE 2: the RPN conv runs with stride 2, so its outputs line up with the
    anchors on every other cell (a quarter of them)."""
    config = tiny_config(RPN_ANCHOR_STRIDE=2, IMAGES_PER_GPU=1)  # one image: one trace of the per-image graphs
    spec = AnchorSpec.from_config(config)
    # P2..P6 of a 64 px input have 16, 8, 4, 2, 1 cells a side; every other one: 8, 4, 2, 1, 1.
    assert spec.anchor_count((SIZE, SIZE)) == (64 + 16 + 4 + 1 + 1) * 3
    assert AnchorSpec.from_config(tiny_config()).anchor_count((SIZE, SIZE)) == (256 + 64 + 16 + 4 + 1) * 3
    detector, logs = fit_one_step(config, batch(config, [[[8, 8, 40, 30], [20, 20, 60, 50]]]))
    assert detector.rpn_logits.shape[1] == spec.anchor_count((SIZE, SIZE))
    assert logs["positive_anchor_num"] > 0 and np.isfinite(logs["loss"])
    inputs = batch(config, [[]])
    out = detector.inference_model.predict({k: inputs[k] for k in ("image", "image_meta")}, verbose=0)
    assert out["proposals"].shape == (1, config.POST_NMS_ROIS_INFERENCE, 4)
