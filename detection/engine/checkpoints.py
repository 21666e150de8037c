"""Per-epoch checkpoints that are never half written.

Layout under a run's output folder::

    checkpoints/
      epoch_0003/                  one per completed epoch (3 = epochs done = the next epoch index)
        model.weights.h5           model weights and, under "optimizer/", the optimizer's variables
                                   (Keras 3 save_weights writes both once the model is compiled)
        state.json                 epoch, global_step, best, config_hash, lr_multiplier, logs
      last                         text: the name of the newest checkpoint ("epoch_0003")
      best                         text: the name of the checkpoint with the best MONITOR value

A checkpoint is written into checkpoints/.tmp-*, then renamed into place with os.replace (a
directory rename is atomic on POSIX), then the pointer files are replaced the same way, so a
kill at any instant leaves every epoch_* directory complete. Pointers are a convenience:
find_last falls back to the newest epoch_* directory when `last` is missing or stale.

The optimizer's variables include `iterations`, so restoring them restores the position in the
learning-rate schedule; the schedule's plateau multiplier is restored from state.json.

Test-only hook: when the environment variable DETECTION_TEST_PAUSE_IN_SAVE names a file path,
every save_checkpoint pauses once both files of its .tmp- directory are written and synced,
before any rename: it writes the .tmp- directory's path into that file (atomically) and waits
until the file is removed. A test waits for the file to appear, inspects or SIGKILLs the
process (a kill in the middle of a save, by construction) or deletes the file to let the save
go on. Unset (always, outside tests) it costs one environment lookup per save.
"""
import hashlib
import json
import os
import re
import shutil
import time
import uuid

import h5py
import yaml

WEIGHTS = "model.weights.h5"
STATE = "state.json"
PAUSE_IN_SAVE_ENV = "DETECTION_TEST_PAUSE_IN_SAVE"  # test-only, see the module docstring
_EPOCH_DIR = re.compile(r"epoch_(\d+)$")


class CheckpointError(RuntimeError):
    """A checkpoint does not fit the model or optimizer it is restored into."""


def checkpoint_root(output_dir):
    return os.path.join(output_dir, "checkpoints")


