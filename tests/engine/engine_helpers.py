"""Running the engine's subprocess scripts from tests."""
import json
import os
import pathlib
import socket
import subprocess
import sys

from tests.tools import h5_arrays  # noqa: F401 (the engine tests import it from here)

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parents[1]


def script_env(**extra):
    """Environment for a script: quiet TF, the repo importable, no inherited TF_CONFIG or
    DETECTION_TEST_PAUSE_IN_SAVE (checkpoints.py's test hook: only a test that waits on it sets it)."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(REPO))
    env.pop("TF_CONFIG", None)
    env.pop("DETECTION_TEST_PAUSE_IN_SAVE", None)
    env.update(extra)
    return env


def run_script(name, *args, timeout=180, **env):
    """Runs tests/engine/NAME and returns the JSON after its "RESULT " line."""
    proc = subprocess.run([sys.executable, str(HERE / name), *map(str, args)], env=script_env(**env),
                          capture_output=True, text=True, timeout=timeout)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, (
        f"{name} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def free_ports(count):
    """``count`` TCP ports on 127.0.0.1 free a moment ago."""
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports
