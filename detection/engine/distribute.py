"""The tf.distribute strategy for a run, from --gpus, --cpu-replicas or TF_CONFIG.

    TF_CONFIG set          -> MultiWorkerMirroredStrategy (all workers; --gpus N limits each worker's GPUs)
    --gpus N               -> MirroredStrategy over /gpu:0..N-1 (error if fewer are visible)
    --cpu-replicas N       -> MirroredStrategy over N logical CPU devices (multi-replica code without GPUs)
    neither                -> the default strategy on one device

The global batch is IMAGES_PER_GPU x strategy.num_replicas_in_sync (replicas of all workers).
Input: ``distribute_input`` hands ``model.fit`` what the strategy needs. A ``ShardedInput``
(what the detector uses) is built once per worker by ``distribute_datasets_from_function``:
worker w reads only its shard of the records and yields per-replica batches of IMAGES_PER_GPU
images, so every replica's batch has a static size (``batch_slice`` and the target layers need
it; Keras' own re-batching across workers loses it). Any other dataset is a dataset of global
batches that Keras splits itself (fine for models without a static batch, on one worker).
tests/engine/test_distributed_equivalence.py and test_multiworker_detector.py check that a step
on several replicas (and workers) equals a step on one device over the same global batch.

Faults (MultiWorkerMirroredStrategy): a worker waits at most CLUSTER_TIMEOUT seconds for the
others at start, then stops with one line naming the addresses that did not answer; TF's
coordination service notices a lost worker by its missed heartbeats (HEARTBEAT_TIMEOUT seconds)
and the survivors' collectives fail; tools/train.py turns that into one line naming the worker.

Logical CPU devices and visible GPUs can only be configured before TensorFlow initialises its
devices (before any op runs): call make_strategy first in a process.
"""
import dataclasses
import json
import os
import re
import time

import tensorflow as tf

from detection.engine.cluster_watchdog import Watchdog, answers


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
    worker_index: int = 0  # this worker's place among the workers (chief first), 0..workers-1
    peers: tuple = ()  # (job, task index, "host:port") of every worker, in worker_index order (multi-worker only)

    def describe(self):
        where = f"{self.workers} workers, " if self.workers > 1 else ""
        return f"{self.kind} on {where}{', '.join(self.devices)} ({self.replicas} replica{'s' * (self.replicas > 1)})"


def make_strategy(gpus=None, cpu_replicas=None, cluster_timeout=600, heartbeat_timeout=10):
    """Returns (strategy, StrategyInfo). gpus, cpu_replicas: int or None (see module docstring).

    cluster_timeout, heartbeat_timeout: seconds (config CLUSTER_TIMEOUT, HEARTBEAT_TIMEOUT), used
    with TF_CONFIG only: how long to wait for the other workers at start, and how long a silent
    worker may go before it counts as lost.
    """
    if gpus is not None and cpu_replicas is not None:
        raise DeviceError("give --gpus or --cpu-replicas, not both")
    tf_config = os.environ.get("TF_CONFIG")
    if tf_config:
        cluster = parse_tf_config(tf_config)
        if cpu_replicas is not None:
            raise DeviceError("--cpu-replicas is not supported with TF_CONFIG (multi-worker)")
        if gpus is not None:
            _use_gpus(gpus)
        _configure_coordination(cluster, heartbeat_timeout)
        tasks = [f"{cluster.label(i)}={address}" for i, address in enumerate(cluster.addresses)]
        with Watchdog(cluster_timeout, tasks[cluster.index], tasks[:cluster.index] + tasks[cluster.index + 1:]):
            strategy = _MultiWorkerMirroredStrategy()
            # The first collective is the barrier: every worker is up and reachable.
            strategy.reduce("SUM", strategy.run(lambda: tf.constant(1.0)), axis=None)
        peers = tuple((job, task, address) for (job, task), address in zip(cluster.jobs, cluster.addresses))
        info = StrategyInfo("MultiWorkerMirroredStrategy", _short_devices(strategy), strategy.num_replicas_in_sync,
                            len(cluster.addresses), cluster.index == 0, cluster.index, peers)
        return strategy, info
    if gpus is not None or cpu_replicas is not None:
        devices = [f"/gpu:{i}" for i in range(_use_gpus(gpus))] if gpus is not None else _split_cpu(cpu_replicas)
        strategy = _MirroredStrategy(devices)
        return strategy, StrategyInfo("MirroredStrategy", _short_devices(strategy), strategy.num_replicas_in_sync, 1,
                                      True)
    strategy = tf.distribute.get_strategy()
    device = "/gpu:0" if tf.config.list_physical_devices("GPU") else "/cpu:0"
    return strategy, StrategyInfo("default strategy", (device,), 1, 1, True)


