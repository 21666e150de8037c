"""bench/peak.py's FLOP count and bench/run.py's GFLOP per call from bench/flops.py's parts."""
import argparse

import peak
import run
import tensorflow as tf


def test_conv_flops_counts_two_per_multiply_add_of_a_same_conv():
    # 4 x 4 outputs x 2 output channels, each 3 x 3 x 3 multiply-adds.
    assert peak.conv_flops(4, 3) == 2 * 4 * 4 * 3 * 3 * 9
    # The same through TF's own cost model: a graph's Conv2D FLOPs (2 x MACs as well).
    x = tf.TensorSpec((1, 16, 16, 8), tf.float32)
    graph = tf.function(lambda t: tf.nn.conv2d(t, tf.ones((3, 3, 8, 8)), 1, "SAME")).get_concrete_function(x).graph
    profile = tf.compat.v1.profiler.profile(graph, options=tf.compat.v1.profiler.ProfileOptionBuilder.float_operation())
    assert profile.total_float_ops == peak.conv_flops(16, 8)


def test_gflop_per_call_sums_the_parts_the_figure_runs():
    flops = {"train_2x512": {"backbone": 100.0, "fpn": 10.0, "rpn": 5.0, "box_head": 5.0, "mask_head": 30.0,
                             "total": 150.0}}
    assert run.gflop_per_call(flops, "train_2x512", "all", 2) == 300.0
    assert run.gflop_per_call(flops, "train_2x512", run.NO_MASK, 2) == 240.0
    assert run.gflop_per_call(flops, "train_2x512", ("backbone",), 2) == 200.0


def test_every_timed_train_and_infer_figure_gets_its_gflops():
    timed = {*run.TRAIN_CASES, *run.INFER_CASES, *run.MATTERPORT_CASES, "train_step_mixed_bfloat16_s",
             *(f"paired_{n}" for n in run.PAIRED), *(f"paired_peer_{n}" for n in run.PAIRED),
             "matterport_pair_matterport_s", *(f"matterport_pair_{p}_s" for p in run.PAIR_PRECISIONS)}
    assert timed <= set(run.FLOP_FIGURES)
    assert run.FLOP_FIGURES["matterport_pair_bfloat16_s"][3] == "bfloat16"
    assert run.FLOP_FIGURES["train_step_s"][1] == run.NO_MASK  # the benchmark's train model has no mask head


def test_add_gflops_measures_the_peak_when_missing_and_reports_each_figure(monkeypatch, capsys):
    scripts = []

    def fake_script(name, argv, python=None):
        scripts.append(name)
        if name == "peak":
            return {"float32": 100.0, "bfloat16": 50.0, "native_bfloat16": False}
        parts = {"backbone": 300.0, "fpn": 100.0, "rpn": 200.0, "box_head": 30.0, "mask_head": 100.0, "total": 730.0}
        return {"infer_1024_matterport_r101": parts}

    monkeypatch.setattr(run, "_script", fake_script)
    report = run.Report()
    report.add("matterport_pair_float32_s", [10.0])
    report.add("matterport_pair_bfloat16_s", [20.0])
    report.add("first_train_step_s", [60.0])  # start-up: no FLOPs figure
    run.add_gflops(argparse.Namespace(runs=1, warmup=0), report)
    assert scripts == ["peak", "flops"]
    assert report.figures["matterport_pair_float32_gflops"] == 73.0
    assert report.figures["matterport_pair_bfloat16_gflops"] == 36.5
    assert "first_train_step_gflops" not in report.figures
    out = capsys.readouterr().out
    assert "= 0.73 of the float32 peak" in out and "= 0.73 of the bfloat16 peak" in out
