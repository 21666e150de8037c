"""The detector on two workers (processes on 127.0.0.1, MultiWorkerMirroredStrategy): a lost
worker, the resumed run, and its equivalence to one device.

One scenario, run once (4 worker processes): two workers of tools/train.py, worker 1 SIGKILLed
in epoch 2 of 3 (worker 0 must stop with one line), then both resume through tools/train.py's
own functions (detector_worker_script.py) and finish with validation and per-epoch AP. The
resumed run is the one checked for the strategy, the chief's writes, identical workers, and
the weights of one device trained on the same global batches.

Sampling is made exhaustive (every anchor and every RoI candidate is taken, so no random draw
depends on how a global batch is split over replicas) and BatchNorm frozen (trainable BN uses
each replica's own batch), so that two workers of 1 image and one device of 2 images must end
with the same weights.
"""
import dataclasses
import json
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml
from engine_helpers import HERE, REPO, free_ports, h5_arrays, script_env

from detection.config import Config
from detection.data.datasets import load_dataset
from detection.data.pipeline import make_dataset, shard_seed
from detection.engine.trainer import train
from detection.modeling.detector import Detector

TINY = {
    "_BASE_": str(REPO / "configs" / "shapes.yaml"), "NAME": "two_workers", "SHAPES_IMAGE_SIZE": 64,
    "SHAPES_TRAIN_COUNT": 24, "SHAPES_VAL_COUNT": 6, "IMAGE_MIN_DIM": 64, "IMAGE_MAX_DIM": 64,
    "TINY_BACKBONE_WIDTH": 8, "TOP_DOWN_PYRAMID_SIZE": 16, "FPN_CLASSIF_FC_LAYERS_SIZE": 32,
    "RPN_ANCHOR_SCALES": [8, 16, 24, 32, 48], "PRE_NMS_LIMIT": 200, "POST_NMS_ROIS_TRAINING": 32,
    "POST_NMS_ROIS_INFERENCE": 32, "MINI_MASK_SHAPE": [14, 14], "MASK_POOL_SIZE": 7, "MASK_SHAPE": [14, 14],
    "USE_MASK": True, "TRAIN_BN": False, "IMAGES_PER_GPU": 1, "LEARNING_RATE": 0.01, "LR_WARMUP_STEPS": 0,
    # Exhaustive sampling: 1023 anchors at 64 px; every proposal and GT box a RoI.
    "RPN_TRAIN_ANCHORS_PER_IMAGE": 1100, "TRAIN_ROIS_PER_IMAGE": 64, "ROI_POSITIVE_RATIO": 1.0,
    # A long heartbeat timeout for the resumed run: on a loaded machine (make test runs other test
    # processes beside these two workers) a worker's heartbeat can be late by more than the default 10 s.
    "HEARTBEAT_TIMEOUT": 60, "CLUSTER_TIMEOUT": 120,
}
# The scenario's run. Few steps: two workers sum in another order than one device, and that 1e-7
# weight difference can grow past the tolerance (at 10 steps an epoch it was 1e-7 after epoch 1,
# 4e-3 after epoch 2). Validation and AP make epoch 2 long enough for the kill to land in it.
EPOCHS, STEPS = 3, 2


def write_config(path, **changes):
    path.write_text(yaml.safe_dump({**TINY, **changes}))
    return path


def start_workers(argv_of, count=2):
    """Starts `count` worker processes; argv_of(index) gives each one's command line."""
    cluster = {"worker": [f"127.0.0.1:{p}" for p in free_ports(count)]}
    procs = []
    for index in range(count):
        env = script_env(TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}))
        procs.append(subprocess.Popen(argv_of(index), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True))
    return procs, cluster


def finish(procs, timeout):
    """(returncode, stdout, stderr) of each process; kills them all on a timeout."""
    outputs = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=timeout)
            outputs.append((proc.returncode, out, err))
    finally:
        for proc in procs:
            proc.kill()
    return outputs


def result_of(returncode, out, err):
    lines = [line for line in out.splitlines() if line.startswith("RESULT ")]
    assert returncode == 0 and lines, f"worker failed ({returncode}):\n{out[-2000:]}\n{err[-3000:]}"
    return json.loads(lines[-1][len("RESULT "):])


