import json
import os
import threading
import time

import keras
import numpy as np
import pytest
from engine_toy import build_toy_model, toy_dataset

from detection.config import Config
from detection.engine import checkpoints
from detection.engine.layer_selection import Stage, set_trainable, stage_variables
from detection.engine.optimizer import make_optimizer
from detection.engine.schedules import schedule_from_config

CONFIG = Config({"LEARNING_RATE": 0.1, "LR_WARMUP_STEPS": 10, "LR_WARMUP_FACTOR": 0.1, "LR_SCHEDULE": "cosine"})
PLAN = [Stage("heads", 0, 1), Stage("all", 1, 3)]


def compiled(layers="all", plan=PLAN):
    """A toy model compiled as the trainer does: optimizer built over every stage's variables."""
    model = build_toy_model()
    schedule = schedule_from_config(CONFIG, steps_per_epoch=4, epochs=3)
    opt = make_optimizer(CONFIG, schedule)
    opt.build(stage_variables(model, plan))
    set_trainable(model, layers)
    model.compile(opt)
    return model, schedule


def state(epoch, **extra):
    return {"epoch": epoch, "global_step": 0, **extra}


@pytest.fixture(scope="module")
def trained():
    keras.utils.set_random_seed(1)
    model, schedule = compiled()
    model.fit(toy_dataset(16, 4), steps_per_epoch=3, epochs=1, verbose=0, shuffle=False)
    schedule.multiplier.assign(0.5)
    return model, schedule


def test_restore_puts_back_weights_optimizer_and_rate(tmp_path, trained):
    model, schedule = trained
    path = checkpoints.save_checkpoint(tmp_path, model, state(1, lr_multiplier=0.5))
    assert path == str(tmp_path / "checkpoints" / "epoch_0001")
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["epoch_0001", "last"]

    keras.utils.set_random_seed(2)  # other initial weights
    fresh, fresh_schedule = compiled()
    assert not np.array_equal(np.asarray(fresh.weights[0]), np.asarray(model.weights[0]))
    restored = checkpoints.restore_checkpoint(checkpoints.find_last(tmp_path), fresh, fresh_schedule)
    assert restored["epoch"] == 1
    for a, b in zip(fresh.weights, model.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert int(fresh.optimizer.iterations.numpy()) == 3
    for a, b in zip(fresh.optimizer.variables, model.optimizer.variables):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))  # momentum too
    assert float(fresh_schedule.multiplier.numpy()) == 0.5
    # lr(3) = 0.1 x 0.5 x (0.1 + 0.9 x 3/10) x (1 + cos(pi x 3/12)) / 2
    expected = 0.1 * 0.5 * 0.37 * 0.5 * (1 + np.cos(np.pi * 3 / 12))
    assert float(fresh.optimizer.learning_rate) == pytest.approx(expected, rel=1e-5)


def test_restore_refuses_another_optimizer_layout(tmp_path, trained):
    model, _ = trained
    path = checkpoints.save_checkpoint(tmp_path, model, state(1))
    other, schedule = compiled("heads", plan=[Stage("heads", 0, 3)])  # iterations + 18 momentums vs + 8
    with pytest.raises(checkpoints.CheckpointError, match="saved optimizer has 19 variables, this one 9"):
        checkpoints.restore_checkpoint(path, other, schedule)


def test_weights_only_load_needs_uncompiled_model(tmp_path, trained):
    model, _ = trained
    path = checkpoints.save_checkpoint(tmp_path, model, state(1))
    plain = build_toy_model()
    checkpoints.load_model_weights(plain, path)
    np.testing.assert_array_equal(np.asarray(plain.weights[0]), np.asarray(model.weights[0]))
    with pytest.raises(checkpoints.CheckpointError, match="before model.compile"):
        checkpoints.load_model_weights(model, path)


def test_find_last_survives_missing_or_stale_pointer(tmp_path, trained):
    model, _ = trained
    assert checkpoints.find_last(tmp_path) is None
    for epoch in (1, 2, 3):
        checkpoints.save_checkpoint(tmp_path, model, state(epoch), is_best=epoch == 2)
    root = tmp_path / "checkpoints"
    assert checkpoints.find_last(tmp_path) == str(root / "epoch_0003")
    assert checkpoints.find_best(tmp_path) == str(root / "epoch_0002")
    (root / "last").write_text("epoch_0002\n")  # a kill between the directory rename and the pointer
    assert checkpoints.find_last(tmp_path) == str(root / "epoch_0003")
    (root / "last").unlink()
    assert checkpoints.find_last(tmp_path) == str(root / "epoch_0003")
    os.mkdir(root / "epoch_0004")  # no state.json: not a checkpoint
    assert checkpoints.find_last(tmp_path) == str(root / "epoch_0003")


