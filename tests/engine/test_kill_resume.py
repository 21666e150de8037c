"""SIGKILL a training process at a random moment and in the middle of checkpoint saves, resume
each time, and finish with the weights of an uninterrupted run.

Each resumed process must continue from the newest checkpoint (losing at most the epoch that
was running), with the optimizer at step epoch x STEPS; every checkpoint on disk must load at
every kill. Ending with the uninterrupted run's weights shows that momentum and the position
in the learning-rate schedule came back each time.

The mid-save kills do not race the save: the process runs with checkpoints.PAUSE_IN_SAVE_ENV
(DETECTION_TEST_PAUSE_IN_SAVE) naming a marker file, so each save writes the marker once its
.tmp- directory is complete and waits, before any rename, until the marker is removed. The
test waits for the marker, then kills (or removes it to let that save through). Nothing
depends on timing or thread scheduling; the timeouts only bound a hung process and are
generous for a busy 2-core machine.
"""
import csv
import os
import random
import re
import subprocess
import sys
import time

import numpy as np
from engine_helpers import HERE, script_env
from engine_toy import build_toy_model
from train_script import CONFIG, STEPS, dataset

from detection.engine import checkpoints
from detection.engine.trainer import train

# "random": a random moment of the first 2 s of training, at the latest in its 3rd save;
# "first-save" / "second-save": held in that save of the process (the first one let through).
KILLS = ("random", "first-save", "second-save")
TIMEOUT = 600  # seconds for a process to reach a point; only a hung process gets near it


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


def newest_epoch(out):
    newest = checkpoints.find_last(out)
    return checkpoints.read_state(newest)["epoch"] if newest else 0


def temporaries(out):
    root = out / "checkpoints"
    return sorted(e for e in os.listdir(root) if e.startswith(".tmp-")) if root.is_dir() else []


class Run:
    """train_script.py into `out`, its stdout and stderr in files (no pipe to drain or block on)."""

    def __init__(self, out, logs, marker=None):
        self.stdout, self.stderr = logs.with_suffix(".out"), logs.with_suffix(".err")
        env = script_env(**({checkpoints.PAUSE_IN_SAVE_ENV: str(marker)} if marker else {}))
        with open(self.stdout, "w") as out_file, open(self.stderr, "w") as err_file:
            self.proc = subprocess.Popen([sys.executable, str(HERE / "train_script.py"), str(out)],
                                         env=env, stdout=out_file, stderr=err_file, text=True)

    def output(self):
        return self.stdout.read_text()

    def describe(self):
        return f"exit {self.proc.poll()}\nstdout:\n{self.output()[-3000:]}\nstderr:\n{self.stderr.read_text()[-3000:]}"

    def wait_for(self, condition, what):
        """Polls condition() until true; fails if the process ends first or after TIMEOUT."""
        deadline = time.monotonic() + TIMEOUT
        while not condition():
            assert self.proc.poll() is None, f"the process ended before {what}: {self.describe()}"
            assert time.monotonic() < deadline, f"no {what} after {TIMEOUT} s: {self.describe()}"
            time.sleep(0.01)

    def kill(self):
        self.proc.kill()  # SIGKILL
        self.proc.wait(timeout=TIMEOUT)

    def resumed_at(self):
        """(epoch, optimizer step) of its "Resumed from" line, or None for a fresh start."""
        match = re.search(r"Resumed from .*epoch_(\d+): epoch (\d+), optimizer step (\d+)", self.output())
        return (int(match.group(2)), int(match.group(3))) if match else None


def held_save(marker):
    """The .tmp- directory of the save that is holding (the marker's content), and its epoch."""
    tmp = marker.read_text().strip()
    assert os.path.basename(tmp).startswith(".tmp-epoch_") and sorted(os.listdir(tmp)) == [
        checkpoints.WEIGHTS, checkpoints.STATE]  # complete, not yet renamed into place
    return tmp, checkpoints.read_state(tmp)["epoch"]


