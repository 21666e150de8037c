"""Shared test setup: quiet TensorFlow, locate the shared datasets."""
import os
import pathlib

import pytest

from tests.trained_shapes import trained_shapes  # noqa: F401 (the fixture, for every test module)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = pathlib.Path(__file__).resolve().parents[1]
# ../shared/data beside the checkout; DETECTION_SHARED_DATA points elsewhere (a git worktree
# whose parent folder has no shared/).
SHARED_DATA = pathlib.Path(os.environ.get("DETECTION_SHARED_DATA") or REPO.parent / "shared" / "data")


def shared_dataset(name):
    """Path of ../shared/data/NAME (or $DETECTION_SHARED_DATA/NAME), skipping the test when it
    is absent (a user's fresh clone)."""
    path = SHARED_DATA / name
    if not path.is_dir():
        pytest.skip(f"shared dataset {path} is absent (only CI and developer machines have it)")
    return path
