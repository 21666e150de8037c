"""Reading PyTorch ``.pth`` files without PyTorch: {name: numpy array}.

Two layouts of ``torch.save`` are read:

  zip (torch >= 1.6, the default): a zip archive with one top folder (any name) holding
      ``data.pkl`` (the pickled object), ``data/<key>`` (one raw storage each, little-endian)
      and ``byteorder``.
  legacy (older files, ``_use_new_zipfile_serialization=False``): five consecutive pickles
      (magic number, protocol, system info, the object, the storage keys) then each storage
      as an int64 element count and its raw bytes.

The pickle is read by a RESTRICTED unpickler: it resolves only the globals a state_dict
needs (tensor rebuilders, storage classes, OrderedDict) and refuses any other one, so a
crafted file (``os.system`` in a __reduce__) is refused in one line before anything runs.
Tensors come back as numpy arrays (their storage viewed with offset, size and stride).

A whole checkpoint (``{"model": state_dict, "optimizer": ..., "epoch": ...}``) is accepted:
``read_state_dict`` takes the state_dict under "model", "state_dict" or "model_state_dict"
(or the only dict of arrays). Example::

    arrays = read_state_dict("fasterrcnn_resnet50_fpn_coco-258fb6c6.pth")
    arrays["backbone.body.conv1.weight"].shape  # (64, 3, 7, 7), float32
"""

import collections
import io
import os
import pickle
import struct
import zipfile

import numpy as np


class PthError(ValueError):
    """A .pth file cannot be read, or holds something else than tensors (one line)."""


# torch's storage class names -> numpy dtypes (little-endian, as torch writes them).
_STORAGE_DTYPES = {
    "FloatStorage": "<f4", "DoubleStorage": "<f8", "HalfStorage": "<f2", "BFloat16Storage": "<u2",
    "LongStorage": "<i8", "IntStorage": "<i4", "ShortStorage": "<i2", "CharStorage": "i1",
    "ByteStorage": "u1", "BoolStorage": "?",
}
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_CHECKPOINT_KEYS = ("model", "state_dict", "model_state_dict")


class _Storage:
    """A storage class named in a pickle (torch.FloatStorage, ...): only its dtype matters."""

    def __init__(self, name):
        self.name = name
        # bfloat16 is read as its uint16 bits, marked so that read_pth converts it to float32.
        self.dtype = np.dtype(_STORAGE_DTYPES[name], metadata={"bfloat16": name == "BFloat16Storage"})


def _rebuild_tensor(storage, offset, size, stride, *unused):
    """torch._utils._rebuild_tensor_v2: a view of ``storage`` (a 1-D array) -> numpy array."""
    size, stride = tuple(size), tuple(stride)
    needed = offset + 1 + sum((n - 1) * s for n, s in zip(size, stride)) if all(size) else offset
    if needed > storage.size:
        raise PthError(f"tensor of size {list(size)} at offset {offset} exceeds its storage of {storage.size}")
    # A view: legacy files fill the storage after the object is unpickled; read_pth copies.
    return np.lib.stride_tricks.as_strided(storage[offset:], size, tuple(s * storage.itemsize for s in stride),
                                           writeable=False)


def _rebuild_tensor_v3(storage, offset, size, stride, requires_grad, hooks, dtype, *unused):
    return _rebuild_tensor(storage, offset, size, stride)


def _rebuild_parameter(data, *unused):
    return data


def _bf16_to_float32(array):
    """bfloat16 bits (uint16) -> float32 (exact)."""
    return (array.astype(np.uint32) << 16).view(np.float32)


# (module, name) -> what it stands for; anything else in a pickle is refused.
_ALLOWED = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v3"): _rebuild_tensor_v3,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("collections", "OrderedDict"): collections.OrderedDict,
    **{("torch", name): _Storage(name) for name in _STORAGE_DTYPES},
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only _ALLOWED globals; storages come from ``load_storage(kind, key, count)``."""

    def __init__(self, stream, path, load_storage):
        super().__init__(stream)
        self.path = path
        self.load_storage = load_storage

    def find_class(self, module, name):
        found = _ALLOWED.get((module, name))
        if found is None:
            raise PthError(f"{self.path}: refused to unpickle global {module}.{name} "
                           "(a weights file holds only tensors and containers; this one holds code)")
        return found

    def persistent_load(self, pid):
        # ('storage', storage class, key, location, element count[, view metadata (legacy)])
        if not isinstance(pid, tuple) or len(pid) < 5 or pid[0] != "storage" or not isinstance(pid[1], _Storage):
            raise PthError(f"{self.path}: unexpected persistent id {str(pid)[:80]} (not a torch storage)")
        kind, key, count = pid[1], str(pid[2]), int(pid[4])
        return self.load_storage(kind, key, count)


def read_pth(path):
    """The object a ``torch.save`` file holds, tensors as numpy arrays (see the module doc).

    Raises PthError (one line naming the file) for a missing, truncated or foreign file,
    or a pickle holding anything but tensors and containers."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise PthError(f"{path}: cannot read ({e.strerror})") from None
    try:
        if zipfile.is_zipfile(io.BytesIO(data)):
            return _copy_arrays(_read_zip(path, data))
        return _copy_arrays(_read_legacy(path, data))
    except PthError as e:
        message = str(e)
        raise PthError(message if message.startswith(path) else f"{path}: {message}") from None
    except (pickle.UnpicklingError, EOFError, zipfile.BadZipFile, KeyError, ValueError, struct.error,
            IndexError, TypeError, AttributeError) as e:
        raise PthError(f"{path}: not a readable torch.save file, or truncated ({type(e).__name__}: "
                       f"{str(e)[:120]})") from None


