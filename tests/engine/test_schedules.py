import math

import keras
import numpy as np
import pytest

from detection.config import Config
from detection.engine.schedules import WarmupDecaySchedule, schedule_from_config


def values(schedule, iterations):
    return [float(schedule(i)) for i in iterations]


def test_warmup_then_step_worked_example():
    # The docstring's example: LR 0.1, factor 0.1 over 10 steps, x0.1 at iterations 10 and 20.
    s = WarmupDecaySchedule(0.1, total_steps=30, decay="step", warmup_steps=10, warmup_factor=0.1,
                            step_boundaries=[10, 20], step_factor=0.1)
    np.testing.assert_allclose(values(s, [0, 5, 9, 10, 19, 20, 29]),
                               [0.01, 0.055, 0.091, 0.01, 0.01, 0.001, 0.001], rtol=1e-5)


def test_cosine_reaches_zero_at_total_and_stays():
    s = WarmupDecaySchedule(0.1, total_steps=100, decay="cosine")
    np.testing.assert_allclose(values(s, [0, 25, 50, 100, 150]),
                               [0.1, 0.05 * (1 + math.cos(math.pi / 4)), 0.05, 0.0, 0.0], rtol=1e-5, atol=1e-9)


def test_cosine_times_warmup():
    s = WarmupDecaySchedule(0.1, total_steps=100, decay="cosine", warmup_steps=10, warmup_factor=0.1)
    # 0.1 x (0.1 + 0.9 x 5/10) x (1 + cos(pi x 5/100)) / 2
    np.testing.assert_allclose(float(s(5)), 0.1 * 0.55 * 0.5 * (1 + math.cos(math.pi * 0.05)), rtol=1e-5)


def test_constant_after_warmup_and_multiplier():
    s = WarmupDecaySchedule(0.02, total_steps=50, decay="constant", warmup_steps=4, warmup_factor=0.5)
    np.testing.assert_allclose(values(s, [0, 2, 4, 49]), [0.01, 0.015, 0.02, 0.02], rtol=1e-5)
    s.multiplier.assign(0.1)
    np.testing.assert_allclose(values(s, [2, 40]), [0.0015, 0.002], rtol=1e-5)


def test_serialises_with_multiplier():
    s = WarmupDecaySchedule(0.1, total_steps=30, decay="step", warmup_steps=10, warmup_factor=0.1,
                            step_boundaries=[10, 20], step_factor=0.5)
    s.multiplier.assign(0.25)
    again = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(s))
    assert isinstance(again, WarmupDecaySchedule) and again is not s
    assert again.get_config() == s.get_config()
    np.testing.assert_allclose(values(again, [3, 15, 25]), values(s, [3, 15, 25]))
    assert float(again(25)) == pytest.approx(0.1 * 0.25 * 0.25)


def test_from_config_boundaries_in_iterations():
    config = Config({"LEARNING_RATE": 0.1, "LR_SCHEDULE": "step", "LR_WARMUP_STEPS": 0,
                     "LR_STEP_EPOCHS": [2, 3], "LR_STEP_FACTOR": 0.1})
    s = schedule_from_config(config, steps_per_epoch=5, epochs=4)
    assert s.step_boundaries == [10, 15] and s.total_steps == 20
    np.testing.assert_allclose(values(s, [9, 10, 14, 15]), [0.1, 0.01, 0.01, 0.001], rtol=1e-5)


def test_optimizer_rate_follows_iterations():
    s = WarmupDecaySchedule(0.1, total_steps=30, decay="step", warmup_steps=10, warmup_factor=0.1,
                            step_boundaries=[10])
    opt = keras.optimizers.SGD(s)
    opt.build([keras.Variable(np.zeros(2, np.float32))])
    opt.iterations.assign(5)
    assert float(opt.learning_rate) == pytest.approx(0.055)
    opt.iterations.assign(12)
    assert float(opt.learning_rate) == pytest.approx(0.01)


def test_rejects_unknown_decay():
    with pytest.raises(ValueError, match="decay"):
        WarmupDecaySchedule(0.1, total_steps=10, decay="poly")