def test_killed_and_resumed_run_matches_uninterrupted(tmp_path):
    reference = train(build_toy_model, CONFIG, dataset, None, tmp_path / "reference", verbose=0)
    runs = []
    try:
        check_kills_and_resumes(tmp_path, reference, runs)
    finally:
        for run in runs:  # a failed assertion must not leave a process held in a save forever
            if run.proc.poll() is None:
                run.kill()


def check_kills_and_resumes(tmp_path, reference, runs):
    out, marker = tmp_path / "run", tmp_path / "paused-in-save"
    rng = random.Random(0)
    resumed_at, report = [], []
    for number, mode in enumerate(KILLS):
        before = newest_epoch(out)
        run = Run(out, tmp_path / f"process{number}", marker)
        runs.append(run)
        if mode == "random":
            # A random moment; saves are let through, but the 3rd one is held (the kill comes at
            # the latest there), so the run gets at most 2 epochs further: room for the kills below.
            run.wait_for(lambda run=run: "Stage" in run.output(), "training")
            deadline, let_through = time.monotonic() + rng.uniform(0.0, 2.0), 0
            while time.monotonic() < deadline and not (marker.exists() and let_through == 2):
                if marker.exists():
                    marker.unlink()
                    let_through += 1
                time.sleep(0.01)
            in_save = marker.exists()
            run.kill()
            report.append((mode, f"{let_through} saves let through", "killed in a save" if in_save else ""))
        else:
            run.wait_for(marker.exists, "a save")
            if mode == "second-save":
                first_tmp, first_epoch = held_save(marker)
                marker.unlink()  # let the first save through
                run.wait_for(lambda first_tmp=first_tmp: marker.exists() and marker.read_text().strip() != first_tmp,
                             "a second save")
            tmp, epoch = held_save(marker)
            run.kill()
            assert epoch == before + (2 if mode == "second-save" else 1)
            assert os.path.isdir(tmp) and os.path.basename(tmp) in temporaries(out)  # interrupted mid-save
            assert newest_epoch(out) == epoch - 1  # the interrupted epoch is lost, the one before kept
            report.append((mode, f"killed in the save of epoch {epoch}", os.path.basename(tmp)))
        marker.unlink(missing_ok=True)
        resumed = run.resumed_at()
        if resumed:
            epoch, step = resumed
            assert epoch == before and step == epoch * STEPS  # learning-rate position restored with the optimizer
            resumed_at.append(epoch)
        else:
            assert before == 0, run.describe()
        done = csv_epochs(out / "log.csv")  # a row is written after its checkpoint
        assert len(done) <= newest_epoch(out) <= len(done) + 1  # at most the running epoch is lost
        all_checkpoints_load(out)

    before = newest_epoch(out)
    assert before >= 1  # the second-save kill came after a complete save
    run = Run(out, tmp_path / "final")  # no marker: saves do not pause
    runs.append(run)
    run.wait_for(lambda: run.proc.poll() is not None, "the end of the run")
    assert run.proc.returncode == 0, run.describe()
    assert "RESULT" in run.output()
    assert run.resumed_at() == (before, before * STEPS)
    resumed_at.append(before)
    assert csv_epochs(out / "log.csv") == list(range(CONFIG.EPOCHS))  # each epoch once
    state = checkpoints.read_state(checkpoints.find_last(out))
    assert (state["epoch"], state["global_step"]) == (CONFIG.EPOCHS, CONFIG.EPOCHS * STEPS)
    assert not [e for e in os.listdir(out / "checkpoints") if e.startswith(".")]

    final, expected = build_toy_model(), build_toy_model()
    checkpoints.load_model_weights(final, out / "final.weights.h5")
    checkpoints.load_model_weights(expected, reference.final_weights)
    for a, b in zip(final.weights, expected.weights):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5)
    print(f"resumed at epochs {resumed_at}; kills: {report}")
