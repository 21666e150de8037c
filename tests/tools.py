"""Helpers shared by tests: the tools as importable modules, the arrays of an HDF5 file, and a
scikit-image resize written from its definition."""
import importlib.util

import h5py
import numpy as np

from tests.conftest import REPO


def load_tool(name):
    """tools/<name>.py as a module (its main(argv) runs the tool in this process)."""
    spec = importlib.util.spec_from_file_location(f"tool_{name}", REPO / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def h5_arrays(path):
    """{dataset path: array} of every dataset in an HDF5 file."""
    arrays = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: arrays.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return arrays


def resize_weights(n_in, n_out):
    """[n_out, n_in] weights of scikit-image's order-1 resize along one axis (mode "constant",
    no anti-aliasing): output i samples input (i + 0.5) * (n_in / n_out) - 0.5 linearly
    between its two neighbours, a neighbour outside the array reading 0."""
    out = np.zeros((n_out, n_in))
    for i in range(n_out):
        x = (i + 0.5) * (n_in / n_out) - 0.5
        low = int(np.floor(x))
        for j, weight in ((low, 1 - (x - low)), (low + 1, x - low)):
            if 0 <= j < n_in:
                out[i, j] += weight
    return out