def config_hash(config):
    """A short hash of the resolved config, to notice a resume under another config."""
    text = yaml.safe_dump(config.to_dict(), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _fsync_dir(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fresh_dir(root, prefix):
    """A new empty directory root/prefix-<unique> (mkdir honours the umask; mkdtemp would make it 0700)."""
    path = os.path.join(root, f"{prefix}-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    os.mkdir(path)
    return path


def _write_text_atomic(path, text):
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _test_pause_in_save(tmp):
    """The test-only hook of the module docstring: signal "inside a save", wait to be released."""
    marker = os.environ.get(PAUSE_IN_SAVE_ENV)
    if not marker:
        return
    _write_text_atomic(marker, tmp + "\n")
    while os.path.exists(marker):
        time.sleep(0.01)


def save_checkpoint(output_dir, model, state, is_best=False):
    """Writes checkpoints/epoch_{state['epoch']:04d} atomically and points `last` (and `best`) at it.

    model: compiled, so its optimizer's variables are saved with the weights.
    state: JSON-serialisable dict with at least "epoch" (completed epochs). Returns the path.
    """
    root = checkpoint_root(output_dir)
    os.makedirs(root, exist_ok=True)
    name = f"epoch_{state['epoch']:04d}"
    final = os.path.join(root, name)
    tmp = _fresh_dir(root, f".tmp-{name}")
    weights = os.path.join(tmp, WEIGHTS)
    model.save_weights(weights)
    with open(weights, "rb+") as f:
        os.fsync(f.fileno())
    with open(os.path.join(tmp, STATE), "w") as f:
        json.dump(state, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    _fsync_dir(tmp)
    _test_pause_in_save(tmp)
    if os.path.exists(final):  # an epoch trained again (resumed from an older checkpoint)
        old = _fresh_dir(root, f".old-{name}")
        os.replace(final, os.path.join(old, name))
    os.replace(tmp, final)
    _fsync_dir(root)
    _write_text_atomic(os.path.join(root, "last"), name + "\n")
    if is_best:
        _write_text_atomic(os.path.join(root, "best"), name + "\n")
    _fsync_dir(root)
    remove_stale_temporaries(output_dir)
    return final


def remove_stale_temporaries(output_dir):
    """Deletes .tmp-* and .old-* left by a save that was killed (the chief calls it at start)."""
    root = checkpoint_root(output_dir)
    if not os.path.isdir(root):
        return
    for entry in os.listdir(root):
        if entry.startswith((".tmp-", ".old-")):
            shutil.rmtree(os.path.join(root, entry), ignore_errors=True)


def list_checkpoints(output_dir):
    """Complete checkpoint directories, oldest first."""
    root = checkpoint_root(output_dir)
    if not os.path.isdir(root):
        return []
    found = []
    for entry in os.listdir(root):
        match = _EPOCH_DIR.match(entry)
        if match and os.path.isfile(os.path.join(root, entry, STATE)):
            found.append((int(match.group(1)), os.path.join(root, entry)))
    return [path for _, path in sorted(found)]


def _pointer(output_dir, which):
    root = checkpoint_root(output_dir)
    try:
        with open(os.path.join(root, which)) as f:
            path = os.path.join(root, f.read().strip())
    except FileNotFoundError:
        return None
    return path if os.path.isfile(os.path.join(path, STATE)) else None


def find_last(output_dir):
    """The newest complete checkpoint directory of a run, or None (for --resume, --weights last)."""
    listed = list_checkpoints(output_dir)
    pointed = _pointer(output_dir, "last")
    # `last` can lag the newest directory by one if a kill fell between the two renames.
    if listed and (pointed is None or read_state(listed[-1])["epoch"] > read_state(pointed)["epoch"]):
        return listed[-1]
    return pointed


def find_best(output_dir):
    """The checkpoint directory with the best MONITOR value, or None."""
    return _pointer(output_dir, "best")


def read_state(checkpoint_dir):
    with open(os.path.join(checkpoint_dir, STATE)) as f:
        return json.load(f)


def weights_path(path):
    """A .weights.h5 file from a file path or a checkpoint directory."""
    return os.path.join(path, WEIGHTS) if os.path.isdir(path) else path


def _saved_optimizer_variables(weights_file):
    with h5py.File(weights_file, "r") as f:
        group = f.get("optimizer/vars")
        return None if group is None else len(group)


def restore_checkpoint(checkpoint_dir, model, schedule=None):
    """Puts back weights, optimizer state and the schedule's multiplier; returns the state dict.

    model: compiled, its optimizer built over the same variables as when saved (the trainer
    builds it over every stage's variables), else CheckpointError: Keras itself would only
    warn and skip the optimizer. The next epoch to train is state["epoch"].
    """
    weights = weights_path(checkpoint_dir)
    saved = _saved_optimizer_variables(weights)
    expected = len(model.optimizer.variables)
    if saved != expected:
        raise CheckpointError(
            f"{weights}: the saved optimizer has {saved} variables, this one {expected}; "
            "was it saved under another TRAIN_STAGES, MIXED_PRECISION or model? "
            "Use --weights to start from its weights only")
    model.load_weights(weights)
    state = read_state(checkpoint_dir)
    if schedule is not None:
        schedule.multiplier.assign(state.get("lr_multiplier", 1.0))
    return state


def load_model_weights(model, path):
    """Loads only the model weights of a file or checkpoint directory into a model.

    Call before compile: an uncompiled model ignores the optimizer variables in the file.
    """
    if model.compiled:
        raise CheckpointError("load_model_weights loads weights only: call it before model.compile")
    model.load_weights(weights_path(path))


def prune_checkpoints(output_dir, keep):
    """Deletes all but the newest `keep` checkpoints, never the ones `last` or `best` names."""
    if not keep:
        return
    root = checkpoint_root(output_dir)
    protected = {find_last(output_dir), find_best(output_dir)}
    for path in list_checkpoints(output_dir)[:-keep]:
        if path not in protected:
            # Rename first: a kill during rmtree must not leave a half-deleted epoch_* directory.
            trash = _fresh_dir(root, ".old")
            os.replace(path, os.path.join(trash, os.path.basename(path)))
            shutil.rmtree(trash, ignore_errors=True)
