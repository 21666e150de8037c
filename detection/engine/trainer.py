"""train(): builds, compiles and fits a model whose losses come from add_loss, with stages,
checkpoints, resume and logs. Generic over the model; the detector plugs in as model_builder.

    strategy, info = make_strategy(gpus=..., cpu_replicas=...)      # first, before any TF op
    result = train(Detector, config, make_train_dataset, make_val_dataset, "runs/shapes",
                   strategy=strategy, strategy_info=info, resume=True)

Output folder::

    config.yaml          the resolved config (GPU_COUNT = replicas in sync)
    log.csv              one row per epoch: every metric, its val_ twin, learning_rate
    logs/                TensorBoard
    checkpoints/         see checkpoints.py (epoch_NNNN/, last, best)
    final.weights.h5     after the last epoch (not written if the run stopped on a NaN)

model_builder(config) is called inside strategy.scope() under the MIXED_PRECISION dtype
policy and returns a keras.Model, or an object with `.training_model` (the model to fit)
and optionally `save_weights(path)` / `load_weights(path)` (then final.weights.h5 and
--weights files go through those, e.g. the detector's inference-model structure).
Datasets are distribute.ShardedInput (made once per worker, per-replica batches of its shard
of the records: what the detector needs, see distribute.distribute_input), tf.data.Datasets of
global batches of input dicts (no labels), or callables config -> such a dataset; callables are
called after GPU_COUNT is set to the replica count, so that config.BATCH_SIZE is the global
batch they must yield. The training input is made for each stage's fit; a ShardedInput's
streams then start after the images of the steps before (a later stage or a resumed run reads
on as one uninterrupted run would), a dataset or a callable's from its start.
"""
import dataclasses
import os

import keras
import tensorflow as tf

from detection.engine import callbacks as cb
from detection.engine import checkpoints
from detection.engine.determinism import OpDeterminism, wants_op_determinism
from detection.engine.distribute import StrategyInfo, distribute_input
from detection.engine.layer_selection import plan_stages, set_trainable, stage_variables
from detection.engine.optimizer import dtype_policy_name, make_optimizer
from detection.engine.schedules import schedule_from_config


@dataclasses.dataclass
class TrainResult:
    """What a run did. stopped: "completed", "early_stopping" or "non_finite"."""

    model: keras.Model
    built: object  # what model_builder returned
    config: object
    initial_epoch: int
    epochs_done: int
    stopped: str
    message: str
    last_checkpoint: str | None
    final_weights: str | None
    history: dict


class _DtypePolicy:
    """Sets the global Keras dtype policy while the model is built; restores it after."""

    def __init__(self, name):
        self.name = name

    def __enter__(self):
        self.previous = keras.config.dtype_policy()
        keras.config.set_dtype_policy(self.name)

    def __exit__(self, *exc):
        keras.config.set_dtype_policy(self.previous)


def _load_initial_weights(built, model, weights, exclude=()):
    """weights: a checkpoint directory (saved from the training model) or a weights file.

    A file goes through built.load_weights when the builder returned a wrapper that has it
    (the detector's: its .weights.h5 files have the inference-model structure, and legacy
    .h5 files load by layer name, without the ``exclude`` layers), else model.load_weights.
    """
    if os.path.isdir(weights) or built is model or not hasattr(built, "load_weights"):
        if exclude:
            raise ValueError("--exclude applies to legacy .h5 weights files, not to checkpoints")
        checkpoints.load_model_weights(model, weights)
    elif exclude:
        built.load_weights(weights, exclude=exclude)
    else:
        built.load_weights(weights)


def train(model_builder, config, train_dataset, val_dataset=None, output_dir="runs/train", **options):
    """Trains per config (Training section) and returns a TrainResult; ``options`` are
    _train's. Under DETERMINISTIC_OPS (see determinism.py) TF op determinism is on for the run
    and restored after it."""
    has_gpu = bool(tf.config.list_logical_devices("GPU"))
    with OpDeterminism(wants_op_determinism(config, has_gpu)):
        return _train(model_builder, config, train_dataset, val_dataset, output_dir, **options)


def _train(model_builder, config, train_dataset, val_dataset=None, output_dir="runs/train",
           strategy=None, strategy_info=None, resume=False, weights=None, weights_exclude=(), seed=None, verbose=1,
           debug=False, keep_checkpoints=None, jit_compile=False, callbacks=()):
    """Trains per config (Training section) and returns a TrainResult.

    resume: continue from find_last(output_dir) (weights, optimizer state, learning-rate
      position, plateau multiplier) at the epoch after it; starts fresh if there is none.
    weights: initial weights only, a .weights.h5 file, a legacy Keras 2 .h5 (loaded by layer
      name, without the ``weights_exclude`` layers) or a checkpoint directory (tools resolve
      "--weights last" with checkpoints.find_last); ignored when resuming from a checkpoint.
      A folder that already holds checkpoints needs resume=True.
    seed: defaults to config.SEED. debug: tf.debugging.enable_check_numerics().
    keep_checkpoints: newest checkpoints kept (None: all; `last` and `best` always kept).
    jit_compile: off by default: crop_and_resize has no XLA kernel (GUIDE section 4), and
      Keras' "auto" turns XLA on whenever a GPU is visible.
    callbacks: extra Keras callbacks, run before the engine's own (so their epoch logs are logged).
    """
    run = _start(config, output_dir, strategy, strategy_info, seed, debug)
    existing = _prepare_output(run, resume)
    _build(run, model_builder, None if existing else weights, weights_exclude)
    if existing:
        _resume(run, existing, jit_compile)
    has_val = val_dataset is not None and run.config.VALIDATION_STEPS > 0
    all_callbacks = _callbacks(run, has_val, keep_checkpoints, callbacks)
    val_ds = distribute_input(run.strategy, val_dataset, run.config) if has_val else None
    history, epochs_done, stopped, message = _fit_stages(run, train_dataset, val_ds, all_callbacks, verbose,
                                                         jit_compile)
    return _finish(run, history, epochs_done, stopped, message)


