"""The tf.distribute strategy for a run, from --gpus, --cpu-replicas or TF_CONFIG.

    TF_CONFIG set          -> MultiWorkerMirroredStrategy (all workers; --gpus N limits each worker's GPUs)
    --gpus N               -> MirroredStrategy over /gpu:0..N-1 (error if fewer are visible)
    --cpu-replicas N       -> MirroredStrategy over N logical CPU devices (multi-replica code without GPUs)
    neither                -> the default strategy on one device

The global batch is IMAGES_PER_GPU x strategy.num_replicas_in_sync (replicas of all workers).
Hand `model.fit` a dataset of global batches with the model built in `strategy.scope()`: Keras 3
fit distributes it itself (experimental_distribute_dataset), splitting each batch over the
replicas; tests/engine/test_distributed_equivalence.py checks that one step on 2 replicas equals
one step on one device.

Logical CPU devices and visible GPUs can only be configured before TensorFlow initialises its
devices (before any op runs): call make_strategy first in a process.
"""
import dataclasses
import json
import os

import tensorflow as tf


class DeviceError(RuntimeError):
    """The devices asked for do not exist, or were asked for too late."""


@dataclasses.dataclass(frozen=True)
class StrategyInfo:
    """What a strategy runs on. devices: this worker's replica devices."""

    kind: str
    devices: tuple
    replicas: int  # replicas in sync, over all workers
    workers: int
    is_chief: bool

    def describe(self):
        where = f"{self.workers} workers, " if self.workers > 1 else ""
        return f"{self.kind} on {where}{', '.join(self.devices)} ({self.replicas} replica{'s' * (self.replicas > 1)})"


def make_strategy(gpus=None, cpu_replicas=None):
    """Returns (strategy, StrategyInfo). gpus, cpu_replicas: int or None (see module docstring)."""
    if gpus is not None and cpu_replicas is not None:
        raise DeviceError("give --gpus or --cpu-replicas, not both")
    tf_config = os.environ.get("TF_CONFIG")
    if tf_config:
        if cpu_replicas is not None:
            raise DeviceError("--cpu-replicas is not supported with TF_CONFIG (multi-worker)")
        if gpus is not None:
            _use_gpus(gpus)
        strategy = _MultiWorkerMirroredStrategy()
        return strategy, _info("MultiWorkerMirroredStrategy", strategy, json.loads(tf_config))
    if gpus is not None:
        devices = [f"/gpu:{i}" for i in range(_use_gpus(gpus))]
        strategy = tf.distribute.MirroredStrategy(devices)
        return strategy, _info("MirroredStrategy", strategy)
    if cpu_replicas is not None:
        devices = _split_cpu(cpu_replicas)
        strategy = tf.distribute.MirroredStrategy(devices)
        return strategy, _info("MirroredStrategy", strategy)
    strategy = tf.distribute.get_strategy()
    device = "/gpu:0" if tf.config.list_physical_devices("GPU") else "/cpu:0"
    return strategy, StrategyInfo("default strategy", (device,), 1, 1, True)


class _MultiWorkerMirroredStrategy(tf.distribute.MultiWorkerMirroredStrategy):
    """MultiWorkerMirroredStrategy whose reduce() takes what Keras 3.15 fit hands it.

    Two calls of Keras fail across workers with TF's reduce (tensorflow/tensorflow#72388):
    - the first input batch, a dict, is reduced before building
      (TensorFlowTrainer._maybe_symbolic_build); TF's reduce takes no nest ("TODO: support
      `value` being a nest"): "Attempt to convert a value ({'image': PerReplica...})".
      Here a nest is reduced leaf by leaf.
    - each step's scalar metric results are reduced with ("MEAN", axis=0)
      (reduce_per_replica): "Invalid reduction dimension 0 for input with 0 dimensions".
      On one worker Keras means such scalars over replicas; here the same: axis None.
    """

    def reduce(self, reduce_op, value, axis=None):
        if not isinstance(value, tf.distribute.DistributedValues) and tf.nest.is_nested(value):
            parent = super()
            return tf.nest.map_structure(lambda v: parent.reduce(reduce_op, v, axis), value)
        if axis is not None and all(t.shape.rank == 0 for t in self.experimental_local_results(value)):
            axis = None
        return super().reduce(reduce_op, value, axis)


def _use_gpus(count):
    """Makes the first `count` GPUs visible; returns count."""
    if count < 1:
        raise DeviceError(f"--gpus must be >= 1, got {count}")
    visible = tf.config.list_physical_devices("GPU")
    if len(visible) < count:
        names = ", ".join(d.name for d in visible) or "none"
        raise DeviceError(f"--gpus {count} asked for {count} GPUs; visible GPUs: {len(visible)} ({names})")
    try:
        tf.config.set_visible_devices(visible[:count], "GPU")
    except RuntimeError as e:
        raise DeviceError(f"--gpus must be applied before TensorFlow initialises its devices: {e}") from None
    return count


def _split_cpu(count):
    """Splits the CPU into `count` logical devices; returns their names."""
    if count < 1:
        raise DeviceError(f"--cpu-replicas must be >= 1, got {count}")
    cpu = tf.config.list_physical_devices("CPU")[0]
    wanted = [tf.config.LogicalDeviceConfiguration() for _ in range(count)]
    try:
        tf.config.set_logical_device_configuration(cpu, wanted)
    except RuntimeError:
        # Already initialised: fine if an earlier call made the same split (tests, notebooks).
        if len(tf.config.list_logical_devices("CPU")) != count:
            raise DeviceError(
                f"--cpu-replicas {count}: TensorFlow already initialised its devices with "
                f"{len(tf.config.list_logical_devices('CPU'))} CPU device(s); call make_strategy "
                "before any TensorFlow op") from None
    return [f"/cpu:{i}" for i in range(count)]


def _short_name(device):
    """"/job:localhost/replica:0/task:0/device:CPU:1" -> "/cpu:1"; other jobs keep job and task."""
    spec = tf.DeviceSpec.from_string(device)
    short = f"/{spec.device_type.lower()}:{spec.device_index}"
    return short if spec.job in (None, "localhost") else f"/job:{spec.job}/task:{spec.task}{short}"


def _info(kind, strategy, tf_config=None):
    devices = tuple(_short_name(d) for d in strategy.extended.worker_devices)
    workers, is_chief = 1, True
    if tf_config:
        cluster = tf_config.get("cluster", {})
        workers = sum(len(cluster.get(k, [])) for k in ("chief", "worker"))
        task = tf_config.get("task", {})
        is_chief = task.get("type") == "chief" or (
            task.get("type") == "worker" and task.get("index") == 0 and "chief" not in cluster)
    return StrategyInfo(kind, devices, strategy.num_replicas_in_sync, workers, is_chief)