@dataclasses.dataclass(frozen=True)
class ClusterSpec:
    """TF_CONFIG, checked. addresses: "host:port" of every worker, the chief (if any) first, in
    MultiWorkerMirroredStrategy's order (a worker's position is its input pipeline id).
    jobs: (job, task index) of each address. index: this process's position."""

    addresses: tuple
    jobs: tuple
    index: int

    def label(self, position):
        """"worker 1", "chief 0": the task at ``position``."""
        job, task = self.jobs[position]
        return f"{job} {task}"

    def name(self, position):
        return f"{self.label(position)} ({self.addresses[position]})"


def parse_tf_config(text):
    """TF_CONFIG's JSON -> ClusterSpec; DeviceError in one line when it cannot describe a
    MultiWorkerMirroredStrategy cluster (not JSON, no worker, unknown task type, index out of range)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise DeviceError(f"TF_CONFIG is not JSON ({e.msg} at character {e.pos}): {text[:80]!r}") from None
    if not isinstance(value, dict) or not isinstance(value.get("cluster"), dict):
        raise DeviceError('TF_CONFIG needs a "cluster" object, e.g. {"cluster": {"worker": ["host1:port", '
                          '"host2:port"]}, "task": {"type": "worker", "index": 0}}')
    cluster = value["cluster"]
    unsupported = sorted(set(cluster) - {"chief", "worker"})
    if unsupported:
        raise DeviceError(f"TF_CONFIG cluster has {', '.join(unsupported)}: MultiWorkerMirroredStrategy takes only "
                          '"chief" and "worker" jobs')
    addresses, jobs = [], []
    for job in ("chief", "worker"):
        entries = cluster.get(job, [])
        if not isinstance(entries, list) or not all(isinstance(a, str) and ":" in a for a in entries):
            raise DeviceError(f'TF_CONFIG cluster "{job}" must be a list of "host:port" strings, got {entries!r}')
        if job == "chief" and len(entries) > 1:
            raise DeviceError(f'TF_CONFIG cluster names {len(entries)} chiefs; at most one')
        addresses += entries
        jobs += [(job, i) for i in range(len(entries))]
    if not any(job == "worker" for job, _ in jobs):
        raise DeviceError('TF_CONFIG cluster names no "worker"')
    task = value.get("task")
    if not isinstance(task, dict) or task.get("type") not in ("chief", "worker"):
        raise DeviceError(f'TF_CONFIG "task" must be {{"type": "chief" or "worker", "index": N}}, got {task!r}')
    index = task.get("index", 0)
    count = len(cluster.get(task["type"], []))
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < count:
        raise DeviceError(f'TF_CONFIG task index {index!r} is out of range: the cluster has {count} '
                          f'"{task["type"]}" task(s), indices 0..{count - 1}')
    return ClusterSpec(tuple(addresses), tuple(jobs), jobs.index((task["type"], index)))


def _configure_coordination(cluster, heartbeat_timeout):
    """TF's coordination service, as MultiWorkerMirroredStrategy would configure it, with our heartbeat
    timeout: a worker silent that long is reported to the others, whose collectives then fail."""
    from tensorflow.compiler.xla.tsl.protobuf import coordination_config_pb2
    from tensorflow.python.eager import context

    if context.context().coordination_service is not None:
        return  # configured already in this process (a second strategy)
    job_sizes = {}
    for job, _ in cluster.jobs:
        job_sizes[job] = job_sizes.get(job, 0) + 1
    leader_job = cluster.jobs[0][0]
    context.context().configure_coordination_service(
        service_type="standalone", service_leader=f"/job:{leader_job}/replica:0/task:0",
        heartbeat_timeout_in_ms=int(heartbeat_timeout * 1000),
        coordinated_jobs=[coordination_config_pb2.CoordinatedJob(name=job, num_tasks=n)
                          for job, n in job_sizes.items()])


_UNHEALTHY_TASK = re.compile(r"/job:(\w+)/replica:\d+/task:(\d+)")


def lost_worker_message(error, info, probe=answers, patience=3.0, interval=0.1):
    """One line for a collective that failed because a worker was lost (error: the TF
    UnavailableError or similar that fit raised). Names the worker TF reports as unhealthy,
    else the workers whose address no longer accepts a connection (``probe``), asked again
    every ``interval`` seconds for up to ``patience`` seconds: a SIGKILLed worker's port went
    on accepting connections for about 0.1 s after its peer saw the connection reset (the
    kernel frees a large process's memory before it closes its sockets)."""
    text = str(error)
    marker = text.find("unhealthy")
    found = _UNHEALTHY_TASK.search(text, marker) if marker >= 0 else None
    advice = "restart every worker with --resume to continue from the last checkpoint"
    if found is not None:
        lost = [(job, task, address) for job, task, address in info.peers
                if (job, task) == (found.group(1), int(found.group(2)))] or [(found.group(1), found.group(2), "?")]
    else:
        me = info.peers[info.worker_index][2] if info.peers else None
        others = [peer for peer in info.peers if peer[2] != me]
        deadline = time.monotonic() + patience
        while True:
            lost = [(job, task, address) for job, task, address in others if not probe(address)]
            if lost or time.monotonic() >= deadline:
                break
            time.sleep(interval)
    if not lost:
        first = " ".join(line.strip() for line in text.splitlines() if line.strip())[:200]
        return f"error: the cluster failed, every worker still answers ({first}); {advice}"
    names = ", ".join(f"{job} {task} ({address})" for job, task, address in lost)
    return f"error: lost {names}, one of {info.workers} workers; {advice}"


def is_cluster_failure(error):
    """Whether ``error`` (raised by fit under MultiWorkerMirroredStrategy) is a lost peer or an
    aborted collective, rather than a fault of this worker's own."""
    return isinstance(error, (tf.errors.UnavailableError, tf.errors.AbortedError, tf.errors.DeadlineExceededError,
                              tf.errors.CancelledError, tf.errors.InternalError)) and any(
        word in str(error).lower() for word in ("collective", "heartbeat", "coordination"))


class _NestReduce:
    """reduce() that takes what Keras 3.15 fit hands a multi-replica strategy.

    Two calls of Keras fail with TF's reduce (tensorflow/tensorflow#72388):
    - the first input batch, a dict of per-replica values, is reduced before building
      (TensorFlowTrainer._maybe_symbolic_build); TF's reduce takes no nest ("TODO: support
      `value` being a nest"). Here a nest is reduced leaf by leaf.
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


class _MultiWorkerMirroredStrategy(_NestReduce, tf.distribute.MultiWorkerMirroredStrategy):
    pass


class _MirroredStrategy(_NestReduce, tf.distribute.MirroredStrategy):
    pass


@dataclasses.dataclass(frozen=True)
class InputShard:
    """What one input pipeline (one per worker) reads and yields.

    index, count: this pipeline's shard of the records and the number of shards (workers).
    batch_size: images per batch it yields: IMAGES_PER_GPU, one replica's batch.
    start: images of its stream already read by the steps before this fit (a later stage, a
        resumed run): the stream starts there, so that each step reads what it would have
        read in one uninterrupted run.
    """

    index: int
    count: int
    batch_size: int
    start: int = 0


@dataclasses.dataclass(frozen=True)
class ShardedInput:
    """A dataset made per input pipeline: ``make(config, shard)`` returns a tf.data.Dataset of
    per-replica batches (``shard.batch_size`` images, static) of shard ``shard.index`` of
    ``shard.count`` of the records."""

    make: object


def distribute_input(strategy, source, config, start_step=0):
    """What ``model.fit`` gets for ``source`` under ``strategy``.

    source: a ShardedInput; a tf.data.Dataset of global batches (config.BATCH_SIZE images); or a
    callable config -> such a dataset. A ShardedInput on one replica is made as shard 0 of 1 with
    the global batch; on several replicas ``distribute_datasets_from_function`` makes it once per
    worker, with IMAGES_PER_GPU images per batch, and each local replica takes its own batches.
    start_step: training steps taken before this fit; a ShardedInput's streams start after the
    images those steps read (InputShard.start). A dataset or a callable is read from its start.
    """
    if not isinstance(source, ShardedInput):
        return source(config) if callable(source) else source
    if strategy.num_replicas_in_sync == 1:
        return source.make(config, InputShard(0, 1, config.BATCH_SIZE, start_step * config.BATCH_SIZE))

    def per_pipeline(context):
        pipelines = context.num_input_pipelines
        return source.make(config, InputShard(context.input_pipeline_id, pipelines,
                                              context.get_per_replica_batch_size(config.BATCH_SIZE),
                                              start_step * config.BATCH_SIZE // pipelines))

    return strategy.distribute_datasets_from_function(per_pipeline)


def broadcast_from_chief(strategy, info, values):
    """The chief's ``values`` (a list of floats) on every worker, through one all-reduce.

    Every worker must call it at the same point (e.g. a callback's on_epoch_end); the others'
    ``values`` only give the length. Used for figures computed once, on the chief (COCO AP)."""
    local = tf.constant(values if info.is_chief else [0.0] * len(values), tf.float32)

    def first_replica_only():
        first = tf.equal(tf.distribute.get_replica_context().replica_id_in_sync_group, 0)
        return tf.where(first, local, tf.zeros_like(local))

    return [float(v) for v in strategy.reduce("SUM", strategy.run(first_replica_only), axis=None).numpy()]


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


def _short_devices(strategy):
    return tuple(_short_name(d) for d in strategy.extended.worker_devices)