@dataclasses.dataclass
class _Run:
    """What the steps of one run share, filled in as they go."""

    config: object
    strategy: object
    info: StrategyInfo
    output_dir: str
    plan: list
    built: object = None
    model: keras.Model = None
    schedule: object = None
    optimizer: object = None
    stage_index: int = 0
    initial_epoch: int = 0
    best: tuple = None
    guard: object = None
    early: object = None


def _start(config, output_dir, strategy, strategy_info, seed, debug):
    """The strategy, the config with GPU_COUNT = its replicas, the seed; prints the run's summary line."""
    strategy = strategy or tf.distribute.get_strategy()
    info = strategy_info or StrategyInfo("default strategy", ("/cpu:0",), strategy.num_replicas_in_sync, 1, True)
    config = config.replace(GPU_COUNT=strategy.num_replicas_in_sync)
    keras.utils.set_random_seed(config.SEED if seed is None else seed)
    if debug:
        tf.debugging.enable_check_numerics()
    print(cb.run_summary_line(info, config, config.STEPS_PER_EPOCH, output_dir), flush=True)
    return _Run(config, strategy, info, output_dir, plan_stages(config), guard=cb.NonFiniteGuard())


def _prepare_output(run, resume):
    """The checkpoint to resume from (None to start fresh); writes config.yaml (chief only).
    Raises FileExistsError for a folder with checkpoints when not resuming."""
    existing = checkpoints.find_last(run.output_dir)
    if existing and not resume:
        raise FileExistsError(f"{run.output_dir} already holds checkpoints (newest {existing}); "
                              "pass resume=True (--resume) or choose another output folder")
    if run.info.is_chief:
        os.makedirs(run.output_dir, exist_ok=True)
        checkpoints.remove_stale_temporaries(run.output_dir)
        run.config.dump(os.path.join(run.output_dir, "config.yaml"))
    return existing


def _build(run, model_builder, weights, weights_exclude):
    """Builds the model, its schedule and optimizer under the strategy and dtype policy, and
    loads the initial ``weights`` (None: none)."""
    config = run.config
    with _DtypePolicy(dtype_policy_name(config.MIXED_PRECISION)), run.strategy.scope():
        run.built = model_builder(config)
        run.model = getattr(run.built, "training_model", run.built)
        run.schedule = schedule_from_config(config, config.STEPS_PER_EPOCH, run.plan[-1].end)
        run.optimizer = make_optimizer(config, run.schedule)
        if weights:
            _load_initial_weights(run.built, run.model, weights, weights_exclude)
            print(f"Initial weights: {weights}", flush=True)
        # Built once over every stage's variables: Keras refuses variables an optimizer was not built with.
        run.optimizer.build(stage_variables(run.model, run.plan))


def _resume(run, existing, jit_compile):
    """Restores checkpoint ``existing``: weights, optimizer, schedule, epoch, best, and its stage."""
    run.stage_index = next((i for i, s in enumerate(run.plan) if s.end > checkpoints.read_state(existing)["epoch"]),
                           len(run.plan) - 1)
    _compile_stage(run.model, run.optimizer, run.plan[run.stage_index], run.strategy, jit_compile)
    state = checkpoints.restore_checkpoint(existing, run.model, run.schedule)
    run.initial_epoch = state["epoch"]
    run.best = (state["best"]["value"], state["best"]["epoch"]) if state.get("best") else None
    this_hash = checkpoints.config_hash(run.config)
    if state.get("config_hash") != this_hash:
        print(f"Warning: resuming {existing} under a changed config "
              f"(hash {state.get('config_hash')} -> {this_hash})", flush=True)
    print(f"Resumed from {existing}: epoch {run.initial_epoch}, optimizer step "
          f"{int(run.optimizer.iterations.numpy())}", flush=True)