def log_epochs(path):
    """The epoch column of a run's log.csv (0-based, as Keras' CSVLogger writes it)."""
    lines = path.read_text().splitlines()
    column = lines[0].split(",").index("epoch")
    return [int(line.split(",")[column]) for line in lines[1:]]


@dataclasses.dataclass
class LostWorker:
    """Phase 1 of the scenario: what the surviving worker 0 did after worker 1 was killed."""

    returncode: int
    out: str
    err: str
    address: str  # worker 1's
    stopped_after: float  # seconds from the kill to worker 0's exit
    epoch_3_written: bool  # before the resume
    done: list  # log.csv's epochs before the resume


@pytest.fixture(scope="module")
def lost_and_resumed(tmp_path_factory):
    """Phase 1: two workers of tools/train.py; worker 1 is SIGKILLed in epoch 2 of 3. Phase 2: both
    restart with --resume through detector_worker_script.py and finish the run (the run the tests
    below check, with validation and per-epoch AP). Returns (tmp_path, config_path, LostWorker,
    phase 2's [(returncode, stdout, stderr)] of worker 0 and worker 1)."""
    tmp_path = tmp_path_factory.mktemp("lost_and_resumed")
    config_path = write_config(tmp_path / "tiny.yaml", EPOCHS=EPOCHS, STEPS_PER_EPOCH=STEPS, VALIDATION_STEPS=1,
                               EVAL_AP_IMAGES=2)
    run = tmp_path / "run"
    # HEARTBEAT_TIMEOUT 10 s (the default) in phase 1: the survivor must notice the loss well within 60 s.
    procs, cluster = start_workers(lambda index: [
        sys.executable, str(REPO / "tools" / "train.py"), "--config", str(config_path), "--output", str(run),
        "--set", "HEARTBEAT_TIMEOUT=10"])
    try:
        # Kill worker 1 in the middle of epoch 2: right after the chief checkpointed epoch 1.
        deadline = time.time() + 200
        while not (run / "checkpoints" / "epoch_0001").exists():
            assert time.time() < deadline and all(p.poll() is None for p in procs), \
                [p.communicate() for p in procs if p.poll() is not None]
            time.sleep(0.1)
        time.sleep(0.2)  # epoch 2 has begun; its steps, validation and AP take longer than this on any CPU
        procs[1].send_signal(signal.SIGKILL)
        killed_at = time.time()
        out, err = procs[0].communicate(timeout=60)  # HEARTBEAT_TIMEOUT 10 s: it must not hang
        stopped_after = time.time() - killed_at
    finally:
        for proc in procs:
            proc.kill()
    lost = LostWorker(procs[0].returncode, out, err, cluster["worker"][1], stopped_after,
                      (run / "checkpoints" / "epoch_0003").exists(), log_epochs(run / "log.csv"))

    # Phase 2: the same command plus --resume, with TINY's 60 s heartbeat timeout again (the resume
    # then warns of a changed config and goes on).
    procs, _ = start_workers(lambda index: [
        sys.executable, str(HERE / "detector_worker_script.py"), str(tmp_path / f"w{index}.weights.h5"),
        "--config", str(config_path), "--output", str(run), "--resume"])
    return tmp_path, config_path, lost, finish(procs, timeout=300)


def resumed_epoch(out):
    """N of a run's "Resumed from <checkpoint>: epoch N, optimizer step S" line."""
    match = re.search(r"^Resumed from .*: epoch (\d+), optimizer step (\d+)$", out, re.MULTILINE)
    assert match, out[-3000:]
    assert int(match.group(2)) == int(match.group(1)) * STEPS  # the learning-rate position comes back too
    return int(match.group(1))


