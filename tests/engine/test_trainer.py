import csv

import keras
import numpy as np
import pytest
import tensorflow as tf
import yaml
from engine_toy import build_toy_model, toy_arrays, toy_dataset

from detection.config import Config
from detection.engine import checkpoints
from detection.engine.schedules import schedule_from_config
from detection.engine.trainer import train

STAGED = Config({"IMAGES_PER_GPU": 4, "STEPS_PER_EPOCH": 4, "VALIDATION_STEPS": 2, "LEARNING_RATE": 0.05,
                 "LR_WARMUP_STEPS": 3, "LR_SCHEDULE": "cosine", "SEED": 7,
                 "TRAIN_STAGES": [{"layers": "heads", "epochs": 1}, {"layers": "all", "epochs": 2}]})


def train_data(config):
    return toy_dataset(16, config.BATCH_SIZE)  # 4 batches: every epoch sees the same data


def val_data(config):
    return toy_dataset(8, config.BATCH_SIZE, seed=1)


def weights_of(path, layer):
    model = build_toy_model()
    checkpoints.load_model_weights(model, path)
    return np.asarray(model.get_layer(layer).kernel)


@pytest.fixture(scope="module")
def staged_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("staged")
    return out, train(build_toy_model, STAGED, train_data, val_data, out, verbose=0)


