"""SIGKILL a training process at random moments and in the middle of checkpoint saves, resume
each time, and finish with the weights of an uninterrupted run.

Each resumed process must continue from the newest checkpoint (losing at most the epoch that
was running), with the optimizer at step epoch x STEPS; every checkpoint on disk must load at
every kill. Ending with the uninterrupted run's weights shows that momentum and the position
in the learning-rate schedule came back each time.
"""
import csv
import os
import random
import re
import signal
import subprocess
import sys
import time

import numpy as np

from detection.engine import checkpoints
from detection.engine.trainer import train
from engine_helpers import HERE, script_env
from engine_toy import build_toy_model
from train_script import CONFIG, STEPS, dataset

KILLS = ("random", "mid-save", "mid-save")


def csv_epochs(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [int(row["epoch"]) for row in csv.DictReader(f)]


def all_checkpoints_load(out):
    model = build_toy_model()
    for path in checkpoints.list_checkpoints(out):
        checkpoints.load_model_weights(model, path)
        checkpoints.read_state(path)


def start(out):
    proc = subprocess.Popen([sys.executable, str(HERE / "train_script.py"), str(out)], env=script_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    lines = []
    for line in proc.stdout:  # up to the first fit: training is about to start
        lines.append(line)
        if line.startswith("Stage") or line.startswith("RESULT"):
            break
    return proc, lines


def wait_for_save(out, proc, timeout=30):
    """Returns True as soon as a checkpoint is being written (its .tmp- directory exists)."""
    root = out / "checkpoints"
    end = time.monotonic() + timeout
    while time.monotonic() < end and proc.poll() is None:
        if root.is_dir() and any(e.startswith(".tmp-") for e in os.listdir(root)):
            return True
        time.sleep(0.0005)
    return False


def test_killed_and_resumed_run_matches_uninterrupted(tmp_path):
    reference = train(build_toy_model, CONFIG, dataset, None, tmp_path / "reference", verbose=0)
    out = tmp_path / "run"
    rng = random.Random(0)
    resumed_at, report = [], []
    for mode in KILLS:
        proc, lines = start(out)
        match = re.search(r"Resumed from .*epoch_(\d+): epoch (\d+), optimizer step (\d+)", "".join(lines))
        if match:
            epoch, step = int(match.group(2)), int(match.group(3))
            assert step == epoch * STEPS  # learning-rate position restored with the optimizer
            resumed_at.append(epoch)
        if mode == "random":
            time.sleep(rng.uniform(0.0, 2.0))
            saving = None
        else:
            saving = wait_for_save(out, proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        root = out / "checkpoints"
        left = [e for e in os.listdir(root) if e.startswith(".tmp-")] if root.is_dir() else []
        report.append((mode, saving, bool(left)))
        done = csv_epochs(out / "log.csv")  # a row is written after its checkpoint
        newest = checkpoints.find_last(out)
        newest_epoch = checkpoints.read_state(newest)["epoch"] if newest else 0
        assert len(done) <= newest_epoch <= len(done) + 1  # at most the running epoch is lost
        all_checkpoints_load(out)

    proc, lines = start(out)
    rest, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, "".join(lines) + rest
    assert "RESULT" in rest or any(line.startswith("RESULT") for line in lines)
    assert csv_epochs(out / "log.csv") == list(range(CONFIG.EPOCHS))  # each epoch once
    state = checkpoints.read_state(checkpoints.find_last(out))
    assert (state["epoch"], state["global_step"]) == (CONFIG.EPOCHS, CONFIG.EPOCHS * STEPS)
    assert not [e for e in os.listdir(out / "checkpoints") if e.startswith(".")]

    final, expected = build_toy_model(), build_toy_model()
    checkpoints.load_model_weights(final, out / "final.weights.h5")
    checkpoints.load_model_weights(expected, reference.final_weights)
    for a, b in zip(final.weights, expected.weights):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5)
    assert any(saving for mode, saving, _ in report if mode == "mid-save")  # a save was really interrupted
    print(f"resumed at epochs {resumed_at}; kills (mode, saw a save running, left a .tmp-): {report}")
