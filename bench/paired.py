"""The paired-timing protocol (bench/run.py --only paired): stdlib only, because both our
benchmark and the peer's (bench/peer_model_garden.py, in its own venv) speak it.

A server builds one figure's call, runs the warm-up calls, prints READY, then for each line
on stdin runs one call and prints ``SECONDS <s>``; it ends at end of input. The coordinator
alternates requests between our server and the peer's, so that the host's slow spells hit
both sides of a round alike.
"""

import os
import subprocess
import sys
import time


def serve(call, warmup):
    """Runs the server loop for ``call`` (a zero-argument function that finishes the work,
    results fetched) after ``warmup`` untimed calls."""
    for _ in range(warmup):
        call()
    print("READY", flush=True)
    for _ in sys.stdin:
        start = time.perf_counter()
        call()
        print(f"SECONDS {time.perf_counter() - start:.6f}", flush=True)


class Server:
    """One server process seen from the coordinator: ``ready()`` waits for READY, ``time()``
    requests one call and returns its seconds; other output lines are skipped."""

    def __init__(self, command, cwd=None):
        self.command = command
        self.process = subprocess.Popen(command, cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})

    def _line(self, prefix):
        for line in self.process.stdout:
            if line.startswith(prefix):
                return line
        raise RuntimeError(f"paired server ended (exit {self.process.wait()}): {' '.join(self.command)}")

    def ready(self, capture=None):
        """Waits for READY; returns the rest of the last line before it that starts with
        ``capture`` (None when there was none, or no ``capture``)."""
        captured = None
        for line in self.process.stdout:
            if line.startswith("READY"):
                return captured
            if capture and line.startswith(capture):
                captured = line[len(capture):].strip()
        raise RuntimeError(f"paired server ended (exit {self.process.wait()}): {' '.join(self.command)}")

    def time(self):
        self.process.stdin.write("go\n")
        self.process.stdin.flush()
        return float(self._line("SECONDS").split()[1])

    def close(self):
        self.process.stdin.close()
        self.process.wait()