def _read_zip(path, data):
    archive = zipfile.ZipFile(io.BytesIO(data))
    names = archive.namelist()
    pickles = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
    if not pickles:
        raise PthError("a zip archive without <folder>/data.pkl (not written by torch.save)")
    prefix = pickles[0][:-len("data.pkl")]
    byteorder = archive.read(prefix + "byteorder").decode() if prefix + "byteorder" in names else "little"
    if byteorder != "little":
        raise PthError(f"byteorder {byteorder!r} is not supported (only little-endian files)")

    def load_storage(kind, key, count):
        raw = archive.read(f"{prefix}data/{key}")
        if len(raw) < count * kind.dtype.itemsize:
            raise PthError(f"storage data/{key} holds {len(raw)} bytes, {count} x {kind.dtype.itemsize} expected")
        return np.frombuffer(raw, kind.dtype, count)

    return _RestrictedUnpickler(io.BytesIO(archive.read(pickles[0])), path, load_storage).load()


def _read_legacy(path, data):
    stream = io.BytesIO(data)

    def next_pickle(load_storage=None):
        return _RestrictedUnpickler(stream, path, load_storage).load()

    try:
        magic = next_pickle()
    except (pickle.UnpicklingError, EOFError, ValueError, IndexError):
        raise PthError("neither a zip archive nor a legacy torch.save file") from None
    if magic != _LEGACY_MAGIC:
        raise PthError("neither a zip archive nor a legacy torch.save file (wrong magic number)")
    next_pickle()  # protocol version
    next_pickle()  # system info (byte order, type sizes)
    pending = {}

    def defer_storage(kind, key, count):
        # Storages are written after the object: hand out placeholders filled in below.
        pending.setdefault(key, (kind, count, np.zeros(count, kind.dtype)))
        return pending[key][2]

    obj = next_pickle(defer_storage)
    keys = next_pickle()
    for key in keys:
        kind, count, array = pending[str(key)]
        (stored,) = struct.unpack("<q", stream.read(8))
        raw = stream.read(stored * kind.dtype.itemsize)
        if len(raw) < stored * kind.dtype.itemsize or stored < count:
            raise PthError(f"storage {key} is truncated")
        array[:] = np.frombuffer(raw, kind.dtype, count)
    return obj


def _copy_arrays(obj):
    """Replaces every array view (into a storage buffer) by its own writeable copy."""
    if isinstance(obj, np.ndarray):
        if obj.dtype.metadata and obj.dtype.metadata.get("bfloat16"):
            return _bf16_to_float32(obj)
        return np.array(obj, dtype=np.dtype(obj.dtype.str))  # a copy, without the storage's marker
    if isinstance(obj, dict):
        out = collections.OrderedDict() if isinstance(obj, collections.OrderedDict) else {}
        for k, v in obj.items():
            out[k] = _copy_arrays(v)
        return out
    if isinstance(obj, (list, tuple)):
        return type(obj)(_copy_arrays(v) for v in obj)
    return obj


def state_dict_of(obj, path="<object>"):
    """The {name: array} state_dict in what ``read_pth`` returned: the object itself, or the
    dict under "model" / "state_dict" / "model_state_dict" of a checkpoint. Non-array entries
    (a checkpoint's epoch, ...) are dropped. Raises PthError when none is found."""
    if isinstance(obj, dict):
        for key in _CHECKPOINT_KEYS:
            if isinstance(obj.get(key), dict):
                return state_dict_of(obj[key], path)
        arrays = collections.OrderedDict((str(k), v) for k, v in obj.items() if isinstance(v, np.ndarray))
        if arrays:
            return arrays
        nested = [v for v in obj.values() if isinstance(v, dict) and any(isinstance(a, np.ndarray) for a in v.values())]
        if len(nested) == 1:
            return state_dict_of(nested[0], path)
    raise PthError(f"{path}: no state_dict in the file (a dict of tensors, or a checkpoint with one under "
                   f"{', '.join(repr(k) for k in _CHECKPOINT_KEYS)})")


def read_state_dict(path):
    """{name: numpy array} of a ``.pth`` state_dict or of the state_dict in a checkpoint."""
    return state_dict_of(read_pth(path), os.fspath(path))
