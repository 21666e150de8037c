"""make_strategy in pytest's process, where TensorFlow has initialised its devices already.

The multi-replica paths run in subprocesses: test_distributed_equivalence.py (--cpu-replicas)
and test_multiworker.py (TF_CONFIG).
"""
import json

import pytest
import tensorflow as tf

from detection.engine.distribute import DeviceError, make_strategy


@pytest.fixture(autouse=True)
def initialised_tf():
    tf.config.list_logical_devices()  # make sure: the tests below must not split this process's CPU


def test_default_is_one_device():
    strategy, info = make_strategy()
    assert strategy is tf.distribute.get_strategy()
    assert (info.replicas, info.workers, info.is_chief) == (1, 1, True)
    assert info.describe() == "default strategy on /cpu:0 (1 replica)"


def test_missing_gpus_say_what_is_visible():
    with pytest.raises(DeviceError) as error:
        make_strategy(gpus=2)
    assert str(error.value) == "--gpus 2 asked for 2 GPUs; visible GPUs: 0 (none)"


def test_cpu_replicas_after_tf_started_is_a_clear_error():
    with pytest.raises(DeviceError, match="already initialised its devices with 1 CPU device"):
        make_strategy(cpu_replicas=2)


def test_conflicting_options(monkeypatch):
    with pytest.raises(DeviceError, match="not both"):
        make_strategy(gpus=1, cpu_replicas=2)
    tf_config = {"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "worker", "index": 0}}
    monkeypatch.setenv("TF_CONFIG", json.dumps(tf_config))
    with pytest.raises(DeviceError, match="not supported with TF_CONFIG"):
        make_strategy(cpu_replicas=2)


def test_gpu_count_in_a_config_is_used_or_reported_never_dropped(tmp_path, monkeypatch, capsys):
    """tools/train.py: a YAML GPU_COUNT asks for that many GPUs when no device flag is given
    (here there are none: a one-line error), and is reported when --cpu-replicas replaces it."""
    import subprocess
    import sys

    from tests.conftest import REPO
    from tests.tools import load_tool

    config = tmp_path / "c.yaml"
    config.write_text(f"_BASE_: {REPO / 'configs' / 'shapes.yaml'}\nGPU_COUNT: 2\n")
    flags = ["--config", str(config), "--output", str(tmp_path / "r")]
    # In this process: asking for the GPUs fails before any device is set up.
    monkeypatch.delenv("TF_CONFIG", raising=False)
    status = load_tool("train").main(flags)
    out, err = capsys.readouterr()
    assert status == 2 and "GPU_COUNT 2 in" in out
    assert "GPU" in err.strip().splitlines()[-1] and "Traceback" not in err
    # --cpu-replicas 3 replaces it, said so; the run then stops on the missing data file. A
    # subprocess: the CPU can only be split before TensorFlow starts.
    common = [sys.executable, str(REPO / "tools" / "train.py"), *flags]
    done = subprocess.run(common + ["--cpu-replicas", "3", "--format", "coco", "--annotations",
                                    str(tmp_path / "missing.json"), "--images", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert "GPU_COUNT 2 in" in done.stdout and "replaced by the 3 replica(s)" in done.stdout
    assert done.returncode == 2 and "missing.json" in done.stderr
