"""Callbacks of a training run: checkpoints, non-finite guard, learning-rate log and plateau.

Keras' own CSVLogger, TensorBoard and EarlyStopping are used as they are (trainer.py builds
the list). Order matters: NonFiniteGuard first (it stops the run); ReduceLROnPlateau before
LearningRateLogger and EpochCheckpoint (the reduced multiplier is logged and saved);
LearningRateLogger before CSVLogger (the rate is a column); EpochCheckpoint before CSVLogger
(a row in log.csv means its epoch is checkpointed).
"""
import csv
import math
import os
import re

import keras
import numpy as np

from detection.engine import checkpoints


def run_summary_line(info, config, steps_per_epoch, output_dir):
    """The first line of a run: devices, replicas, global batch, steps per epoch, output folder.

    info: distribute.StrategyInfo. config.GPU_COUNT must already be the replica count.
    """
    return (f"Training on {info.describe()}: global batch {config.BATCH_SIZE} "
            f"(IMAGES_PER_GPU {config.IMAGES_PER_GPU} x {info.replicas} replicas), "
            f"{steps_per_epoch} steps per epoch, output {output_dir}")


def _floats(logs, keys):
    return {k: float(np.asarray(logs[k])) for k in keys}


class NonFiniteGuard(keras.callbacks.Callback):
    """Stops training at the first step whose loss is NaN or inf, saying where and what was last finite.

    Watches every log key containing "loss" (the total and each tracked loss). Keras passes
    epoch averages so far to on_train_batch_end, so a bad step shows at once and stays.
    After it trips, EpochCheckpoint does not save, so the last checkpoint stays the last good one.
    """

    def __init__(self):
        super().__init__()
        self.tripped = False
        self.message = None
        self._epoch = 0
        self._last_finite = None  # (epoch, batch, {name: value})

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        keys = [k for k in (logs or {}) if "loss" in k]
        values = _floats(logs, keys)
        bad = {k: v for k, v in values.items() if not math.isfinite(v)}
        if not bad:
            self._last_finite = (self._epoch, batch, values)
            return
        step = int(np.asarray(self.model.optimizer.iterations))
        where = f"epoch {self._epoch + 1}, batch {batch + 1} (optimizer step {step})"
        if self._last_finite is None:
            before = "no finite loss was seen before it"
        else:
            e, b, last = self._last_finite
            before = (f"last finite at epoch {e + 1}, batch {b + 1} (epoch averages): "
                      + ", ".join(f"{k}={v:.6g}" for k, v in last.items()))
        self.message = (f"Non-finite loss at {where}: "
                        + ", ".join(f"{k}={v}" for k, v in bad.items()) + f"; {before}. Training stopped.")
        self.tripped = True
        self.model.stop_training = True
        print("\n" + self.message, flush=True)


class LearningRateLogger(keras.callbacks.Callback):
    """Adds "learning_rate" (the rate of the next step) to each epoch's logs, for log.csv and TensorBoard."""

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(np.asarray(self.model.optimizer.learning_rate))


class ReduceLROnPlateau(keras.callbacks.ReduceLROnPlateau):
    """Keras' ReduceLROnPlateau acting on the schedule's multiplier.

    An optimizer holding a LearningRateSchedule refuses a new rate, so the reduction
    multiplies schedules.WarmupDecaySchedule.multiplier by `factor` instead; the schedule's
    shape (warm-up, steps, cosine) goes on below it. Overrides Keras' `_reduce_optimizer_lr`
    (private, keras 3.15): the patience, cooldown and min_lr logic stay Keras'.
    """

    def __init__(self, schedule, **kwargs):
        super().__init__(**kwargs)
        self.schedule = schedule

    def _reduce_optimizer_lr(self, optimizer, epoch, name=""):
        old_lr = float(np.asarray(optimizer.learning_rate))
        if old_lr <= np.float32(self.min_lr):
            return False
        multiplier = float(np.asarray(self.schedule.multiplier)) * self.factor
        self.schedule.multiplier.assign(multiplier)
        if self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: ReduceLROnPlateau: learning-rate multiplier now {multiplier:.6g}")
        return True


def monitor_mode(monitor):
    """"max" for accuracy / AP-like metrics, else "min" (losses)."""
    tokens = monitor.lower().removeprefix("val_").split("_")  # val_bbox_AP50 -> bbox, ap50
    higher = any(re.fullmatch(r"(ap|ar|map|acc|accuracy)\d*", token) for token in tokens)
    return "max" if higher else "min"


class EpochCheckpoint(keras.callbacks.Callback):
    """Saves a checkpoint (checkpoints.save_checkpoint) at the end of each finite epoch.

    monitor: a log key for the `best` pointer; best: (value, epoch) restored on resume.
    schedule: its multiplier goes into the state. keep: newest checkpoints kept (None: all).
    Skips an epoch whose logged losses are not finite, or after `guard` tripped.
    """

    def __init__(self, output_dir, monitor, config_hash, schedule=None, guard=None, keep=None,
                 best=None, write=True):
        super().__init__()
        self.output_dir = output_dir
        self.monitor = monitor
        self.mode = monitor_mode(monitor)
        self.config_hash = config_hash
        self.schedule = schedule
        self.guard = guard
        self.keep = keep
        self.best = best  # (value, completed epochs) or None
        self.write = write  # False on non-chief workers
        self.last_saved = None

    def _improves(self, value):
        if self.best is None:
            return True
        return value < self.best[0] if self.mode == "min" else value > self.best[0]

    def on_epoch_end(self, epoch, logs=None):
        logs = {k: float(np.asarray(v)) for k, v in (logs or {}).items()}
        if (self.guard is not None and self.guard.tripped) or not all(
                math.isfinite(v) for k, v in logs.items() if "loss" in k):
            print(f"\nEpoch {epoch + 1}: losses not finite, no checkpoint written", flush=True)
            return
        value = logs.get(self.monitor)
        is_best = value is not None and math.isfinite(value) and self._improves(value)
        if is_best:
            self.best = (value, epoch + 1)
        state = {
            "epoch": epoch + 1,
            "global_step": int(np.asarray(self.model.optimizer.iterations)),
            "best": None if self.best is None else {
                "monitor": self.monitor, "value": self.best[0], "epoch": self.best[1]},
            "config_hash": self.config_hash,
            "lr_multiplier": 1.0 if self.schedule is None else float(np.asarray(self.schedule.multiplier)),
            "logs": logs,
        }
        if self.write:
            self.last_saved = checkpoints.save_checkpoint(self.output_dir, self.model, state, is_best=is_best)
            checkpoints.prune_checkpoints(self.output_dir, self.keep)


def truncate_csv_log(path, next_epoch):
    """Keeps the rows of epochs before `next_epoch` (0-based) in a Keras CSVLogger file.

    On resume, the epoch that was running when the run died may have its row already; the
    rerun writes it again, so drop it. Atomic (tmp + rename).
    """
    if not os.path.isfile(path):
        return
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        return
    kept = [rows[0]] + [r for r in rows[1:] if r and int(r[0]) < next_epoch]
    tmp = f"{path}.tmp"
    with open(tmp, "w", newline="") as f:
        csv.writer(f).writerows(kept)
    os.replace(tmp, path)
