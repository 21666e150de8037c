"""One step on 2 replicas equals one step on one device over the same global batch.

Runs equivalence_script.py in a subprocess: splitting the CPU into 2 logical devices must
happen before TensorFlow initialises, and pytest's process has TF running already. The toy
model's loss is a mean over each replica's own images, as the detector's are; Keras 3 divides
add_loss losses by the replica count (TensorFlowTrainer._aggregate_additional_loss ->
scale_loss_for_distribution) and the optimizer sums gradients over replicas, which together
give the global mean.
"""
import numpy as np
import pytest
from engine_helpers import run_script


@pytest.fixture(scope="module")
def result():
    return run_script("equivalence_script.py")


def test_cpu_replicas_give_two_devices(result):
    assert result["replicas"] == 2
    assert result["devices"] == ["/cpu:0", "/cpu:1"]


def test_same_weights_after_one_and_six_steps(result):
    assert result["initial_diff"] == 0.0
    assert result["one_step_moved"] > 1e-4  # the step did something
    assert result["one_step_diff"] < 1e-7
    assert result["six_step_diff"] < 1e-6  # momentum, clipping and weight decay on every step


def test_fit_splits_the_global_batch_over_replicas(result):
    # Without the split each replica would see all 4 images and, the loss being a mean,
    # the weights would still agree: this is what shows Keras fit distributed the dataset.
    assert result["history_one"]["images_per_replica"] == [4.0, 4.0]
    assert result["history_two"]["images_per_replica"] == [2.0, 2.0]


def test_epoch_averaged_metrics_identical(result):
    one, two = result["history_one"], result["history_two"]
    assert sorted(one) == ["images_per_replica", "loss", "toy_abs_error", "toy_loss"]
    for key in ("loss", "toy_abs_error", "toy_loss"):
        np.testing.assert_allclose(two[key], one[key], rtol=1e-6)


def test_stock_keras_clips_per_replica(result):
    # Why engine.optimizer.SGD exists: Keras 3.15 clips each replica's share before summing.
    # If this starts failing, Keras fixed it and the override can go.
    assert result["keras_clip_diff"] > 1e-4


def test_float16_overflow_on_one_replica_skips_the_step_everywhere(result):
    assert result["fp16_optimizer"] == "detection.engine.optimizer.LossScaleOptimizer"
    assert result["fp16_weights_finite"]
    assert result["fp16_weights_changed"] == 0.0
    assert result["fp16_scale_per_replica"] == [2.0 ** 14, 2.0 ** 14]  # halved from 2^15 on both
    assert result["fp16_iterations"] == 0  # skipped: the schedule does not advance
