"""FLOPs of each part of the benchmark detector, counted from the built Keras graphs.

    python bench/flops.py [--json OUT]

Counts 2 x multiply-adds of every Conv2D, Conv2DTranspose and Dense call at the shapes the
graph gives it (the RPN conv once per pyramid level, the box head on every proposal or
sampled RoI, the mask head on every detection or positive RoI), grouped by part:
backbone (conv1..conv5), fpn, rpn, box_head (rcnn_*), mask_head (mask_*). Cases: the
benchmark's ResNet-50-FPN (91 classes) at 512 x 512 and 832 x 1344 and its training step, and
at 1024 x 1024 the 81-class ResNet-101 models of bench/run.py's matterport and matterport_pair
figures (ours: keras.applications ResNet-101 and the 2-FC head; matterport's layout,
configs/matterport_coco.yaml), each with the mask head on its 100 detection slots. Element-wise work
(BatchNorm, ReLU, RoIAlign's bilinear sampling, NMS, targets) is not counted: it is memory-
bound, not FLOP-bound. A training step is taken as 3 x its forward FLOPs (forward, gradient
of the input, gradient of the weights).
"""

import argparse
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import models
import numpy as np

from detection.modeling.detector import Detector

# Part -> layer-name prefixes: ours (keras.applications' conv*, rcnn_*, mask_*) and matterport's
# (conv1, res*, mrcnn_class_* / mrcnn_bbox_*, mrcnn_mask*).
PARTS = (("backbone", ("conv", "res")), ("fpn", "fpn_"), ("rpn", "rpn_"),
         ("box_head", ("rcnn_", "mrcnn_class", "mrcnn_bbox")), ("mask_head", ("mask_", "mrcnn_mask")))


def call_flops(layer, input_shape, output_shape):
    """FLOPs (2 x multiply-adds) of one call of a Conv2D / Conv2DTranspose / Dense layer."""
    kernel = layer.kernel.shape
    # A None batch (a model without a static batch size) counts as one image.
    input_shape = [1 if d is None else d for d in input_shape]
    output_shape = [1 if d is None else d for d in output_shape]
    # Conv2D and Dense: one set of kernel MACs per output position; Conv2DTranspose (kernel
    # [kh, kw, out, in]): one per input position.
    positions = input_shape if isinstance(layer, keras.layers.Conv2DTranspose) else output_shape
    return 2 * int(np.prod(positions[:-1])) * int(np.prod(kernel))


def part_of(name):
    for part, prefix in PARTS:
        if name.startswith(prefix):
            return part
    return "other"


def model_flops(model):
    """{part: forward FLOPs} of every weighted call in ``model`` (all images of its batch)."""
    totals = {part: 0 for part, _ in PARTS}
    # Only this model's nodes: heads shared with the other model also hold that model's calls.
    nodes = {id(node) for depth_nodes in model._nodes_by_depth.values() for node in depth_nodes}
    for layer in model.layers:
        if not isinstance(layer, (keras.layers.Conv2D, keras.layers.Conv2DTranspose, keras.layers.Dense)):
            continue
        for node in layer._inbound_nodes:
            if id(node) not in nodes:
                continue
            flops = call_flops(layer, node.input_tensors[0].shape, node.output_tensors[0].shape)
            part = part_of(layer.name)
            totals[part] = totals.get(part, 0) + flops
    return totals


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", metavar="OUT", help="write the figures to this JSON file")
    args = parser.parse_args(argv)

    # Static shapes: the heads counted on every slot (the upper bound; inference runs padding-free).
    inference = Detector(models.bench_config(batch_size=1, mask=True), batch_size=1, training=False,
                         padding_free=False)
    training = Detector(models.bench_config(mask=True))
    cases = {"infer_512": (model_flops(inference.inference_model), 1, 1),
             "train_2x512": (model_flops(training.training_model), 2, 3)}
    for name, config in (("infer_1024_r101", models.r101_coco_config(1024)),
                         ("infer_1024_matterport_r101", models.matterport_config(1024))):
        model = Detector(config, batch_size=1, training=False, padding_free=False).inference_model
        cases[name] = (model_flops(model), 1, 1)
    # Convolutions over the image scale with its pixels (sides are multiples of 64, so every
    # level divides evenly); the heads see the same RoI counts at any size.
    scale = 832 * 1344 / (512 * 512)
    cases["infer_800x1333"] = ({part: f * scale if part in ("backbone", "fpn", "rpn") else f
                                for part, f in cases["infer_512"][0].items()}, 1, 1)
    notes = {"infer_512": "1 image 512 x 512, box head on 1000 proposals, mask head on 100 detections",
             "infer_800x1333": "1 image padded to 832 x 1344, same heads",
             "train_2x512": "2 images 512 x 512, box head on 512 RoIs, mask head on 168 positives per image; "
                            "3 x forward",
             "infer_1024_r101": "1 image 1024 x 1024, ours with ResNet-101, 81 classes, box head on 1000 proposals, "
                                "mask head on 100 detections",
             "infer_1024_matterport_r101": "1 image 1024 x 1024, matterport's layout, the same heads' counts"}
    results = {}
    for name, (forward, images, factor) in cases.items():
        per_image = {part: factor * f / images / 1e9 for part, f in forward.items()}
        total = sum(per_image.values())
        results[name] = {**{k: round(v, 2) for k, v in per_image.items()}, "total": round(total, 2)}
        print(f"{name}: GFLOPs per image ({notes[name]})")
        for part, value in per_image.items():
            print(f"  {part:10s} {value:8.1f}  {100 * value / total:5.1f}%")
        print(f"  {'total':10s} {total:8.1f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return results


if __name__ == "__main__":
    main()