def _callbacks(run, has_val, keep_checkpoints, callbacks):
    """The extra ``callbacks`` then the engine's (checkpoint on MONITOR, or on its training
    twin without validation); sets run.early."""
    config = run.config
    monitor = config.MONITOR
    if monitor.startswith("val_") and not has_val:
        monitor = monitor[len("val_"):]
        print(f"No validation: MONITOR {config.MONITOR} -> {monitor}", flush=True)
    checkpoint = cb.EpochCheckpoint(run.output_dir, monitor, checkpoints.config_hash(config), schedule=run.schedule,
                                    guard=run.guard, keep=keep_checkpoints, best=run.best, write=run.info.is_chief)
    engine_callbacks, run.early = _engine_callbacks(config, run.output_dir, run.info, monitor, run.schedule, run.guard,
                                                    checkpoint, run.initial_epoch)
    # Extra callbacks first: what they add to an epoch's logs (e.g. val_bbox_AP) is then
    # seen by the checkpoint's monitor, the CSV log and TensorBoard.
    return list(callbacks) + engine_callbacks


def _fit_stages(run, train_dataset, val_ds, all_callbacks, verbose, jit_compile):
    """Fits the stages left; returns (history, epochs_done, stopped, message).

    Each fit gets its own input made from ``train_dataset`` (see _train) starting after the
    images of the steps before it, so a later stage or a resumed run reads on where the run
    was, not from the stream's start again."""
    config, plan, model = run.config, run.plan, run.model
    initial_epoch = run.initial_epoch
    history, epochs_done, stopped, message = {}, initial_epoch, "completed", ""
    for index in range(run.stage_index, len(plan)):
        stage = plan[index]
        if stage.end <= initial_epoch:
            continue
        names = _compile_stage(model, run.optimizer, stage, run.strategy, jit_compile)
        first_epoch = max(stage.start, initial_epoch)
        print(f"Stage {index + 1}/{len(plan)}: epochs {first_epoch + 1}-{stage.end}, "
              f"layers {stage.layers!r} ({len(names)} layers with trainable weights)", flush=True)
        train_ds = distribute_input(run.strategy, train_dataset, config,
                                    start_step=first_epoch * config.STEPS_PER_EPOCH)
        fit = model.fit(train_ds, validation_data=val_ds,
                        validation_steps=config.VALIDATION_STEPS if val_ds is not None else None,
                        steps_per_epoch=config.STEPS_PER_EPOCH, epochs=stage.end,
                        initial_epoch=first_epoch,
                        callbacks=all_callbacks, verbose=verbose, shuffle=False)  # datasets shuffle themselves
        for key, values in fit.history.items():
            history.setdefault(key, []).extend(values)
        epochs_done = first_epoch + len(fit.history.get("loss", []))
        if run.guard.tripped:
            stopped, message = "non_finite", run.guard.message
            epochs_done -= 1  # the epoch that went bad is not checkpointed
            break
        if run.early is not None and run.early.stopped_epoch > 0:
            stopped, message = "early_stopping", f"early stopping after epoch {run.early.stopped_epoch + 1}"
            break
    return history, epochs_done, stopped, message


def _finish(run, history, epochs_done, stopped, message):
    """Writes final.weights.h5 (chief, unless the run stopped on a NaN) and returns the TrainResult."""
    last = checkpoints.find_last(run.output_dir)
    final = None
    if stopped == "non_finite":
        message += f" The last good checkpoint is {last}."
        print(message, flush=True)
    elif run.info.is_chief:
        final = os.path.join(run.output_dir, "final.weights.h5")
        if hasattr(run.built, "save_weights") and run.built is not run.model:
            run.built.save_weights(final)
        else:
            run.model.save_weights(final)
    return TrainResult(run.model, run.built, run.config, run.initial_epoch, epochs_done, stopped, message, last, final,
                       history)


def _engine_callbacks(config, output_dir, info, monitor, schedule, guard, checkpoint, initial_epoch):
    """The engine's callbacks in the order callbacks.py explains; returns (list, EarlyStopping or None)."""
    engine_callbacks = [guard]
    if config.REDUCE_LR_PATIENCE:
        engine_callbacks.append(cb.ReduceLROnPlateau(schedule, monitor=monitor, factor=0.1,
                                                     patience=config.REDUCE_LR_PATIENCE,
                                                     mode=cb.monitor_mode(monitor), verbose=1))
    engine_callbacks += [cb.LearningRateLogger(), checkpoint]
    if info.is_chief:
        csv_path = os.path.join(output_dir, "log.csv")
        if initial_epoch == 0 and os.path.exists(csv_path):
            os.remove(csv_path)
        cb.truncate_csv_log(csv_path, initial_epoch)  # drop the row of an epoch that is rerun
        engine_callbacks += [
            keras.callbacks.CSVLogger(csv_path, append=True),  # append: one logger per stage's fit
            keras.callbacks.TensorBoard(os.path.join(output_dir, "logs"), write_graph=False),
        ]
    early = None
    if config.EARLY_STOPPING_PATIENCE:
        early = keras.callbacks.EarlyStopping(monitor, patience=config.EARLY_STOPPING_PATIENCE,
                                              mode=cb.monitor_mode(monitor), verbose=1)
        engine_callbacks.append(early)
    return engine_callbacks, early


def _compile_stage(model, optimizer, stage, strategy, jit_compile):
    """Sets the stage's trainable layers and recompiles with the same optimizer (state kept)."""
    with strategy.scope():
        names = set_trainable(model, stage.layers)
        model.compile(optimizer, jit_compile=jit_compile)
    return names