def test_prune_keeps_newest_last_and_best(tmp_path, trained):
    model, _ = trained
    for epoch in (1, 2, 3, 4):
        checkpoints.save_checkpoint(tmp_path, model, state(epoch), is_best=epoch == 1)
        checkpoints.prune_checkpoints(tmp_path, keep=2)
    assert [os.path.basename(p) for p in checkpoints.list_checkpoints(tmp_path)] == [
        "epoch_0001", "epoch_0003", "epoch_0004"]


class Crash(Exception):
    pass


def test_a_crash_at_any_point_of_a_save_leaves_loadable_checkpoints(tmp_path, trained, monkeypatch):
    """Raises at the k-th file-system call of a save, for every k: what is on disk still loads."""
    model, _ = trained
    checkpoints.save_checkpoint(tmp_path, model, state(1))
    reader = build_toy_model()
    real = {name: getattr(os, name) for name in ("replace", "mkdir", "fsync", "open")}
    k, completed = 0, False
    while not completed:
        calls = [0]

        def counting(name, k=k, calls=calls):
            def call(*args, **kwargs):
                calls[0] += 1
                if calls[0] == k + 1:
                    raise Crash(f"{name} #{k + 1}")
                return real[name](*args, **kwargs)
            return call

        for name in real:
            monkeypatch.setattr(os, name, counting(name))
        try:
            checkpoints.save_checkpoint(tmp_path, model, state(2, global_step=k))
            completed = True
        except Crash:
            pass
        finally:
            for name in real:
                monkeypatch.setattr(os, name, real[name])
        last = checkpoints.find_last(tmp_path)
        assert last is not None and checkpoints.read_state(last)["epoch"] in (1, 2)
        for path in checkpoints.list_checkpoints(tmp_path):
            checkpoints.load_model_weights(reader, path)  # every checkpoint on disk loads
            json.loads((open(os.path.join(path, "state.json")).read()))
        k += 1
    assert k > 8  # the save made that many file-system calls, each one a crash point above
    assert checkpoints.read_state(checkpoints.find_last(tmp_path))["epoch"] == 2
    checkpoints.remove_stale_temporaries(tmp_path)
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["epoch_0001", "epoch_0002", "last"]


def test_the_pause_hook_holds_a_save_after_its_files_and_before_its_rename(tmp_path, trained, monkeypatch):
    """DETECTION_TEST_PAUSE_IN_SAVE (test_kill_resume.py's handshake): marker written, save waits for its removal."""
    model, _ = trained
    checkpoints.save_checkpoint(tmp_path, model, state(1))
    marker = tmp_path / "paused"
    monkeypatch.setenv(checkpoints.PAUSE_IN_SAVE_ENV, str(marker))
    saver = threading.Thread(target=checkpoints.save_checkpoint, args=(tmp_path, model, state(2)))
    saver.start()
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():  # the saver's signal; no assumption on thread scheduling
            assert time.monotonic() < deadline and saver.is_alive(), "the save never paused"
            time.sleep(0.01)
        tmp = marker.read_text().strip()
        root = tmp_path / "checkpoints"
        assert os.path.dirname(tmp) == str(root) and os.path.basename(tmp).startswith(".tmp-epoch_0002")
        assert sorted(os.listdir(tmp)) == ["model.weights.h5", "state.json"]
        assert checkpoints.read_state(tmp)["epoch"] == 2
        assert not (root / "epoch_0002").exists() and checkpoints.find_last(tmp_path) == str(root / "epoch_0001")
        assert saver.is_alive()  # still waiting: nothing moves until the marker goes
    finally:
        marker.unlink(missing_ok=True)
        saver.join(timeout=120)
    assert not saver.is_alive()
    assert checkpoints.find_last(tmp_path) == str(tmp_path / "checkpoints" / "epoch_0002")
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["epoch_0001", "epoch_0002", "last"]