def test_a_lost_worker_stops_the_other(lost_and_resumed):
    lost = lost_and_resumed[2]
    assert lost.returncode == 3, f"{lost.out[-2000:]}\n{lost.err[-3000:]}"
    lines = [line for line in lost.err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and f"lost worker 1 ({lost.address})" in lines[0], lost.err[-3000:]
    assert "--resume" in lines[0]
    assert lost.stopped_after < 60
    assert not lost.epoch_3_written
    assert lost.done in ([0], [0, 1])  # epoch 1 logged; epoch 2 at most (if it ended before the kill)


def test_both_workers_resume_from_the_last_complete_epoch(lost_and_resumed):
    tmp_path, _, lost, outputs = lost_and_resumed
    for returncode, out, err in outputs:
        assert returncode == 0, f"{out[-2000:]}\n{err[-3000:]}"
        assert resumed_epoch(out) == len(lost.done)
    run = tmp_path / "run"
    assert log_epochs(run / "log.csv") == [0, 1, 2]  # no epoch twice, none missing
    written = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert written == ["best", "epoch_0001", "epoch_0002", "epoch_0003", "last"]
    assert (run / "final.weights.h5").exists()


def test_two_workers_train_the_detector_and_only_the_chief_writes(lost_and_resumed):
    tmp_path, _, _, outputs = lost_and_resumed
    chief, other = (result_of(*o) for o in outputs)
    assert (chief["kind"], chief["workers"], chief["replicas"]) == ("MultiWorkerMirroredStrategy", 2, 2)
    assert (chief["is_chief"], other["is_chief"], other["worker_index"]) == (True, False, 1)
    assert chief["global_batch"] == other["global_batch"] == 2  # IMAGES_PER_GPU 1 x 2 replicas
    assert chief["epochs_done"] == other["epochs_done"] == EPOCHS
    assert chief["iterations"] == other["iterations"] == EPOCHS * STEPS  # before and after the resume
    assert chief["final"] == str(tmp_path / "run" / "final.weights.h5") and other["final"] is None
    # Each worker said how the data is split, and reads its own half of the 24 training images.
    for index, (_, out, _) in enumerate(outputs):
        split = [line for line in out.splitlines() if line.startswith("Input:")]
        assert split and f"worker {index} of 2 reads images {index}, {index + 2}, {index + 4}, ... (12 images" \
            in split[0], out
        assert "global batch 2" in split[0]


def test_both_workers_end_with_identical_weights_and_metrics(lost_and_resumed):
    tmp_path, _, _, outputs = lost_and_resumed
    chief, other = (result_of(*o) for o in outputs)
    a, b = h5_arrays(tmp_path / "w0.weights.h5"), h5_arrays(tmp_path / "w1.weights.h5")
    assert a.keys() == b.keys() and len(a) > 50
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    # Validation loss is one figure for both; COCO AP is computed on the chief and logged by both.
    for key in ("loss", "val_loss", "val_bbox_AP", "val_segm_AP", "rpn_class_loss"):
        assert key in chief["history"], sorted(chief["history"])
        np.testing.assert_allclose(chief["history"][key], other["history"][key], rtol=1e-6, err_msg=key)


def test_two_workers_equal_one_device_on_the_same_global_batches(lost_and_resumed, tmp_path):
    run_dir, config_path, _, outputs = lost_and_resumed
    resumed_at = resumed_epoch(outputs[0][1])
    config = Config.from_yaml(config_path).replace(IMAGES_PER_GPU=2, VALIDATION_STEPS=0, EVAL_AP_IMAGES=0)
    train_set = load_dataset(config, "train")
    import tensorflow as tf

    # Global batch k = worker 0's k-th image of its shard, then worker 1's, as the 2 workers read them.
    shards = [make_dataset(train_set.shard(i, 2), config, training=True, batch_size=1,
                           seed=shard_seed(config.SEED, i)) for i in range(2)]
    batches = tf.data.Dataset.zip(tuple(shards)).map(
        lambda a, b: {key: tf.concat([a[key], b[key]], axis=0) for key in a})
    # One device, uninterrupted. The resumed workers restored weights, optimizer state, schedule
    # position and their input streams' positions: ending on this run's weights shows all four.
    assert resumed_at >= 1
    reference = train(lambda c: Detector(c), config, batches, None, tmp_path / "one_device", verbose=0)
    assert reference.model.optimizer.iterations.numpy() == EPOCHS * STEPS
    ref, workers = h5_arrays(reference.final_weights), h5_arrays(run_dir / "w0.weights.h5")
    initial = h5_arrays(run_dir / "run" / "checkpoints" / "epoch_0001" / "model.weights.h5")
    assert ref.keys() == workers.keys()
    moved = max(float(np.abs(ref[n] - initial[n]).max()) for n in ref if n in initial and ref[n].dtype.kind == "f")
    assert moved > 1e-4
    for name in ref:
        np.testing.assert_allclose(workers[name], ref[name], rtol=1e-4, atol=1e-5, err_msg=name)
