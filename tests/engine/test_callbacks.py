import csv

import keras
import numpy as np
import pytest
import tensorflow as tf
from engine_toy import build_toy_model, toy_arrays, toy_dataset

from detection.config import Config
from detection.engine import callbacks as cb
from detection.engine import checkpoints
from detection.engine.distribute import StrategyInfo
from detection.engine.schedules import WarmupDecaySchedule
from detection.engine.trainer import train


def test_run_summary_line():
    info = StrategyInfo("MirroredStrategy", ("/cpu:0", "/cpu:1"), 2, 1, True)
    config = Config({"IMAGES_PER_GPU": 4, "GPU_COUNT": 2})
    assert cb.run_summary_line(info, config, 100, "runs/x") == (
        "Training on MirroredStrategy on /cpu:0, /cpu:1 (2 replicas): global batch 8 "
        "(IMAGES_PER_GPU 4 x 2 replicas), 100 steps per epoch, output runs/x")


def test_monitor_mode():
    assert [cb.monitor_mode(m) for m in ("val_loss", "rpn_class_loss", "val_ap", "val_ap50", "accuracy")] == [
        "min", "min", "max", "max", "max"]


def test_truncate_csv_log(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("epoch,loss\n0,1.0\n1,0.5\n2,0.25\n3,nan\n")
    cb.truncate_csv_log(path, 2)
    assert path.read_text().splitlines() == ["epoch,loss", "0,1.0", "1,0.5"]


def test_reduce_on_plateau_lowers_the_schedule_multiplier():
    schedule = WarmupDecaySchedule(0.1, total_steps=100)
    model = build_toy_model()
    model.compile(keras.optimizers.SGD(schedule))
    callback = cb.ReduceLROnPlateau(schedule, monitor="val_loss", factor=0.1, patience=1, verbose=0)
    callback.set_model(model)
    callback.on_train_begin()
    for epoch, value in enumerate([1.0, 0.9, 0.9, 0.95]):  # improves, then two epochs without
        callback.on_epoch_end(epoch, {"val_loss": value})
    assert float(schedule.multiplier.numpy()) == pytest.approx(0.01)
    assert float(model.optimizer.learning_rate) == pytest.approx(0.001)


def nan_at_batch(batch_index, batches, batch_size=4):
    """Toy dataset of `batches` batches repeated, batch `batch_index` with a NaN target."""
    arrays = toy_arrays(batches * batch_size)
    arrays["target"][batch_index * batch_size] = np.nan
    return tf.data.Dataset.from_tensor_slices(arrays).batch(batch_size, drop_remainder=True).repeat()


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    config = Config({"IMAGES_PER_GPU": 4, "EPOCHS": 3, "STEPS_PER_EPOCH": 5, "VALIDATION_STEPS": 0,
                     "LR_WARMUP_STEPS": 0, "LEARNING_RATE": 0.01})
    # Batch 6 of 10 is the 2nd batch of epoch 2.
    result = train(build_toy_model, config, nan_at_batch(6, 10), None, tmp_path, verbose=0)
    assert result.stopped == "non_finite"
    assert "Non-finite loss at epoch 2, batch 2 (optimizer step 7)" in result.message
    assert "loss=nan" in result.message and "toy_loss=nan" in result.message
    assert "last finite at epoch 2, batch 1 (epoch averages): loss=" in result.message
    assert result.message.endswith(f"The last good checkpoint is {tmp_path / 'checkpoints' / 'epoch_0001'}.")
    assert [p.rsplit("/", 1)[1] for p in checkpoints.list_checkpoints(tmp_path)] == ["epoch_0001"]
    assert result.epochs_done == 1 and result.final_weights is None
    assert not (tmp_path / "final.weights.h5").exists()
    loaded = build_toy_model()
    checkpoints.load_model_weights(loaded, result.last_checkpoint)
    assert all(np.isfinite(np.asarray(w)).all() for w in loaded.weights)


def test_debug_mode_names_the_op_that_made_a_nan(tmp_path):
    config = Config({"IMAGES_PER_GPU": 4, "EPOCHS": 1, "STEPS_PER_EPOCH": 3, "VALIDATION_STEPS": 0})
    try:
        with pytest.raises(tf.errors.InvalidArgumentError, match="Detected Infinity or NaN"):
            train(build_toy_model, config, nan_at_batch(1, 3), None, tmp_path, debug=True, verbose=0)
    finally:
        tf.debugging.disable_check_numerics()


def test_early_stopping_and_plateau_reduction_in_a_run(tmp_path):
    # A rate so small that nothing moves: val_loss is flat from epoch 1.
    config = Config({"IMAGES_PER_GPU": 4, "EPOCHS": 6, "STEPS_PER_EPOCH": 2, "VALIDATION_STEPS": 1,
                     "LR_WARMUP_STEPS": 0, "LR_SCHEDULE": "constant", "LEARNING_RATE": 1e-12,
                     "EARLY_STOPPING_PATIENCE": 2, "REDUCE_LR_PATIENCE": 1})
    result = train(build_toy_model, config, toy_dataset(8, 4), toy_dataset(4, 4, seed=1), tmp_path, verbose=0)
    assert result.stopped == "early_stopping" and result.epochs_done == 3
    assert result.message == "early stopping after epoch 3"
    # Reduced after epochs 2 and 3; the reduced multiplier is logged and checkpointed.
    with open(tmp_path / "log.csv") as f:
        rates = [float(row["learning_rate"]) for row in csv.DictReader(f)]
    np.testing.assert_allclose(rates, [1e-12, 1e-13, 1e-14], rtol=1e-5)
    multipliers = [checkpoints.read_state(p)["lr_multiplier"] for p in checkpoints.list_checkpoints(tmp_path)]
    np.testing.assert_allclose(multipliers, [1.0, 0.1, 0.01], rtol=1e-6)
    assert checkpoints.find_best(tmp_path).endswith("epoch_0001")
    assert result.final_weights == str(tmp_path / "final.weights.h5")
