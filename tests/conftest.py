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


# The slowest test files (wall seconds per file in a 3-worker run, 2026-12-04), run first. make
# test's workers (pytest-xdist, --dist loadfile --no-loadscope-reorder) take one file at a time in
# this order, so they share out the long files early and end together on short ones; a file
# missing here just runs in collection order after them.
SLOWEST_FIRST = (
    "tests/modeling/test_matterport.py", "tests/modeling/test_torchvision_oracle.py",
    "tests/engine/test_multiworker_detector.py", "tests/modeling/test_detector.py", "tests/test_api.py",
    "tests/test_damaged_images.py", "tests/modeling/test_torchvision_tools.py",
    "tests/modeling/test_torchvision_finetune.py", "tests/test_real_data.py", "tests/test_docs_custom_data.py",
    "tests/test_infer_export.py", "tests/modeling/test_detector_equivalence.py",
    "tests/modeling/test_torchvision_mobilenet.py", "tests/bench/test_real_ap.py", "tests/engine/test_kill_resume.py",
    "tests/engine/test_precision.py", "tests/engine/test_distributed_equivalence.py",
)


def pytest_collection_modifyitems(items):
    rank = {path: i for i, path in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))  # stable: files keep their order
