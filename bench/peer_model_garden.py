"""Peer benchmark: TF Model Garden's Faster R-CNN (tf-models-official 2.20, TF 2.20) on CPU.

Runs with the peer venv's python, never with this project's environment (the project does not
depend on Model Garden):

    PEER_PYTHON=$(bench/peer_setup.sh)
    $PEER_PYTHON bench/peer_model_garden.py [--runs 5] [--warmup 2] [--only NAME,NAME]
                                            [--json OUT] [--quick] [--mask] [--bf16]
    $PEER_PYTHON bench/peer_model_garden.py --serve NAME  # paired timing (bench/paired.py)

Model: the `fasterrcnn_resnetfpn_coco` experiment (`maskrcnn_resnetfpn_coco` with --mask),
built by the MaskRCNN task (official.vision.tasks.maskrcnn) with these overrides: ResNet-50,
FPN P2-P6 (min_level 2, max_level 6), 3 anchors per location, random initialisation (no
checkpoint), float32, no XLA, plain batch norm (one device: sync BN only adds an identity
all-reduce), box head of 2 FC layers of 1024 (num_convs 0, num_fcs 2; the default head puts
4 3x3 convs before 1 FC and makes the train step about 1.7x slower), RPN 2000 pre-NMS / 1000
proposals in training and 1000 / 1000 in inference, 512 sampled RoIs per image, 91 classes,
no mask head unless --mask, L2 weight decay 4e-5 as in the experiment.

--bf16 uses the Keras policy mixed_bfloat16 instead of float32: what the experiment's
runtime.mixed_precision_dtype 'bfloat16' selects in Model Garden's trainer. This CPU has AMX,
so the convolutions run about 2x faster; it is there to compare with figures measured that
way, not the default.

Figures, each the median of --runs runs after --warmup runs, in this process unless noted:

    train_step_s        one training step on a fixed synthetic batch of 2 x 512 x 512 with
                        8 random GT boxes per image (classes 1..90): the task's own
                        `train_step` (forward, `build_losses`, gradients, SGD momentum 0.9
                        from the experiment's optimizer config) in a tf.function without
                        jit. The labels (anchors, RPN targets, padded GT) come from the
                        task's own parser (official.vision.dataloaders.maskrcnn_input),
                        augmentation off.
    backbone_step_s     Model Garden's ResNet-50 alone on the same 2 x 512 x 512 images:
                        forward, loss = mean of the C5 map, gradients, SGD momentum update.
    backbone_fpn_512_s  ResNet-50 + FPN forward at 1 x 512 x 512, training=False.
    infer_512_s         full model at 1 x 512 x 512, training=False, up to the detection
                        generator's output (NMS v2, 100 detections); the model is built at
                        that input size the way Model Garden's serving module does.
    infer_800x1333_s    same for an 800 x 1333 image, which Model Garden pads to 832 x 1344
                        (multiples of 2^max_level = 64; our framework pads the same way).
    first_train_step_s  seconds from the start of a fresh process (the clock is read before
                        tensorflow is imported) until the first training step has finished:
                        imports, building, tracing, one step. A subprocess of its own.
    first_predict_s     the same until the first 512 x 512 prediction. Own subprocess.
    train_peak_rss_mib  peak RSS (ru_maxrss) of a subprocess that builds the training model
                        and runs 3 training steps.

Images and weights are random: with random weights few class scores pass the 0.05 score
threshold, so NMS keeps few boxes; our framework is measured the same way. The experiment's
NMS v2 unrolls a loop per class, which makes tracing slow (most of first_predict_s).

The machine is a shared 2-core VM: other jobs, and the host, change the figures by up to 2x.
Each figure's runs are printed, and the JSON settings record the load average and a float32
matmul rate at start and end (machine_start_end) to judge how busy the machine was.
"""

import time

_T0 = time.perf_counter()  # before tensorflow is imported: the cold-start figures count imports

import argparse  # noqa: E402
import importlib.metadata  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras  # noqa: E402
import timing  # noqa: E402  (bench/timing.py, stdlib only; this script's folder is on sys.path)
from official.core import exp_factory, task_factory  # noqa: E402
from official.modeling import performance  # noqa: E402
from official.vision import registry_imports  # noqa: E402,F401  (registers the experiments)
from official.vision.dataloaders import maskrcnn_input  # noqa: E402
from official.vision.modeling import factory  # noqa: E402
from official.vision.modeling.backbones import factory as backbone_factory  # noqa: E402
from official.vision.ops import preprocess_ops  # noqa: E402

