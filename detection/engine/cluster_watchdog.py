"""A separate process that stops a worker still waiting for its cluster after a timeout.

TF waits for missing workers without limit, inside C++ that holds Python's GIL (so no thread
or signal handler of the waiting process can run). The worker starts this watchdog first:

    python -m detection.engine.cluster_watchdog PID TIMEOUT ME PEER [PEER ...]

ME and PEER are "name=host:port" (e.g. "worker 1=10.0.0.2:12345"). When the worker is ready it
closes the watchdog's stdin (``Watchdog.disarm``) and the watchdog exits silently. After
TIMEOUT seconds without that, it names the peers that refuse a TCP connection on stderr (the
worker's) in one line and kills the worker (SIGKILL: TF catches SIGTERM for itself).
Imports no TensorFlow.
"""
import os
import select
import signal
import socket
import subprocess
import sys


class Watchdog:
    """Context manager: a watchdog process over the current one for the block's duration.

    me: "name=host:port" of this worker; peers: the others'. timeout: seconds.
    """

    def __init__(self, timeout, me, peers):
        self.args = [str(os.getpid()), str(timeout), me, *peers]

    def __enter__(self):
        self.process = subprocess.Popen([sys.executable, "-m", "detection.engine.cluster_watchdog", *self.args],
                                         stdin=subprocess.PIPE)
        return self

    def __exit__(self, *exc):
        self.process.stdin.close()
        self.process.wait()


def answers(address, timeout=2.0):
    """Whether something accepts a TCP connection at "host:port"."""
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


def give_up_line(timeout, me, peers):
    """The one line said when the cluster did not form in time."""
    silent = [f"{name} ({address})" for name, address in (p.split("=", 1) for p in peers) if not answers(address)]
    which = ("no answer from " + ", ".join(silent)) if silent else (
        "every address answers but the cluster did not form: do all workers run the same TF_CONFIG cluster?")
    name, address = me.split("=", 1)
    return f"error: {name} ({address}) waited {timeout} s (CLUSTER_TIMEOUT) for the other workers; {which}"


def main(argv):
    pid, timeout, me, peers = int(argv[0]), float(argv[1]), argv[2], argv[3:]
    ready, _, _ = select.select([sys.stdin], [], [], timeout)
    if ready:
        return 0  # disarmed (stdin closed) in time
    print(give_up_line(argv[1], me, peers), file=sys.stderr, flush=True)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
