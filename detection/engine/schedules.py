"""The learning rate per iteration: linear warm-up, then constant, step or cosine decay.

    lr(it) = LEARNING_RATE x multiplier x warmup(it) x decay(it)

    warmup(it) = f + (1 - f) x it / W   for it < W, else 1       (f = LR_WARMUP_FACTOR, W = LR_WARMUP_STEPS)
    decay(it)  = 1                                               constant
               = LR_STEP_FACTOR ** (number of boundaries <= it)  step, boundary = epoch x steps_per_epoch
               = (1 + cos(pi x min(it, T) / T)) / 2              cosine over the whole run, T total iterations

The product form is Detectron2's (WarmupMultiStepLR, WarmupCosineLR): warm-up scales whatever
the decay gives at that iteration, so cosine starts decaying from iteration 0.

Worked example (LEARNING_RATE 0.1, f 0.1, W 10, step at epochs [2] of 5 steps, i.e. iteration 10):
    it 0 -> 0.01, it 5 -> 0.055, it 9 -> 0.091, it 10 -> 0.01 (warm-up done, one step down).

`it` is the optimizer's `iterations` (applied steps, 0 for the first step), so restoring the
optimizer's variables restores the position in the schedule. `multiplier` is a variable that
ReduceLROnPlateau (callbacks.py) lowers: Keras cannot set the rate of an optimizer that holds a
schedule, so the plateau reduction lives here; the checkpoint saves its value.
"""
import math

import keras
from keras import ops

DECAYS = ("constant", "step", "cosine")


@keras.saving.register_keras_serializable(package="detection")
class WarmupDecaySchedule(keras.optimizers.schedules.LearningRateSchedule):
    """lr(iteration) as in the module docstring.

    Args:
      learning_rate: base rate for the global batch.
      total_steps: T, iterations of the whole run (cosine reaches 0 there).
      decay: "constant", "step" or "cosine".
      warmup_steps, warmup_factor: W and f.
      step_boundaries: iterations at which step decay multiplies by step_factor.
      multiplier: initial value of the plateau multiplier (1 unless restored).
    """

    def __init__(self, learning_rate, total_steps, decay="constant", warmup_steps=0,
                 warmup_factor=1.0, step_boundaries=(), step_factor=0.1, multiplier=1.0):
        if decay not in DECAYS:
            raise ValueError(f"decay must be one of {DECAYS}, got {decay!r}")
        if total_steps < 1:
            raise ValueError(f"total_steps must be >= 1, got {total_steps}")
        self.learning_rate = float(learning_rate)
        self.total_steps = int(total_steps)
        self.decay = decay
        self.warmup_steps = int(warmup_steps)
        self.warmup_factor = float(warmup_factor)
        self.step_boundaries = sorted(int(b) for b in step_boundaries)
        self.step_factor = float(step_factor)
        self.multiplier = keras.Variable(float(multiplier), dtype="float32", trainable=False,
                                         name="lr_multiplier")

    def __call__(self, step):
        it = ops.cast(step, "float32")
        lr = self.learning_rate * ops.convert_to_tensor(self.multiplier)
        if self.warmup_steps > 0:
            alpha = ops.minimum(it / self.warmup_steps, 1.0)
            lr = lr * (self.warmup_factor + (1.0 - self.warmup_factor) * alpha)
        if self.decay == "step" and self.step_boundaries:
            passed = ops.sum(ops.cast(it >= ops.convert_to_tensor(self.step_boundaries, "float32"), "float32"))
            lr = lr * ops.power(self.step_factor, passed)
        elif self.decay == "cosine":
            progress = ops.minimum(it, float(self.total_steps)) / self.total_steps
            lr = lr * 0.5 * (1.0 + ops.cos(math.pi * progress))
        return lr

    def get_config(self):
        return {
            "learning_rate": self.learning_rate,
            "total_steps": self.total_steps,
            "decay": self.decay,
            "warmup_steps": self.warmup_steps,
            "warmup_factor": self.warmup_factor,
            "step_boundaries": list(self.step_boundaries),
            "step_factor": self.step_factor,
            "multiplier": float(ops.convert_to_numpy(self.multiplier)),
        }


def schedule_from_config(config, steps_per_epoch, epochs):
    """The schedule a Config asks for; epochs is the run's total (the sum of TRAIN_STAGES)."""
    return WarmupDecaySchedule(
        learning_rate=config.LEARNING_RATE,
        total_steps=epochs * steps_per_epoch,
        decay=config.LR_SCHEDULE,
        warmup_steps=config.LR_WARMUP_STEPS,
        warmup_factor=config.LR_WARMUP_FACTOR,
        step_boundaries=[e * steps_per_epoch for e in config.LR_STEP_EPOCHS],
        step_factor=config.LR_STEP_FACTOR,
    )