FIGURES = ("train_step_s", "backbone_step_s", "backbone_fpn_512_s", "infer_512_s",
           "infer_800x1333_s", "first_train_step_s", "first_predict_s", "train_peak_rss_mib")
COLD = {"first_train_step_s": "train", "first_predict_s": "predict",
        "train_peak_rss_mib": "rss"}  # figure -> --cold mode of the subprocess

TRAIN_BATCH = 2
TRAIN_SIZE = (512, 512)
GT_PER_IMAGE = 8
NUM_CLASSES = 91
LARGE_SIZE = (800, 1333)
RSS_STEPS = 3
SEED = 0


def experiment(mask, input_hw=TRAIN_SIZE):
    """The Model Garden experiment config with the benchmark's overrides (see the docstring).

    `override(..., is_strict=True)` rejects a misspelt field, so every name below exists.
    """
    name = "maskrcnn_resnetfpn_coco" if mask else "fasterrcnn_resnetfpn_coco"
    config = exp_factory.get_exp_config(name)
    compute_dtype = tf_keras.mixed_precision.global_policy().compute_dtype  # main() sets it
    config.override({
        "runtime": {"mixed_precision_dtype": compute_dtype, "enable_xla": False},
        "task": {
            "init_checkpoint": None,
            "model": {
                "num_classes": NUM_CLASSES,
                "input_size": [*input_hw, 3],
                "min_level": 2,
                "max_level": 6,
                "include_mask": mask,
                "backbone": {"type": "resnet", "resnet": {"model_id": 50}},
                "decoder": {"type": "fpn"},
                "norm_activation": {"use_sync_bn": False},
                "detection_head": {"num_convs": 0, "num_fcs": 2, "fc_dims": 1024},
                "roi_generator": {"pre_nms_top_k": 2000, "num_proposals": 1000,
                                  "test_pre_nms_top_k": 1000, "test_num_proposals": 1000},
                "roi_sampler": {"num_sampled_rois": 512},
            },
            # The synthetic batch is fixed: no flip, no scale jitter; float32 images.
            "train_data": {"dtype": "float32",
                           "parser": {"aug_rand_hflip": False, "aug_scale_min": 1.0,
                                      "aug_scale_max": 1.0}},
        },
    }, is_strict=True)
    return config


