"""Writes torch.save's zip format from numpy arrays, without torch, for tests that need a
large .pth (a whole detector) that cannot be a fixture. test_pth.py checks that what it
writes reads back like the files real torch wrote.

The pickle is what torch.save writes for a state_dict: an OrderedDict of
``torch._utils._rebuild_tensor_v2(storage, 0, shape, strides, False, OrderedDict())``, each
storage a persistent id ``("storage", torch.FloatStorage, key, "cpu", numel)`` whose bytes are
``<name>/data/<key>``.
"""

import collections
import io
import pickle
import zipfile

import numpy as np

_STORAGES = {np.dtype("float32"): "FloatStorage", np.dtype("int64"): "LongStorage"}


class _Global:
    """Pickles as a GLOBAL opcode naming ``module.name`` (torch's, which need not be importable)."""

    def __init__(self, module, name):
        self.module, self.name = module, name


class _Storage:
    def __init__(self, key, array):
        self.key, self.array = key, array


class _Tensor:
    def __init__(self, storage, shape):
        self.storage, self.shape = storage, shape


class _Pickler:
    """The two hooks _PurePickler uses."""

    def persistent_id(self, obj):
        if isinstance(obj, _Storage):
            kind = _Global("torch", _STORAGES[obj.array.dtype])
            return ("storage", kind, obj.key, "cpu", obj.array.size)
        return None

    def reducer_override(self, obj):
        if isinstance(obj, _Tensor):
            strides = tuple(int(np.prod(obj.shape[i + 1:])) for i in range(len(obj.shape)))
            rebuild = _Global("torch._utils", "_rebuild_tensor_v2")
            return rebuild, (obj.storage, 0, obj.shape, strides, False, collections.OrderedDict())
        return NotImplemented


def write_pth(path, state_dict, archive_name="archive"):
    """state_dict {key: float32 / int64 array} -> a torch.save zip file at ``path``."""
    storages = []
    tensors = collections.OrderedDict()
    for index, (key, array) in enumerate(state_dict.items()):
        array = np.ascontiguousarray(array)
        storage = _Storage(str(index), array)
        storages.append(storage)
        tensors[key] = _Tensor(storage, tuple(array.shape))
    buffer = io.BytesIO()
    _PurePickler(buffer, protocol=2).dump(tensors)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr(f"{archive_name}/data.pkl", buffer.getvalue())
        archive.writestr(f"{archive_name}/byteorder", "little")
        for storage in storages:
            archive.writestr(f"{archive_name}/data/{storage.key}", storage.array.astype(
                storage.array.dtype.newbyteorder("<")).tobytes())
        archive.writestr(f"{archive_name}/version", "3\n")


class _PurePickler(pickle._Pickler):  # noqa: SLF001 (the Python pickler lets GLOBALs be written by hand)
    def persistent_id(self, obj):
        return _Pickler.persistent_id(self, obj)

    def save(self, obj, save_persistent_id=True):
        if isinstance(obj, _Global):
            self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())
            return
        if isinstance(obj, _Tensor):
            function, args = _Pickler.reducer_override(self, obj)
            self.save(function)
            self.save(args)
            self.write(pickle.REDUCE)
            return
        super().save(obj, save_persistent_id)