def test_outputs_of_a_staged_run(staged_run):
    out, result = staged_run
    assert result.stopped == "completed" and result.epochs_done == 3
    dumped = yaml.safe_load((out / "config.yaml").read_text())
    assert dumped["GPU_COUNT"] == 1 and dumped["TRAIN_STAGES"][1] == {"layers": "all", "epochs": 2}
    written = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert written == ["best", "epoch_0001", "epoch_0002", "epoch_0003", "last"]
    assert any((out / "logs" / "train").iterdir())  # TensorBoard events

    with open(out / "log.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["0", "1", "2"]
    assert set(rows[0]) == {"epoch", "learning_rate", "loss", "toy_loss", "toy_abs_error",
                            "val_loss", "val_toy_loss", "val_toy_abs_error"}
    schedule = schedule_from_config(STAGED, 4, 3)
    np.testing.assert_allclose([float(r["learning_rate"]) for r in rows],
                               [float(schedule(4 * e)) for e in (1, 2, 3)], rtol=1e-5)
    # toy_loss is the only loss: the Keras total equals it, epoch-averaged.
    np.testing.assert_allclose([float(r["loss"]) for r in rows], [float(r["toy_loss"]) for r in rows], rtol=1e-6)
    best_epoch = 1 + int(np.argmin([float(r["val_loss"]) for r in rows]))
    assert checkpoints.find_best(out).endswith(f"epoch_{best_epoch:04d}")
    assert checkpoints.read_state(checkpoints.find_last(out))["global_step"] == 12


def test_first_stage_trains_heads_only(staged_run):
    out, result = staged_run
    keras.utils.set_random_seed(STAGED.SEED)
    initial = build_toy_model()  # the run's initial weights: same seed, same builder
    ckpt = out / "checkpoints"
    np.testing.assert_array_equal(weights_of(ckpt / "epoch_0001", "conv3_block1_conv"),
                                  np.asarray(initial.get_layer("conv3_block1_conv").kernel))
    head_moved = weights_of(ckpt / "epoch_0001", "rcnn_out") - np.asarray(initial.get_layer("rcnn_out").kernel)
    assert np.abs(head_moved).max() > 0
    assert np.abs(weights_of(ckpt / "epoch_0002", "conv3_block1_conv")
                  - np.asarray(initial.get_layer("conv3_block1_conv").kernel)).max() > 0
    np.testing.assert_array_equal(weights_of(out / "final.weights.h5", "rcnn_out"),
                                  np.asarray(result.model.get_layer("rcnn_out").kernel))


def test_a_used_folder_needs_resume_and_resume_continues(staged_run, tmp_path):
    out, first = staged_run
    with pytest.raises(FileExistsError, match="already holds checkpoints"):
        train(build_toy_model, STAGED, train_data, val_data, out, verbose=0)
    longer = STAGED.replace(TRAIN_STAGES=[{"layers": "heads", "epochs": 1}, {"layers": "all", "epochs": 3}])
    result = train(build_toy_model, longer, train_data, val_data, out, resume=True, verbose=0)
    assert (result.initial_epoch, result.epochs_done) == (3, 4)
    assert int(result.model.optimizer.iterations.numpy()) == 16
    with open(out / "log.csv") as f:
        assert [r["epoch"] for r in csv.DictReader(f)] == ["0", "1", "2", "3"]
    assert checkpoints.find_last(out).endswith("epoch_0004")


def test_initial_weights_from_a_checkpoint(staged_run, tmp_path):
    out, _ = staged_run
    source = out / "checkpoints" / "epoch_0002"
    config = STAGED.replace(TRAIN_STAGES=[], TRAIN_LAYERS="heads", EPOCHS=1, STEPS_PER_EPOCH=1, VALIDATION_STEPS=0)
    result = train(build_toy_model, config, train_data, None, tmp_path, weights=str(source), verbose=0)
    assert int(result.model.optimizer.iterations.numpy()) == 1  # weights only: a new optimizer
    np.testing.assert_array_equal(np.asarray(result.model.get_layer("conv3_block1_conv").kernel),
                                  weights_of(source, "conv3_block1_conv"))  # frozen, as loaded


def test_float16_run_checkpoints_and_resumes_the_loss_scale(tmp_path):
    arrays = toy_arrays(8)
    # The second batch of each epoch overflows float16 in the backward pass only, whatever
    # the CPU's kernels: its images are ordinary (finite float16 forward pass) and its targets
    # are 1e6. The loss, computed in float32 by ToyLoss, is about 1e12: finite, so the epoch is
    # checkpointed. Its gradient at rcnn_out's float16 output, scale x 2 (pred - 1e6) / 16
    # (|pred| <= 65504, scale >= 2^14 here), is below -1.9e9 and is cast to float16 on its way
    # back (the gradient of the float16 -> float32 cast): -inf, an IEEE conversion, not a
    # kernel's choice. rcnn_out's bias gradient is the sum of those -inf: -inf, so the
    # optimizer sees a non-finite gradient and skips the step. (Images scaled by 1e5 instead
    # are inf in float16, and the loss then depended on the kernels: Eigen's, which TensorFlow
    # falls back to where oneDNN refuses float16 (an AMD EPYC with AVX-512 but no AVX512_FP16),
    # propagate the NaN, so the run stopped without a checkpoint and resumed fresh; oneDNN's
    # fused Conv+ReLU maps NaN to 0, which kept the loss finite where oneDNN runs float16.)
    # The first batch's scaled gradients stay below 4e3 at scale 2^15 (measured), far from 65504.
    arrays["target"][4:] = 1e6

    def overflowing(config):
        return tf.data.Dataset.from_tensor_slices(arrays).batch(4, drop_remainder=True).repeat()

    config = STAGED.replace(TRAIN_STAGES=[], EPOCHS=1, STEPS_PER_EPOCH=2, VALIDATION_STEPS=0,
                            MIXED_PRECISION="float16")
    first = train(build_toy_model, config, overflowing, None, tmp_path, verbose=0)
    assert first.stopped == "completed", first.message  # finite losses: the epoch is checkpointed
    assert checkpoints.read_state(checkpoints.find_last(tmp_path))["global_step"] == 1
    assert keras.config.dtype_policy().name == "float32"  # the policy was set for the build only
    assert first.model.get_layer("conv2_block1_conv").compute_dtype == "float16"
    assert first.model.get_layer("rcnn_out").compute_dtype == "float16"  # where the gradient overflows
    assert type(first.model.optimizer).__name__ == "LossScaleOptimizer"
    assert float(first.model.optimizer.dynamic_scale.numpy()) == 2.0 ** 14  # halved once
    assert int(first.model.optimizer.iterations.numpy()) == 1
    again = train(build_toy_model, config.replace(EPOCHS=2), overflowing, None, tmp_path, resume=True, verbose=0)
    assert (again.stopped, again.initial_epoch) == ("completed", 1)  # resumed from epoch_0001
    # Restored 2^14 and 1 applied step, then one more of each: a fresh optimizer would give 2^14 and 1.
    assert float(again.model.optimizer.dynamic_scale.numpy()) == 2.0 ** 13
    assert int(again.model.optimizer.iterations.numpy()) == 2


def test_each_stage_and_a_resume_read_the_stream_on_from_where_the_run_was(tmp_path):
    """A ShardedInput is made per fit, starting after the images the steps before it read:
    stage 2 of a fresh run, and the stage a resumed run continues."""
    from detection.engine.distribute import ShardedInput

    starts = []

    def make(config, shard):
        starts.append(shard.start)
        return toy_dataset(16, shard.batch_size)

    config = STAGED.replace(STEPS_PER_EPOCH=2, VALIDATION_STEPS=0)  # 2 steps of 4 images an epoch
    train(build_toy_model, config, ShardedInput(make), None, tmp_path, verbose=0)
    assert starts == [0, 1 * 2 * 4]  # stage 1 (1 epoch), then stage 2 from epoch 2
    longer = config.replace(TRAIN_STAGES=[{"layers": "heads", "epochs": 1}, {"layers": "all", "epochs": 3}])
    result = train(build_toy_model, longer, ShardedInput(make), None, tmp_path, resume=True, verbose=0)
    assert result.initial_epoch == 3 and starts[2:] == [3 * 2 * 4]