def padded(hw, config):
    """(height, width) rounded up to multiples of 2^max_level, as the parser and serving do."""
    stride = 2 ** config.task.model.max_level
    return tuple(-(-x // stride) * stride for x in hw)


# ----------------------------------------------------------------------------------------
# Inputs


def synthetic_train_batch(task):
    """One training batch through the task's own parser: (images, labels).

    images: [2, 512, 512, 3] float32, normalised. labels: the dict the task's train_step
    reads: anchor_boxes {level: [2, H_l, W_l, 12]}, rpn_score_targets {level: [2, H_l, W_l, 3]},
    rpn_box_targets {level: [2, H_l, W_l, 12]}, image_info [2, 4, 2], gt_boxes [2, 100, 4]
    (pixels, padded with -1), gt_classes [2, 100] (+ gt_masks, gt_outer_boxes with --mask).
    """
    model_cfg, data_cfg = task.task_config.model, task.task_config.train_data
    parser_cfg = data_cfg.parser
    # The arguments MaskRCNNTask.build_inputs passes.
    parser = maskrcnn_input.Parser(
        output_size=model_cfg.input_size[:2],
        min_level=model_cfg.min_level,
        max_level=model_cfg.max_level,
        num_scales=model_cfg.anchor.num_scales,
        aspect_ratios=model_cfg.anchor.aspect_ratios,
        anchor_size=model_cfg.anchor.anchor_size,
        rpn_match_threshold=parser_cfg.rpn_match_threshold,
        rpn_unmatched_threshold=parser_cfg.rpn_unmatched_threshold,
        rpn_batch_size_per_im=parser_cfg.rpn_batch_size_per_im,
        rpn_fg_fraction=parser_cfg.rpn_fg_fraction,
        aug_rand_hflip=parser_cfg.aug_rand_hflip,
        aug_rand_vflip=parser_cfg.aug_rand_vflip,
        aug_scale_min=parser_cfg.aug_scale_min,
        aug_scale_max=parser_cfg.aug_scale_max,
        aug_type=parser_cfg.aug_type,
        skip_crowd_during_training=parser_cfg.skip_crowd_during_training,
        max_num_instances=parser_cfg.max_num_instances,
        include_mask=model_cfg.include_mask,
        outer_boxes_scale=model_cfg.outer_boxes_scale,
        mask_crop_size=parser_cfg.mask_crop_size,
        dtype=data_cfg.dtype)

    # What the TF-Example decoder would hand the parser: uint8 images, normalised boxes.
    h, w = TRAIN_SIZE
    rng = np.random.default_rng(SEED)
    yx = rng.uniform(0.0, 0.7, (TRAIN_BATCH, GT_PER_IMAGE, 2))
    hw = rng.uniform(0.05, 0.3, (TRAIN_BATCH, GT_PER_IMAGE, 2))
    boxes = np.concatenate([yx, yx + hw], axis=-1).astype(np.float32)
    decoded = {
        "image": rng.integers(0, 256, (TRAIN_BATCH, h, w, 3), dtype=np.uint8),
        "groundtruth_boxes": boxes,
        "groundtruth_classes": rng.integers(1, NUM_CLASSES, (TRAIN_BATCH, GT_PER_IMAGE)),
        "groundtruth_is_crowd": np.zeros((TRAIN_BATCH, GT_PER_IMAGE), bool),
    }
    if model_cfg.include_mask:
        masks = np.zeros((TRAIN_BATCH, GT_PER_IMAGE, h, w), np.float32)
        for i, j in np.ndindex(TRAIN_BATCH, GT_PER_IMAGE):  # a filled box per instance
            y1, x1, y2, x2 = (boxes[i, j] * [h, w, h, w]).astype(int)
            masks[i, j, y1:y2, x1:x2] = 1.0
        decoded["groundtruth_instance_masks"] = masks
    dataset = (tf.data.Dataset.from_tensor_slices(decoded)
               .map(parser.parse_fn(is_training=True)).batch(TRAIN_BATCH))
    return next(iter(dataset))


def serving_input(config, hw):
    """A random image prepared as Model Garden's serving module does (DetectionModule).

    Returns images [1, H_pad, W_pad, 3] float32 and image_shape [1, 2] (the unpadded
    800 x 1333 or 512 x 512 region the detections are clipped to).
    """
    rng = np.random.default_rng(SEED + 1)
    image = tf.cast(rng.integers(0, 256, (*hw, 3), dtype=np.uint8), tf.float32)
    image = preprocess_ops.normalize_image(
        image, offset=preprocess_ops.MEAN_RGB, scale=preprocess_ops.STDDEV_RGB)
    image, image_info = preprocess_ops.resize_and_crop_image(
        image, hw, padded_size=padded(hw, config), aug_scale_min=1.0, aug_scale_max=1.0)
    return image[None], image_info[None, 1, :]


# ----------------------------------------------------------------------------------------
# Models and steps


def train_setup(mask):
    """Task, model, optimizer and the compiled train step, called as step(images, labels)."""
    config = experiment(mask)
    task = task_factory.get_task(config.task)
    model = task.build_model()  # factory.build_maskrcnn + a symbolic warm-up call
    optimizer = task.create_optimizer(config.trainer.optimizer_config, config.runtime)

    @tf.function(jit_compile=False)
    def step(images, labels):
        return task.train_step((images, labels), model, optimizer)["loss"]

    return task, model, step


def inference_setup(mask, hw):
    """Model built for a 1 x H_pad x W_pad input, as the serving module builds it, and its
    compiled forward returning the detection generator's output (boxes [1, 100, 4], scores,
    classes, num_detections); the model makes its own anchors for the padded size."""
    config = experiment(mask, hw)
    input_specs = tf_keras.layers.InputSpec(shape=[1, *padded(hw, config), 3])
    model = factory.build_maskrcnn(input_specs, config.task.model)
    keys = ["detection_boxes", "detection_scores", "detection_classes", "num_detections"]
    if mask:
        keys.append("detection_masks")

    @tf.function(jit_compile=False)
    def predict(images, image_shape):
        outputs = model(images, image_shape=image_shape, training=False)
        return {k: outputs[k] for k in keys}

    return config, model, predict


def backbone_step_fn(config, optimizer):
    """ResNet-50 alone (built as build_maskrcnn builds it) and a compiled step:
    step(images [2, 512, 512, 3]) -> loss, loss = mean of the C5 map [2, 16, 16, 2048]."""
    model_cfg = config.task.model
    backbone = backbone_factory.build_backbone(
        tf_keras.layers.InputSpec(shape=[None, *model_cfg.input_size]),
        model_cfg.backbone, model_cfg.norm_activation)

    @tf.function(jit_compile=False)
    def step(images):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(backbone(images, training=True)["5"])
        grads = tape.gradient(loss, backbone.trainable_variables)
        optimizer.apply_gradients(zip(grads, backbone.trainable_variables))
        return loss

    return step


def machine_state():
    """How busy the machine is: 1-minute load average and the float32 matmul rate (GFLOP/s,
    best of 5 products of 2048 x 2048 matrices). On this shared 2-core VM the rate has been
    seen to halve under host contention, which no load average shows; the figures of two runs
    compare only at similar rates."""
    a = tf.random.stateless_uniform([2048, 2048], seed=[SEED, 0])
    matmul = tf.function(tf.linalg.matmul)
    matmul(a, a).numpy()
    best, _ = min(median_seconds(lambda: matmul(a, a).numpy(), 1, 0) for _ in range(5))
    return {"loadavg_1min": round(os.getloadavg()[0], 2),
            "matmul_gflops": round(2 * 2048 ** 3 / best / 1e9)}


def median_seconds(fn, runs, warmup):
    """Median wall seconds of fn() over `runs` calls after `warmup` calls, and all runs.
    fn must block until its result exists (it ends with .numpy())."""
    times = timing.time_calls(fn, runs, warmup)
    return statistics.median(times), times


def fetch(structure):
    """Copies every tensor to numpy, so a timed call ends when its results exist."""
    return tf.nest.map_structure(lambda t: t.numpy(), structure)


# ----------------------------------------------------------------------------------------
# Measurements


def measure_in_process(names, args):
    """Warm figures of this process, yielded as measured: (name, median seconds, [runs])."""
    if {"train_step_s", "backbone_step_s"} & set(names):
        task, _, train_step = train_setup(args.mask)
        images, labels = synthetic_train_batch(task)
        if "train_step_s" in names:
            yield "train_step_s", *median_seconds(
                lambda: fetch(train_step(images, labels)), args.runs, args.warmup)
        if "backbone_step_s" in names:
            config = experiment(args.mask)
            optimizer = task.create_optimizer(config.trainer.optimizer_config, config.runtime)
            step = backbone_step_fn(config, optimizer)
            yield "backbone_step_s", *median_seconds(
                lambda: fetch(step(images)), args.runs, args.warmup)

    if {"backbone_fpn_512_s", "infer_512_s"} & set(names):
        config, model, predict = inference_setup(args.mask, TRAIN_SIZE)
        image, image_shape = serving_input(config, TRAIN_SIZE)
        if "backbone_fpn_512_s" in names:
            features = tf.function(
                lambda x: model.decoder(model.backbone(x, training=False), training=False),
                jit_compile=False)  # {level: [1, 512 / 2^level, 512 / 2^level, 256]}
            yield "backbone_fpn_512_s", *median_seconds(
                lambda: fetch(features(image)), args.runs, args.warmup)
        if "infer_512_s" in names:
            yield "infer_512_s", *median_seconds(
                lambda: fetch(predict(image, image_shape)), args.runs, args.warmup)

    if "infer_800x1333_s" in names:
        config, _, predict = inference_setup(args.mask, LARGE_SIZE)
        image, image_shape = serving_input(config, LARGE_SIZE)
        yield "infer_800x1333_s", *median_seconds(
            lambda: fetch(predict(image, image_shape)), args.runs, args.warmup)


PAIRED = ("train_step_s", "infer_512_s", "infer_800x1333_s")  # figures --serve offers


def paired_call(name, mask):
    """A zero-argument function that runs one ``name`` call to the end (results fetched)."""
    if name == "train_step_s":
        task, _, train_step = train_setup(mask)
        images, labels = synthetic_train_batch(task)
        return lambda: fetch(train_step(images, labels))
    hw = TRAIN_SIZE if name == "infer_512_s" else LARGE_SIZE
    config, _, predict = inference_setup(mask, hw)
    image, image_shape = serving_input(config, hw)
    return lambda: fetch(predict(image, image_shape))


def cold_child(mode, mask):
    """Body of a subprocess (--cold MODE): prints one JSON line {figure: value}."""
    if mode == "predict":
        config, _, predict = inference_setup(mask, TRAIN_SIZE)
        fetch(predict(*serving_input(config, TRAIN_SIZE)))
        result = {"first_predict_s": time.perf_counter() - _T0}
    else:
        task, _, train_step = train_setup(mask)
        images, labels = synthetic_train_batch(task)
        fetch(train_step(images, labels))
        result = {"first_train_step_s": time.perf_counter() - _T0}
        if mode == "rss":
            for _ in range(RSS_STEPS - 1):
                fetch(train_step(images, labels))
            # ru_maxrss is in KiB on Linux.
            result = {"train_peak_rss_mib":
                      resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    print(json.dumps(result), flush=True)


def measure_cold(name, args):
    """Runs this script again with --cold and returns the figure it prints last."""
    cmd = [sys.executable, os.path.abspath(__file__), "--cold", COLD[name]]
    cmd += ["--mask"] * args.mask + ["--bf16"] * args.bf16
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])[name]


def settings(args, machine):
    """What was measured and how busy the machine was (machine_state at start and end)."""
    config = experiment(args.mask)
    model = config.task.model
    large = padded(LARGE_SIZE, config)
    return {
        "experiment": "maskrcnn_resnetfpn_coco" if args.mask else "fasterrcnn_resnetfpn_coco",
        "backbone": "resnet50", "fpn_levels": [model.min_level, model.max_level],
        "anchors_per_location": len(model.anchor.aspect_ratios) * model.anchor.num_scales,
        "num_classes": model.num_classes, "mask_head": model.include_mask,
        "detection_head": model.detection_head.as_dict(),
        "roi_generator": model.roi_generator.as_dict(),
        "detection_generator": model.detection_generator.as_dict(),
        "num_sampled_rois": model.roi_sampler.num_sampled_rois,
        "train_batch": [TRAIN_BATCH, *TRAIN_SIZE], "gt_per_image": GT_PER_IMAGE,
        "infer_batch": 1, "infer_800x1333_padded_to": list(large),
        "init": "random", "keras_policy": tf_keras.mixed_precision.global_policy().name,
        "xla": False, "sync_bn": False,
        "optimizer": "SGD momentum 0.9 (experiment's optimizer config)",
        "l2_weight_decay": config.task.losses.l2_weight_decay,
        "runs": args.runs, "warmup": args.warmup, "rss_train_steps": RSS_STEPS,
        "cpu_count": os.cpu_count(),
        "machine_start_end": machine,
        "note": "800x1333 input padded to %dx%d (multiples of 64) by Model Garden" % large,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--only", help="comma-separated figure names: " + ",".join(FIGURES))
    parser.add_argument("--json", metavar="OUT", help="write the figures to this JSON file")
    parser.add_argument("--quick", action="store_true", help="smoke test: runs 1, warmup 1")
    parser.add_argument("--mask", action="store_true", help="add the mask head")
    parser.add_argument("--bf16", action="store_true",
                        help="mixed_bfloat16 instead of float32 (see the docstring)")
    parser.add_argument("--cold", choices=sorted(set(COLD.values())), help=argparse.SUPPRESS)
    parser.add_argument("--serve", choices=PAIRED, help="paired timing server (see bench/paired.py)")
    args = parser.parse_args()
    # Before any model is built: Model Garden's trainer sets the policy the same way.
    performance.set_mixed_precision_policy(tf.bfloat16 if args.bf16 else tf.float32)
    if args.cold:
        cold_child(args.cold, args.mask)
        return
    if args.serve:  # paired timing, see bench/paired.py
        import paired  # bench/paired.py (stdlib only); this script's folder is on sys.path

        paired.serve(paired_call(args.serve, args.mask), args.warmup)
        return
    if args.quick:
        args.runs, args.warmup = 1, 1
    names = args.only.split(",") if args.only else list(FIGURES)
    unknown = set(names) - set(FIGURES)
    if unknown:
        parser.error("unknown figure(s): %s" % ", ".join(sorted(unknown)))

    machine = [machine_state()]
    print("machine at start: %s" % machine[0], file=sys.stderr, flush=True)
    figures = {}
    # Cold starts first, while this process is still small and idle.
    for name in (n for n in FIGURES if n in names and n in COLD):
        figures[name] = measure_cold(name, args)
        print("%-20s %8.2f" % (name, figures[name]), flush=True)
    for name, median, times in measure_in_process(names, args):
        figures[name] = median
        print("%-20s %8.3f   (runs: %s)" % (name, median, " ".join("%.3f" % t for t in times)),
              flush=True)

    machine.append(machine_state())
    print("machine at end: %s" % machine[1], file=sys.stderr, flush=True)
    if args.json:
        out = {n: figures[n] for n in FIGURES if n in figures}
        out["settings"] = settings(args, machine)
        out["versions"] = {"tensorflow": tf.__version__,
                           "tf-models-official": importlib.metadata.version("tf-models-official")}
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
