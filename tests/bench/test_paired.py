"""bench/paired.py: the paired-timing protocol, server and coordinator sides."""
import sys

import paired
import pytest

from tests.conftest import REPO

# A server through paired.serve whose calls take about 0, 0.2 and 0.4 s and print a log line.
SERVER = ("import sys, time\n"
          f"sys.path.insert(0, {str(REPO / 'bench')!r})\n"
          "import paired\n"
          "durations = iter([0.0, 0.0, 0.2, 0.4])  # the first is the warm-up call\n"
          "def call():\n"
          "    print('log line', flush=True)\n"
          "    time.sleep(next(durations))\n"
          "print('building...', flush=True)\n"
          "paired.serve(call, warmup=1)\n")


def test_server_times_one_call_per_request_and_skips_other_output():
    server = paired.Server([sys.executable, "-c", SERVER])
    server.ready()
    seconds = [server.time() for _ in range(3)]
    assert seconds[1] >= 0.2 and seconds[2] >= 0.4  # each its own call (sleep sets a floor only)
    server.close()
    assert server.process.returncode == 0


def test_a_server_that_dies_before_ready_names_its_command():
    server = paired.Server([sys.executable, "-c", "import sys; sys.exit(3)"])
    with pytest.raises(RuntimeError, match=r"paired server ended \(exit 3\): .*sys.exit\(3\)"):
        server.ready()


def test_ready_returns_the_last_line_it_was_asked_to_capture_before_ready():
    # matterport_pair's servers print their first call's detections before READY.
    printing = "print('DETECTIONS [1]', flush=True); print('DETECTIONS [2, 3]', flush=True)"
    server = paired.Server([sys.executable, "-c", SERVER.replace("print('building...', flush=True)", printing)])
    assert server.ready("DETECTIONS ") == "[2, 3]"
    assert server.time() >= 0.0
    server.close()
    plain = paired.Server([sys.executable, "-c", SERVER])
    assert plain.ready("DETECTIONS ") is None
    plain.close()


def test_matterport_pair_agreement_needs_class_box_and_score_and_uses_each_of_ours_once():
    import run

    theirs = {"rois": [[0, 0, 10, 10], [0, 0, 10, 10], [5, 5, 20, 20], [1, 1, 9, 9]], "class_ids": [1, 1, 2, 3],
              "scores": [0.9, 0.9, 0.5, 0.4]}
    ours = {"rois": [[0.5, 0, 10, 10], [5, 5, 22, 20], [1, 1, 9, 9]], "class_ids": [1, 2, 3],
            "scores": [0.905, 0.5, 0.3]}
    # 1st: matched; 2nd: its twin is used; 3rd: box 2 px off; 4th: score 0.1 off.
    assert run.pair_agreement(theirs, ours) == 1
    assert run.pair_agreement(theirs, ours, box_px=2.0, score=0.2) == 3
