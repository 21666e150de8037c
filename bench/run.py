"""The benchmark suite: every speed and memory figure of the project in one run.

    python bench/run.py [--only NAME ...] [--runs 5] [--warmup 2] [--peer] [--json OUT]
                        [--matterport-python PY [--matterport-src DIR]]
    make bench                       # the same, all benchmarks, with the peer, JSON in bench/results.json

Each benchmark runs in a fresh child process (so one model's memory and graphs never slow the
next, and peak RSS is the child's own) and prints the median of ``--runs`` runs after
``--warmup`` runs, with its ratio to the baseline measured in the same run:

  train        train_step_s (ResNet-50-FPN, 2 x 512 x 512, 2-FC head, 2000 pre-NMS / 1000
               proposals, 512 RoIs), train_step_mask_s (the same with the mask head),
               backbone_step_s (ResNet-50 alone), conv_only_step_s (every conv and FC of the
               detector on fixed RoIs, see bench/models.py); ratios to both baselines and the
               non-convolution share 1 - conv_only / detector
  infer        infer_512_s and infer_800x1333_s (batch 1, 91 classes; 800 x 1333 is padded to
               832 x 1344 like the pad64 resize does) against backbone_fpn_512_s /
               backbone_fpn_800x1333_s, BatchNormalizations folded as Predictor.from_weights
               and the export do
  memory       train_peak_rss_mib: peak RSS of a process that builds the training model and
               runs 3 steps at the train settings
  first_call   first_train_step_s, first_predict_s: seconds from starting a fresh Python to
               the first finished train step / prediction
  precision    train step under mixed_bfloat16 (and with --float16 mixed_float16) against float32
  matterport   infer_1024_matterport_r101_s: the matterport-compatible model (configs/
               matterport_coco.yaml: ResNet-101, its heads and conventions, 81 classes, masks)
               at 1024 x 1024, against infer_1024_r101_s, ours at the same settings (ResNet-101
               of keras.applications, 2-FC box head), both with BatchNormalizations folded
  peak         bench/peak.py: sustained float32 and bfloat16 GFLOP/s of a large 3 x 3 convolution
               (peak_float32_gflops, peak_bfloat16_gflops). At the end of every run that timed
               a train / infer figure (FLOP_FIGURES: train, infer, precision, matterport, paired,
               matterport_pair) the peak is measured if it was not, and each such figure is
               given its achieved GFLOP/s (NAME_gflops: FLOPs per call from bench/flops.py over
               its median) and its fraction of the peak of its precision
  roi_align    bench/roi_align.py: crop_and_resize against gather (eager and XLA)
  pipeline     input pipeline images/s at the train settings against the train step's images/s
  stat_gt      bench/stat_gt.py on 100,000 boxes
  coco_eval    bench/coco_eval_backends.py: pycocotools against faster-coco-eval
  matterport_pair
               (with --matterport-python PY: a venv with matterport's TF 2 port, see
               bench/matterport_serve.py) matterport's own ``model.detect([image])`` and ours
               (``Predictor.from_weights(configs/matterport_coco.yaml).detect([image])``, float32
               and bfloat16) on the same .h5 (matterport's COCO ResNet-101 layout, seeded random
               weights, DETECTION_MIN_CONFIDENCE 0: 100 detections) and the same 1024 x 1024 PNG,
               the whole call; the three servers are built and warmed up, then each round times
               one call of each in turn; prints the medians and the median of the per-round
               ratios ours / matterport's (matterport_pair_float32_ratio, _bfloat16_ratio), and
               first checks that both sides give the same detections
  paired       (with --peer) train_step_s, infer_512_s and infer_800x1333_s of ours and of the
               peer, interleaved call by call: both processes are built and warmed up, then
               each round times one call of ours and one of the peer's, so that the host's
               drift (a shared VM: 1.4 x between hours here) hits both alike; prints both
               medians and the median of the per-round ratios (paired_*_ratio)

With ``--peer`` the same run also measures TF Model Garden's Faster R-CNN at the same settings
(bench/peer_model_garden.py in the separate virtual environment bench/peer_setup.sh makes; the
project never imports it) and prints our figure over the peer's for every shared name.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH)
# pipeline last: it loads TensorFlow into this process, and Linux children inherit the parent's
# peak RSS through fork, which would inflate stat_gt's own memory figure.
BENCHMARKS = ("train", "infer", "memory", "first_call", "precision", "matterport", "peak", "roi_align", "stat_gt",
              "coco_eval", "paired", "matterport_pair", "pipeline")
PAIRED = ("train_step_s", "infer_512_s", "infer_800x1333_s")
# The timed figures of the train, infer and matterport benchmarks (infer / matterport: with
# the figure each is divided by).
TRAIN_CASES = ("backbone_step_s", "conv_only_step_s", "train_step_s", "train_step_mask_s")
INFER_CASES = {"backbone_fpn_512_s": None, "infer_512_s": "backbone_fpn_512_s", "backbone_fpn_800x1333_s": None,
               "infer_800x1333_s": "backbone_fpn_800x1333_s"}
MATTERPORT_CASES = {"infer_1024_r101_s": None, "infer_1024_matterport_r101_s": "infer_1024_r101_s"}
FIRST_STEP_MARK = "BENCH-FIRST-STEP-DONE"
RESULT_MARK = "BENCH-RESULT "
# Figures compared with the peer's (ours / peer's) and the target ratio of each (the issue).
PEER_TARGETS = {"train_step_s": 1.0, "infer_512_s": 0.85, "infer_800x1333_s": 0.85, "train_peak_rss_mib": 0.9,
                "backbone_step_s": None, "backbone_fpn_512_s": None, "first_train_step_s": None,
                "first_predict_s": None}


# -- children: each measures one thing in a fresh process ------------------------------------


def _child_train(args):
    import models

    config = models.bench_config()
    batch = models.synthetic_batch(config, 512, 512)
    image = {"image": batch["image"]}
    cases = {
        "train_step_s": lambda: (models.detector_training(config), batch),
        "train_step_mask_s": lambda: (models.detector_training(models.bench_config(mask=True)), batch),
        "backbone_step_s": lambda: (models.backbone_training(config), image),
        "conv_only_step_s": lambda: (models.conv_only_training(config),
                                     {**image, "rois": models.fixed_rois(config, 512, 512)}),
    }
    name = args.case
    model, inputs = cases[name]()
    return {name: models.time_train_steps(model, inputs, args.runs, args.warmup)}


def _child_infer(args):
    import models

    height, width = (512, 512) if args.case.endswith("512_s") else (832, 1344)
    config = models.inference_config(height, width)
    if args.case.startswith("infer"):
        model, inputs = models.detector_inference(config, height, width)
    else:
        model, inputs = models.backbone_fpn(config), {"image": models.synthetic_batch(config, height, width)["image"]}
    return {args.case: models.time_forward(model, inputs, args.runs, args.warmup)}


def _child_matterport(args):
    import models

    config = models.matterport_config(1024) if "matterport" in args.case else models.r101_coco_config(1024)
    model, inputs = models.detector_inference(config, 1024, 1024)
    return {args.case: models.time_forward(model, inputs, args.runs, args.warmup)}


def _child_memory(args):
    import resource

    import models

    config = models.bench_config()
    models.time_train_steps(models.detector_training(config), models.synthetic_batch(config, 512, 512), 2, 1)
    return {"train_peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _child_first_call(args):
    import models

    if args.case == "first_train_step_s":
        config = models.bench_config()
        models.time_train_steps(models.detector_training(config), models.synthetic_batch(config, 512, 512), 1, 0)
    else:
        from detection.engine.predictor import Predictor

        config = models.bench_config(batch_size=1)
        batch = models.synthetic_batch(config, 512, 512, batch_size=1)
        Predictor(config, batch_size=1, fold_batch_norm=True).predict_batch({"image": batch["image"],
                                                                             "image_meta": batch["image_meta"]})
    print(FIRST_STEP_MARK, flush=True)
    return {}


def _child_precision(args):
    import keras
    import models

    keras.mixed_precision.set_dtype_policy(args.case)
    config = models.bench_config()
    model = models.detector_training(config)
    return {f"train_step_{args.case}_s": models.time_train_steps(
        model, models.synthetic_batch(config, 512, 512), args.runs, args.warmup)}


def _paired_call(name):
    """A zero-argument function that runs one call of ``name`` to the end (results fetched),
    built as the train / infer children build it."""
    import models
    import tensorflow as tf

    if name == "train_step_s":
        config = models.bench_config()
        model, batch = models.detector_training(config), models.synthetic_batch(config, 512, 512)
        models.time_train_steps(model, batch, 1, 1)  # builds the optimizer, traces the step
        # The step function itself, as the peer's side calls its tf.function: a whole fit()
        # call per step would add fit's own overhead, which now and then is another 4 to 5 s.
        step = model.make_train_function()
        iterator = iter(tf.data.Dataset.from_tensors(batch).repeat())
        return lambda: models.fetch(step(iterator))
    height, width = (512, 512) if name == "infer_512_s" else (832, 1344)
    return models.forward_call(*models.detector_inference(models.inference_config(height, width), height, width))


CHILDREN = {"train": _child_train, "infer": _child_infer, "memory": _child_memory,
            "first_call": _child_first_call, "precision": _child_precision, "matterport": _child_matterport}


def run_child(benchmark, case, args):
    """Runs ``benchmark``'s child for ``case`` -> (its result dict, seconds from spawn to the
    first-step mark or None)."""
    command = [sys.executable, os.path.abspath(__file__), "--child", benchmark, "--case", case,
               "--runs", str(args.runs), "--warmup", str(args.warmup)]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONWARNINGS": "ignore"}
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env, cwd=REPO)
    mark_seconds, result = None, None
    for line in process.stdout:
        if line.startswith(FIRST_STEP_MARK):
            mark_seconds = time.perf_counter() - start
        elif line.startswith(RESULT_MARK):
            result = json.loads(line[len(RESULT_MARK):])
    if process.wait() != 0 or result is None:
        raise RuntimeError(f"benchmark {benchmark} / {case} failed (exit {process.returncode}): {' '.join(command)}")
    return result, mark_seconds


# -- the parent: runs the children, prints medians and ratios --------------------------------


class Report:
    """Collects figures (name -> median) and the lines printed about them."""

    def __init__(self):
        self.figures, self.runs = {}, {}
        self.peer = None  # the peer's JSON, with --peer

    def add(self, name, values, unit="s", baseline=None, note=""):
        values = values if isinstance(values, list) else [values]
        median = statistics.median(values)
        self.figures[name], self.runs[name] = median, values
        ratio = ""
        if baseline is not None and self.figures.get(baseline):
            ratio = f"  = {median / self.figures[baseline]:.2f} x {baseline}"
        spread = f"  (runs {' '.join(f'{v:.3g}' for v in values)})" if len(values) > 1 else ""
        print(f"  {name:28s} {median:10.3f} {unit:4s}{ratio}{spread}{note}", flush=True)
        return median


def bench_train(args, report):
    print("train step, ResNet-50-FPN, 2 x 512 x 512, 2-FC head, 2000/1000 proposals, 512 RoIs, float32", flush=True)
    for case in TRAIN_CASES:
        result, _ = run_child("train", case, args)
        baseline = {"conv_only_step_s": "backbone_step_s", "train_step_s": "conv_only_step_s",
                    "train_step_mask_s": "train_step_s"}.get(case)
        report.add(case, result[case], baseline=baseline)
    f = report.figures
    report.add("train_over_backbone", f["train_step_s"] / f["backbone_step_s"], unit="x")
    report.add("non_conv_share", 1 - f["conv_only_step_s"] / f["train_step_s"], unit="",
               note="  (1 - conv_only / detector; target < 0.15)")


def bench_infer(args, report):
    print("inference, batch 1, 91 classes, float32", flush=True)
    for case, baseline in INFER_CASES.items():
        result, _ = run_child("infer", case, args)
        report.add(case, result[case], baseline=baseline)


def bench_matterport(args, report):
    print("inference at 1024 x 1024, batch 1, ResNet-101-FPN, 81 classes, masks, BatchNorms folded", flush=True)
    for case, baseline in MATTERPORT_CASES.items():
        result, _ = run_child("matterport", case, args)
        report.add(case, result[case], baseline=baseline)


def bench_memory(args, report):
    print("peak RSS of a training process (build + 3 steps at the train settings)", flush=True)
    result, _ = run_child("memory", "train_peak_rss_mib", args)
    report.add("train_peak_rss_mib", result["train_peak_rss_mib"], unit="MiB")


def bench_first_call(args, report):
    print("first call: seconds from a fresh Python to the first finished step / prediction", flush=True)
    for case in ("first_train_step_s", "first_predict_s"):
        _, seconds = run_child("first_call", case, args)
        report.add(case, seconds)


def bench_precision(args, report):
    print("mixed precision train step (same settings; CPUs without bf16/fp16 units emulate them)", flush=True)
    if "train_step_s" not in report.figures:
        result, _ = run_child("train", "train_step_s", args)
        report.add("train_step_s", result["train_step_s"])
    # float16 has no fast CPU kernels here (the child had not finished 3 steps after 5 minutes): on request.
    for policy in ("mixed_bfloat16", "mixed_float16") if args.float16 else ("mixed_bfloat16",):
        result, _ = run_child("precision", policy, args)
        name = f"train_step_{policy}_s"
        report.add(name, result[name], baseline="train_step_s")


# Every timed train / infer figure -> (bench/flops.py case, the parts of it that the figure's
# model runs, images per call, precision of its peak). "all": every part; NO_MASK: all but the
# mask head. Not here: first_* (start-up time, mostly imports and tracing), train_peak_rss_mib,
# train_step_mixed_float16_s (no float16 peak is measured), roi_align_* (memory-bound
# gathers, no multiply-adds counted).
NO_MASK = ("backbone", "fpn", "rpn", "box_head")
_MATTERPORT_1024 = ("infer_1024_matterport_r101", "all", 1)  # DETECTION_MIN_CONFIDENCE 0: 100 masks
FLOP_FIGURES = {
    "backbone_step_s": ("train_2x512", ("backbone",), 2, "float32"),
    "conv_only_step_s": ("train_2x512", NO_MASK, 2, "float32"),
    "train_step_s": ("train_2x512", NO_MASK, 2, "float32"),
    "train_step_mask_s": ("train_2x512", "all", 2, "float32"),
    "train_step_mixed_bfloat16_s": ("train_2x512", NO_MASK, 2, "bfloat16"),
    "backbone_fpn_512_s": ("infer_512", ("backbone", "fpn"), 1, "float32"),
    "infer_512_s": ("infer_512", NO_MASK, 1, "float32"),
    "backbone_fpn_800x1333_s": ("infer_800x1333", ("backbone", "fpn"), 1, "float32"),
    "infer_800x1333_s": ("infer_800x1333", NO_MASK, 1, "float32"),
    # At DETECTION_MIN_CONFIDENCE 0.7 random weights give few detections: the mask head left out.
    "infer_1024_r101_s": ("infer_1024_r101", NO_MASK, 1, "float32"),
    "infer_1024_matterport_r101_s": ("infer_1024_matterport_r101", NO_MASK, 1, "float32"),
    "matterport_pair_matterport_s": (*_MATTERPORT_1024, "float32"),
    "matterport_pair_float32_s": (*_MATTERPORT_1024, "float32"),
    "matterport_pair_bfloat16_s": (*_MATTERPORT_1024, "bfloat16"),
}
# The paired figures (ours and the peer's) run the models of the unpaired ones.
FLOP_FIGURES.update({f"paired_{n}": FLOP_FIGURES[n] for n in PAIRED})
FLOP_FIGURES.update({f"paired_peer_{n}": FLOP_FIGURES[n] for n in PAIRED})


def gflop_per_call(flops, case, parts, images):
    """GFLOP of one call of a figure's model from bench/flops.py's per-image parts of ``case``;
    parts: "all" or a tuple of part names."""
    per_image = flops[case]
    total = per_image["total"] if parts == "all" else sum(per_image[p] for p in parts)
    return total * images


def bench_peak(args, report):
    """Measures the peak now; main() gives every figure its GFLOP/s at the end (add_gflops)."""
    print("peak: sustained GFLOP/s of a 3 x 3 convolution (bench/peak.py)", flush=True)
    peak = _script("peak", ["--runs", str(args.runs), "--warmup", str(args.warmup)])
    for precision in ("float32", "bfloat16"):
        report.add(f"peak_{precision}_gflops", peak[precision], unit="GF/s",
                   note="" if precision == "float32" or peak["native_bfloat16"] else "  (emulated: no bf16 units)")


def add_gflops(args, report):
    """Gives every timed train / infer figure of the run (FLOP_FIGURES) its achieved GFLOP/s
    (FLOPs per call from bench/flops.py) and its fraction of the peak of its precision; measures
    the peak first if the run has not."""
    present = [name for name in FLOP_FIGURES if report.figures.get(name)]
    if not present:
        return
    if "peak_float32_gflops" not in report.figures:
        bench_peak(args, report)
    print("achieved GFLOP/s of each figure (bench/flops.py: FLOPs on paper, heads on every slot) and its share of "
          "the peak of its precision", flush=True)
    flops = _script("flops", [])
    for name in present:
        case, parts, images, precision = FLOP_FIGURES[name]
        achieved = gflop_per_call(flops, case, parts, images) / report.figures[name]
        peak = report.figures[f"peak_{precision}_gflops"]
        report.add(f"{name[:-2]}_gflops", achieved, unit="GF/s",
                   note=f"  = {achieved / peak:.2f} of the {precision} peak")


def _script(name, argv, python=sys.executable):
    """Runs bench/<name>.py with ``python`` and a JSON output, in a fresh process (so its peak
    RSS is its own); returns its JSON."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "out.json")
        subprocess.run([python, os.path.join(BENCH, f"{name}.py"), *argv, "--json", out], check=True,
                       cwd=REPO, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
        with open(out) as f:
            return json.load(f)


def bench_roi_align(args, report):
    print("RoIAlign: crop_and_resize against gather (2 x 512 RoIs, P2..P5 of 512 x 512, 256 channels)", flush=True)
    data = _script("roi_align", ["--runs", str(args.runs)])
    for row in data["results"]:
        mode = row["mode"] + ("_xla" if row["jit_compile"] else "")
        report.add(f"roi_align_{mode}_{row['pass'].replace('+', '_')}_s", row["times_s"])


def bench_pipeline(args, report):
    print("input pipeline at the train settings against the train step", flush=True)
    import input_pipeline
    import models

    coco_tiny = os.path.join(REPO, "..", "shared", "data", "coco_tiny")
    config = models.bench_config(mask=True, AUGMENTATION=input_pipeline.AUGMENTATION)
    if os.path.isdir(coco_tiny):
        config = config.replace(DATASET_FORMAT="coco", TRAIN_IMAGES=os.path.join(coco_tiny, "train2017"),
                                TRAIN_ANNOTATIONS=os.path.join(coco_tiny, "annotations", "instances_train2017.json"))
        source = "coco_tiny (real JPEGs, polygons and RLE)"
    else:
        config = config.replace(DATASET_FORMAT="shapes", NUM_CLASSES=4, SHAPES_IMAGE_SIZE=512)
        source = "shapes (../shared/data absent)"
    rates, _ = input_pipeline.measure(config, args.runs, 10, 3)
    report.add("pipeline_images_per_s", rates, unit="img/s", note=f"  {source}, flip/affine/colour, masks")
    if report.figures.get("train_step_s"):
        train_rate = config.BATCH_SIZE / report.figures["train_step_s"]
        report.add("pipeline_over_train", statistics.median(rates) / train_rate, unit="x",
                   note="  (input images/s over training images/s; must stay > 4)")


def bench_stat_gt(args, report):
    print("stat_gt on 100,000 boxes against 261,888 anchors per 1024 x 1024 image", flush=True)
    data = _script("stat_gt", ["--boxes", "100000"])
    report.add("stat_gt_100k_s", data["seconds_total"])
    report.add("stat_gt_peak_rss_mib", data["peak_rss_mb"], unit="MiB")


def bench_coco_eval(args, report):
    print("COCO evaluation of 2000 synthetic images: pycocotools against faster-coco-eval", flush=True)
    data = _script("coco_eval_backends", ["--runs", "1", "--iou-type", "both"])
    for iou_type, figures in data["iou_types"].items():
        seconds = figures["median_seconds"]
        report.add(f"coco_eval_{iou_type}_pycocotools_s", seconds["pycocotools"])
        report.add(f"coco_eval_{iou_type}_faster_s", seconds["faster-coco-eval"],
                   baseline=f"coco_eval_{iou_type}_pycocotools_s")


def _peer_python(args):
    """The peer venv's python: --peer-python, else bench/peer_setup.sh's (creates the venv on
    first use, about 2 min)."""
    if not args.peer_python:
        args.peer_python = subprocess.run(["bash", os.path.join(BENCH, "peer_setup.sh")], check=True,
                                          capture_output=True, text=True).stdout.strip()
    return args.peer_python


def bench_paired(args, report):
    if not args.peer:
        print("paired: needs --peer (skipped)", flush=True)
        return
    python = _peer_python(args)
    print(f"paired with the peer, call by call ({args.runs} rounds after {args.warmup} warm-up calls each)",
          flush=True)
    import paired

    for name in args.paired:
        warmup = ["--warmup", str(args.warmup)]
        # Built one after the other (each builds on both cores), then timed alternately.
        ours = paired.Server([sys.executable, os.path.abspath(__file__), "--child", "serve", "--case", name, *warmup],
                             cwd=REPO)
        ours.ready()
        peer = paired.Server([python, os.path.join(BENCH, "peer_model_garden.py"), "--serve", name, *warmup], cwd=REPO)
        peer.ready()
        rounds = [(ours.time(), peer.time()) for _ in range(args.runs)]
        ours.close()
        peer.close()
        report.add(f"paired_{name}", [a for a, _ in rounds])
        report.add(f"paired_peer_{name}", [b for _, b in rounds])
        report.add(f"paired_{name.removesuffix('_s')}_ratio", [a / b for a, b in rounds], unit="x",
                   note=f"  (ours / peer per round; target <= {PEER_TARGETS[name]})")


MATTERPORT_PAIR = {"NAME": "pair", "BACKBONE": "resnet101", "NUM_CLASSES": 81, "DETECTION_MIN_CONFIDENCE": 0}
PAIR_PRECISIONS = ("float32", "bfloat16")


def _pair_files(directory):
    """Writes matterport_pair's inputs into ``directory``: weights.h5 (matterport's COCO
    ResNet-101 layout, tests/modeling/matterport_h5.py's seeded random weights, the class
    logits scaled by 0.1, written as matterport's save_weights does), image.png (a 1024 x 1024 photo-like image) and
    matterport_config.json (MATTERPORT_PAIR, matterport's Config attributes)."""
    import cv2
    from detect_profile import synthetic_image

    from tests.modeling.legacy_h5 import write_legacy_h5
    from tests.modeling.matterport_h5 import manifest_layers, random_arrays

    arrays = random_arrays(manifest_layers("resnet101", 81), seed=0)
    # Those gains were set for ResNet-50 at 128 px; through ResNet-101 at 1024 they saturate the
    # class softmax (half the RoIs' top two logits 11 apart, scores 0.99999994 tied), so that
    # which 100 of the tied RoIs each side keeps is a matter of rounding. A tenth of the class
    # logits gives varied scores, comparable detections.
    arrays["mrcnn_class_logits"] = [(name, array * 0.1) for name, array in arrays["mrcnn_class_logits"]]
    write_legacy_h5(os.path.join(directory, "weights.h5"), arrays)
    cv2.imwrite(os.path.join(directory, "image.png"), synthetic_image(1024, 1024)[:, :, ::-1])
    with open(os.path.join(directory, "matterport_config.json"), "w") as f:
        json.dump(MATTERPORT_PAIR, f)


def _serve_matterport_pair(precision, directory, warmup):
    """Our side of matterport_pair: Predictor.from_weights(configs/matterport_coco.yaml at
    MATTERPORT_PAIR's settings, ``precision``) on the pair's .h5; prints the first call's
    detections (DETECTIONS json) before serving ``detect([image])`` (bench/paired.py)."""
    import paired

    from detection.config import Config
    from detection.data.images import read_image
    from detection.engine.precision import with_precision
    from detection.engine.predictor import Predictor

    config = Config.from_yaml(os.path.join(REPO, "configs", "matterport_coco.yaml")).replace(
        IMAGES_PER_GPU=1, DETECTION_MIN_CONFIDENCE=0.0)
    predictor = Predictor.from_weights(with_precision(config, precision), os.path.join(directory, "weights.h5"),
                                       log=None)
    image = read_image(os.path.join(directory, "image.png"))
    r = predictor.detect([image])[0]
    print("DETECTIONS " + json.dumps({"rois": r["rois"].tolist(), "class_ids": r["class_ids"].tolist(),
                                      "scores": r["scores"].tolist()}), flush=True)
    paired.serve(lambda: predictor.detect([image]), warmup)


def pair_agreement(theirs, ours, box_px=1.0, score=0.01):
    """theirs, ours: {"rois", "class_ids", "scores"} of one image -> number of ``theirs``'
    detections that an unused one of ours matches (same class, every box coordinate within
    ``box_px``, score within ``score``)."""
    import numpy as np

    boxes, classes, scores = (np.asarray(ours[k], float) for k in ("rois", "class_ids", "scores"))
    used = np.zeros(len(scores), bool)
    for box, cls, s in zip(theirs["rois"], theirs["class_ids"], theirs["scores"]):
        ok = ~used & (classes == cls) & (np.abs(scores - s) <= score)
        ok &= np.abs(boxes.reshape(-1, 4) - np.asarray(box, float)).max(axis=1) <= box_px if len(used) else ok
        if ok.any():
            used[np.flatnonzero(ok)[0]] = True
    return int(used.sum())


def bench_matterport_pair(args, report):
    if not args.matterport_python:
        print("matterport_pair: needs --matterport-python PY (skipped)", flush=True)
        return
    import tempfile

    import paired

    print(f"matterport_pair: matterport's detect ({args.matterport_python}) against ours, float32 and bfloat16, "
          f"one 1024 x 1024 image, ResNet-101 COCO layout, call by call ({args.runs} rounds after {args.warmup} "
          f"warm-up calls each); load {' '.join(f'{v:.1f}' for v in os.getloadavg())}", flush=True)
    with tempfile.TemporaryDirectory() as directory:
        subprocess.run([sys.executable, os.path.abspath(__file__), "--child", "matterport_pair_files", "--case",
                        directory], check=True, cwd=REPO, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
        warmup = ["--warmup", str(args.warmup)]
        mrcnn = ["--mrcnn", args.matterport_src] if args.matterport_src else []
        servers = {"matterport": paired.Server(
            [args.matterport_python, os.path.join(BENCH, "matterport_serve.py"), *mrcnn, "--weights",
             os.path.join(directory, "weights.h5"), "--config", os.path.join(directory, "matterport_config.json"),
             "--image", os.path.join(directory, "image.png"), *warmup], cwd=REPO)}
        detections = {"matterport": servers["matterport"].ready("DETECTIONS ")}
        for precision in PAIR_PRECISIONS:  # built one after the other: each build takes both cores
            servers[precision] = paired.Server([sys.executable, os.path.abspath(__file__), "--child", "serve",
                                                "--case", f"matterport_pair_{precision}", "--pair-files", directory,
                                                *warmup], cwd=REPO)
            detections[precision] = servers[precision].ready("DETECTIONS ")
        theirs = json.loads(detections["matterport"])
        for precision in PAIR_PRECISIONS:
            ours = json.loads(detections[precision])
            print(f"  detections: matterport {len(theirs['scores'])}, ours in {precision} {len(ours['scores'])}; "
                  f"of matterport's, ours has {pair_agreement(theirs, ours)} (class, box within 1 px, score within "
                  f"0.01)", flush=True)
        rounds = [{name: server.time() for name, server in servers.items()} for _ in range(args.runs)]
        for server in servers.values():
            server.close()
    print(f"  load after: {' '.join(f'{v:.1f}' for v in os.getloadavg())}", flush=True)
    report.add("matterport_pair_matterport_s", [r["matterport"] for r in rounds])
    for precision in PAIR_PRECISIONS:
        report.add(f"matterport_pair_{precision}_s", [r[precision] for r in rounds])
        target = {"float32": 0.7, "bfloat16": 0.45}[precision]
        report.add(f"matterport_pair_{precision}_ratio", [r[precision] / r["matterport"] for r in rounds], unit="x",
                   note=f"  (ours / matterport's per round; target <= {target})")


def bench_peer(args, report):
    """Runs bench/peer_model_garden.py in the peer's venv; prints ours / peer's per shared name."""
    python = _peer_python(args)
    print(f"peer: TF Model Garden Faster R-CNN ({python})", flush=True)
    peer = report.peer = _script("peer_model_garden", ["--runs", str(args.runs), "--warmup", str(args.warmup)], python)
    print("ours / peer (target):", flush=True)
    for name, target in PEER_TARGETS.items():
        if name in report.figures and isinstance(peer.get(name), (int, float)):
            ratio = report.figures[name] / peer[name]
            verdict = "" if target is None else ("  met" if ratio <= target else "  MISSED")
            goal = "" if target is None else f" (<= {target})"
            print(f"  {name:28s} ours {report.figures[name]:9.3f}  peer {peer[name]:9.3f}  "
                  f"ratio {ratio:.2f}{goal}{verdict}", flush=True)
            report.figures[f"peer_{name}"] = peer[name]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS, default=list(BENCHMARKS))
    parser.add_argument("--runs", type=int, default=5, help="timed runs per figure (the median is reported)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs first (the first traces)")
    parser.add_argument("--peer", action="store_true", help="also measure TF Model Garden (separate venv)")
    parser.add_argument("--peer-python", help="python of an existing peer venv")
    parser.add_argument("--paired", nargs="+", choices=PAIRED, default=list(PAIRED), metavar="NAME",
                        help=f"with --only paired: these figures only (default all: {' '.join(PAIRED)})")
    parser.add_argument("--matterport-python", metavar="PY",
                        help="python of a venv with matterport's TF 2 port (matterport_pair)")
    parser.add_argument("--matterport-src", metavar="DIR",
                        help="folder holding the port's mrcnn package, when PY cannot import it itself")
    parser.add_argument("--float16", action="store_true", help="also time mixed_float16 (slow on CPUs)")
    parser.add_argument("--json", metavar="OUT", help="write every figure and run to this JSON file")
    parser.add_argument("--child", choices=[*CHILDREN, "serve", "matterport_pair_files"], help=argparse.SUPPRESS)
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--pair-files", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child == "serve" and args.case.startswith("matterport_pair_"):
        return _serve_matterport_pair(args.case.removeprefix("matterport_pair_"), args.pair_files, args.warmup)
    if args.child == "matterport_pair_files":
        return _pair_files(args.case)
    if args.child == "serve":
        import paired

        paired.serve(_paired_call(args.case), args.warmup)
        return None
    if args.child:
        print(RESULT_MARK + json.dumps(CHILDREN[args.child](args)), flush=True)
        return None

    from importlib.metadata import version

    tf_version = version("tensorflow")  # not imported here: children would inherit its memory
    print(f"bench/run.py  {time.strftime('%Y-%m-%d %H:%M')}  {platform.node()}  {os.cpu_count()} CPUs  "
          f"python {platform.python_version()}  tensorflow {tf_version}  runs {args.runs} warmup {args.warmup}",
          flush=True)
    report = Report()
    for name in args.only:
        globals()[f"bench_{name}"](args, report)
    add_gflops(args, report)
    if args.peer and set(args.only) & {"train", "infer", "memory", "first_call"}:
        bench_peer(args, report)  # the peer's side of those figures
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.node()} {os.cpu_count()} CPUs",
                       "tensorflow": tf_version, "runs": args.runs, "warmup": args.warmup,
                       **{k: round(v, 4) for k, v in report.figures.items()},
                       "all_runs": report.runs, "peer": report.peer}, f, indent=1)
    return report.figures


if __name__ == "__main__":
    main()
