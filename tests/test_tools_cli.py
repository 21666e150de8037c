"""The tools are thin and alike: no sys.path edits, one line when the package is missing, and
the common flags built by detection/cli.py."""

import os
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import REPO

TOOLS = sorted((REPO / "tools").glob("*.py"))


@pytest.mark.parametrize("tool", TOOLS, ids=lambda p: p.name)
def test_no_tool_edits_sys_path(tool):
    assert "sys.path" not in tool.read_text()


# The benchmark scripts find the package installed and each other in their own folder (Python
# puts a script's folder first on sys.path). Two edit it for a reason: data_scale.py loads
# another checkout's code to compare with, matterport_serve.py runs in matterport's own venv.
BENCH_PATH_EDITS = {"data_scale.py", "matterport_serve.py"}


def test_no_benchmark_edits_sys_path_but_the_two_that_load_other_code():
    editing = {p.name for p in (REPO / "bench").glob("*.py") if "sys.path.insert" in p.read_text()}
    assert editing == BENCH_PATH_EDITS


@pytest.mark.parametrize("tool", TOOLS, ids=lambda p: p.name)
def test_a_tool_run_without_the_package_says_so_in_one_line(tool, tmp_path):
    # -S skips site-packages' .pth files, and so the editable install: the third-party
    # packages import, detection does not (the repository is not on the path either).
    site_packages = os.path.dirname(os.path.dirname(np.__file__))
    run = subprocess.run([sys.executable, "-S", str(tool), "--help"], cwd=tmp_path, capture_output=True, text=True,
                         env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": site_packages})
    assert run.returncode == 1
    assert run.stderr.splitlines() == ["error: detection is not installed: run `make setup` in the repository "
                                       "(pip install -e .)"]


def test_common_flags_build_the_config(tmp_path):
    from detection import cli

    config_file = tmp_path / "c.yaml"
    config_file.write_text("NUM_CLASSES: 3\nVAL_IMAGES: /config/images\n")
    parser = cli.tool_parser("First paragraph.\n\nRest, kept.")
    cli.add_config_flags(parser)
    cli.add_weights_flags(parser, required=False)
    cli.add_dataset_flags(parser)
    args = parser.parse_args(["--config", str(config_file), "--set", "IMAGES_PER_GPU=3", "--set", "NUM_CLASSES=5",
                              "--images", "/flag/images", "--exclude", "mrcnn_.*"])
    config = cli.config_from_args(args, subset="val")
    assert (config.IMAGES_PER_GPU, config.NUM_CLASSES, config.VAL_IMAGES) == (3, 5, "/flag/images")
    assert cli.config_from_args(args).VAL_IMAGES == "/config/images"  # no subset: the dataset flags left out
    assert args.exclude == ["mrcnn_.*"] and parser.description == "First paragraph." and parser.epilog == "Rest, kept."


def test_several_overrides_per_flag(tmp_path):
    from detection import cli

    parser = cli.add_config_flags(cli.tool_parser("x"), several_per_flag=True)
    args = parser.parse_args(["--config", "c.yaml", "--set", "A=1", "B=2", "--set", "C=3"])
    assert cli.overrides(args) == ["A=1", "B=2", "C=3"]


def test_detection_errors_are_one_line():
    from detection import cli
    from detection.config import ConfigError

    error = ConfigError("c.yaml: invalid value for NUM_CLASSES\nNUM_CLASSES=1: expected an integer >= 2")
    assert cli.is_detection_error(error) and not cli.is_detection_error(ValueError("numpy's"))
    assert cli.error_line(error) == ("error: c.yaml: invalid value for NUM_CLASSES NUM_CLASSES=1: "
                                     "expected an integer >= 2")
