"""The timing loop every speed benchmark uses, ours and the peer's (stdlib only, so that
bench/peer_model_garden.py can import it from its own venv)."""

import time


def time_calls(call, runs, warmup):
    """[seconds of each of ``runs`` calls of ``call()``] after ``warmup`` untimed calls.
    ``call`` must fetch its results to the host, so that the time includes all the work."""
    for _ in range(warmup):
        call()
    seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - start)
    return seconds
