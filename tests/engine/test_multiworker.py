"""Two worker processes on 127.0.0.1 train the toy model under MultiWorkerMirroredStrategy and agree
(the engine alone, fast; test_multiworker_detector.py runs the detector through tools/train.py)."""
import json
import subprocess
import sys

import numpy as np
from engine_helpers import HERE, free_ports, h5_arrays, script_env
from engine_toy import build_toy_model, toy_dataset

from detection.config import Config
from detection.engine.trainer import train

# As in multiworker_script.py; the one-device reference takes the whole global batch.
CONFIG = Config({"IMAGES_PER_GPU": 2, "EPOCHS": 2, "STEPS_PER_EPOCH": 3, "VALIDATION_STEPS": 0,
                 "LR_WARMUP_STEPS": 2, "LEARNING_RATE": 0.05})


def test_two_workers_finish_with_identical_weights(tmp_path):
    cluster = {"worker": [f"127.0.0.1:{p}" for p in free_ports(2)]}
    procs = []
    for index in range(2):
        env = script_env(TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}))
        procs.append(subprocess.Popen(
            [sys.executable, str(HERE / "multiworker_script.py"), tmp_path / "run", tmp_path / f"w{index}.weights.h5"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    results = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=150)
            lines = [line for line in out.splitlines() if line.startswith("RESULT ")]
            assert proc.returncode == 0 and lines, f"worker failed:\n{out[-2000:]}\n{err[-3000:]}"
            results.append(json.loads(lines[-1][len("RESULT "):]))
    finally:
        for proc in procs:
            proc.kill()

    chief, other = results
    assert (chief["kind"], chief["workers"], chief["replicas"]) == ("MultiWorkerMirroredStrategy", 2, 2)
    assert (chief["is_chief"], other["is_chief"]) == (True, False)
    assert chief["global_batch"] == 4  # IMAGES_PER_GPU 2 x 2 replicas
    assert chief["images_per_replica"] == other["images_per_replica"] == [2.0, 2.0]  # each its half
    assert chief["epochs_done"] == other["epochs_done"] == 2
    assert chief["iterations"] == other["iterations"] == 6
    # Only the chief writes the run folder.
    assert chief["final"] == str(tmp_path / "run" / "final.weights.h5") and other["final"] is None
    written = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert written == ["best", "epoch_0001", "epoch_0002", "last"]

    a, b = h5_arrays(tmp_path / "w0.weights.h5"), h5_arrays(tmp_path / "w1.weights.h5")
    assert a.keys() == b.keys() and len(a) > 10
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    initial = h5_arrays(tmp_path / "run" / "checkpoints" / "epoch_0001" / "model.weights.h5")
    moved = max(np.abs(a[n] - initial[n]).max() for n in a if n.startswith("layers/") and a[n].dtype.kind == "f")
    assert moved > 1e-4  # training happened after epoch 1

    # Same as one device on the same global batches: each worker got its half of each batch
    # and the loss was scaled over the 2 replicas of the 2 workers.
    reference = train(lambda c: build_toy_model(c, track_batch=True), CONFIG.replace(IMAGES_PER_GPU=4),
                      lambda c: toy_dataset(24, c.BATCH_SIZE), None, tmp_path / "reference", verbose=0)
    ref = h5_arrays(reference.final_weights)
    assert ref.keys() == a.keys()
    for name in a:
        np.testing.assert_allclose(a[name], ref[name], atol=1e-6, err_msg=name)
