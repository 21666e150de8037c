"""Predictor.detect batches in-memory images itself (detection.engine.predictor.
in_memory_batches), not through make_inference_batches' tf.data pipeline: the same inputs and
so the same results."""

import cv2
import numpy as np

from detection.data.pipeline import make_inference_batches
from detection.engine.predictor import Predictor, array_records, in_memory_batches


def _images(dataset):
    images = [record.synthetic.render()[0] for record in dataset.records]
    # A larger copy and a non-square one: other resize scales; 5 images in batches of 4.
    images.append(cv2.resize(images[0], (96, 80), interpolation=cv2.INTER_LINEAR))
    return images


def test_in_memory_batches_equal_the_pipeline_batches(trained_shapes):
    config, _, dataset = trained_shapes
    for resize in ({}, {"IMAGE_RESIZE_MODE": "pad64", "IMAGE_MIN_DIM": 64, "IMAGE_MAX_DIM": 128}):
        changed = config.replace(**resize)
        records = array_records(_images(dataset))
        ours = list(in_memory_batches(records, changed, 4))
        theirs = list(make_inference_batches(records, changed, 4))
        assert [b.num_real for b in ours] == [b.num_real for b in theirs] and len(ours) >= 2
        for a, b in zip(ours, theirs):
            assert [r.image_id for r in a.records] == [r.image_id for r in b.records]
            for key in ("image", "image_meta"):
                assert a.inputs[key].dtype == b.inputs[key].dtype == np.float32
                np.testing.assert_array_equal(a.inputs[key], b.inputs[key], err_msg=key)


def test_detect_equals_predict_records(trained_shapes):
    config, weights, dataset = trained_shapes
    predictor = Predictor.from_weights(config, weights, score_threshold=0.3, log=None)
    images = _images(dataset)
    results = predictor.detect(images)
    expected = list(predictor.predict_records(array_records(images)))
    assert sum(len(r["scores"]) for r in results) >= 8
    for got, want in zip(results, expected):
        np.testing.assert_array_equal(got["rois"], want["boxes"])
        np.testing.assert_array_equal(got["scores"], want["scores"])
        assert got["masks"].dtype == bool
        np.testing.assert_array_equal(got["masks"], np.transpose(want["masks"], (1, 2, 0)).astype(bool))
