"""TF_CONFIG and cluster start-up faults: one line each, never a hang."""
import json
import subprocess
import sys
import time

import pytest
from engine_helpers import REPO, free_ports, script_env

from detection.engine.distribute import DeviceError, StrategyInfo, lost_worker_message, parse_tf_config
from tests.tools import load_tool


@pytest.mark.parametrize("text, words", [
    ("{not json", "TF_CONFIG is not JSON"),
    ('{"task": {"type": "worker", "index": 0}}', 'needs a "cluster" object'),
    ('{"cluster": {"chief": ["a:1"]}, "task": {"type": "chief", "index": 0}}', 'names no "worker"'),
    ('{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 2}}',
     "task index 2 is out of range: the cluster has 2 \"worker\" task(s), indices 0..1"),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "evaluator", "index": 0}}', '"task" must be'),
    ('{"cluster": {"worker": ["a:1"], "ps": ["c:3"]}, "task": {"type": "worker", "index": 0}}',
     "cluster has ps"),
    ('{"cluster": {"worker": ["no-port"]}, "task": {"type": "worker", "index": 0}}', '"host:port" strings'),
])
def test_bad_tf_config_is_one_line(text, words):
    with pytest.raises(DeviceError) as error:
        parse_tf_config(text)
    assert words in str(error.value) and "\n" not in str(error.value)


def test_cluster_order_puts_the_chief_first():
    spec = parse_tf_config(json.dumps({"cluster": {"worker": ["w0:1", "w1:2"], "chief": ["c:3"]},
                                       "task": {"type": "worker", "index": 1}}))
    assert spec.addresses == ("c:3", "w0:1", "w1:2")
    assert spec.index == 2 and spec.name(2) == "worker 1 (w1:2)"


def test_lost_worker_message_names_the_worker_tf_reports():
    info = StrategyInfo("MultiWorkerMirroredStrategy", ("/cpu:0",), 2, 2, True, 0,
                        (("worker", 0, "127.0.0.1:1000"), ("worker", 1, "127.0.0.1:1001")))
    # The text TF 2.21 gives when a peer stops sending heartbeats (seen with a SIGKILLed worker).
    error = RuntimeError("Collective ops is aborted by: Error reported from /job:worker/task:1: The following tasks "
                         "are unhealthy (stopped sending heartbeats):\n/job:worker/replica:0/task:1\nThe tasks have "
                         "crashed.")
    line = lost_worker_message(error, info)
    assert line.startswith("error: lost worker 1 (127.0.0.1:1001), one of 2 workers;") and "\n" not in line
    # TF does not always name it (a reset connection in the ring): the address that stopped answering.
    reset = RuntimeError("Graph execution error: recvmsg:Connection reset by peer")
    line = lost_worker_message(reset, info, probe=lambda address: address.endswith(":1000"))
    assert line.startswith("error: lost worker 1 (127.0.0.1:1001), one of 2 workers;")
    line = lost_worker_message(reset, info, probe=lambda address: True, patience=0.3, interval=0.01)
    assert line.startswith("error: the cluster failed, every worker still answers (Graph execution error")
    # A dying worker's port answers for a moment after the reset: asked again, it is named.
    answered = []

    def closes_after_three_probes(address):
        answered.append(address)
        return address.endswith(":1000") or len(answered) <= 3

    line = lost_worker_message(reset, info, probe=closes_after_three_probes, patience=5, interval=0.01)
    assert line.startswith("error: lost worker 1 (127.0.0.1:1001), one of 2 workers;") and len(answered) == 4


def test_tools_refuse_a_bad_tf_config_in_one_line(monkeypatch, capsys):
    # In this process: TF_CONFIG is checked before any TF op or strategy.
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "worker", "index": 3}}')
    status = load_tool("train").main(["--config", str(REPO / "configs" / "shapes.yaml"), "--output", "unused"])
    assert status == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        'error: TF_CONFIG task index 3 is out of range: the cluster has 1 "worker" task(s), indices 0..0')


def test_a_worker_whose_peer_never_comes_stops_within_cluster_timeout(tmp_path):
    mine, missing = (f"127.0.0.1:{p}" for p in free_ports(2))
    env = script_env(TF_CONFIG=json.dumps({"cluster": {"worker": [mine, missing]},
                                           "task": {"type": "worker", "index": 0}}))
    start = time.time()
    proc = subprocess.run([sys.executable, str(REPO / "tools" / "train.py"), "--config",
                           str(REPO / "configs" / "shapes.yaml"), "--output", str(tmp_path / "run"),
                           "--set", "CLUSTER_TIMEOUT=5"], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9  # killed by its watchdog: TF's wait cannot be interrupted from Python
    last = proc.stderr.strip().splitlines()[-1]
    assert last == (f"error: worker 0 ({mine}) waited 5 s (CLUSTER_TIMEOUT) for the other workers; "
                    f"no answer from worker 1 ({missing})")
    assert time.time() - start < 100
    assert not (tmp_path / "run").exists()
