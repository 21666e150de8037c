"""Padding-free inference (detection/layers/padding.py, Detector(padding_free=...)): the heads
run on the rows that exist, and the outputs equal the static path's."""

import keras
import numpy as np
import tensorflow as tf

from detection.data.pipeline import make_inference_batches
from detection.engine.predictor import Predictor, inference_detector
from detection.layers.padding import PadRows, TrimLike, TrimPaddingRows, real_row_count

BOX = [1.0, 2.0, 3.0, 4.0]
ZERO = [0.0, 0.0, 0.0, 0.0]


def test_real_row_count_is_the_last_real_row_of_any_image():
    boxes = tf.constant([[BOX, BOX, ZERO, ZERO, ZERO], [BOX, ZERO, [0.0, 0.0, 0.0, 5.0], ZERO, ZERO]])
    assert int(real_row_count(boxes)) == 3  # image 1's third row is real (one non-zero coordinate)
    assert int(real_row_count(tf.zeros((2, 5, 4)))) == 0
    trimmed = TrimPaddingRows()(boxes)
    np.testing.assert_array_equal(trimmed, boxes[:, :3])
    np.testing.assert_array_equal(TrimPaddingRows()(boxes, tf.constant([1, 4])), boxes[:, :4])
    np.testing.assert_array_equal(TrimLike()(tf.constant([[5, 6, 7, 0, 0], [8, 0, 0, 0, 0]]), trimmed),
                                  [[5, 6, 7], [8, 0, 0]])


def test_pad_rows_appends_zero_rows_to_the_static_size():
    x = tf.constant(np.arange(12, dtype="float32").reshape(2, 2, 3))
    padded = PadRows(4)(x)
    assert padded.shape == (2, 4, 3)
    np.testing.assert_array_equal(padded[:, :2], x)
    np.testing.assert_array_equal(padded[:, 2:], np.zeros((2, 2, 3)))
    assert PadRows(4)(tf.zeros((2, 0, 3))).shape == (2, 4, 3)  # no detection at all


def _models(config, weights):
    out = {}
    for padding_free in (False, True):
        detector = inference_detector(config, min_confidence=0.05, padding_free=padding_free)
        detector.load_weights(weights)
        out[padding_free] = detector
    return out


def test_padding_free_heads_give_the_static_outputs_on_the_trained_model(trained_shapes):
    """Same weights, both paths: raw outputs equal on every real row, the mask head run on
    max(num_detections) rows only, and the Predictor's detections and masks identical."""
    config, weights, dataset = trained_shapes
    config = config.replace(DETECTION_MIN_CONFIDENCE=0.05)
    detectors = _models(config, weights)
    static, free = detectors[False].inference_model, detectors[True].inference_model
    inputs = next(iter(make_inference_batches(dataset, config, config.IMAGES_PER_GPU))).inputs
    inputs = {k: tf.constant(inputs[k], tf.float32) for k in ("image", "image_meta")}
    a, b = static(inputs, training=False), free(inputs, training=False)
    num = a["num_detections"].numpy()
    np.testing.assert_array_equal(num, b["num_detections"])
    assert num.min() >= 2 and num.max() < config.DETECTION_MAX_INSTANCES  # padding exists
    for key in ("boxes", "boxes_input", "class_ids", "scores", "proposals"):
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    for i, n in enumerate(num):
        np.testing.assert_allclose(a["masks"][i, :n], b["masks"][i, :n], atol=1e-6)
        assert not np.any(b["masks"][i, num.max():])  # padding rows are zero
    # The mask head's input: max(num_detections) rows, not DETECTION_MAX_INSTANCES.
    rows = keras.Model(free.inputs, free.get_layer("detections_trim").output)(inputs)
    assert rows.shape[1] == num.max()
    proposals = keras.Model(free.inputs, free.get_layer("inference_proposals_trim").output)(inputs)
    assert proposals.shape[1] == int(real_row_count(a["proposals"]))

    for got, expected in zip(Predictor(config, detector=detectors[True]).predict_records(dataset),
                             Predictor(config, detector=detectors[False]).predict_records(dataset)):
        for key in ("boxes", "class_ids", "scores", "masks", "proposals"):
            np.testing.assert_array_equal(got[key], expected[key], err_msg=key)


def test_static_path_has_static_shapes_for_export(trained_shapes):
    config, weights, _ = trained_shapes
    detector = inference_detector(config, batch_size=1, padding_free=False)
    names = {layer.name for layer in detector.inference_model.layers}
    assert not names & {"detections_trim", "inference_proposals_trim"}
    assert detector.inference_model.outputs[0].shape[1] is not None
