"""torchvision as the oracle of our Detector with torchvision's conventions (configs/torchvision_*.yaml).

Weights are generated with NumPy (``oracle_state_dict``: one np.random.default_rng(seed) per
state_dict key in sorted order, scaled per kind of array so that activations stay finite and
detections exist), so our tests rebuild them without torch. Images are generated with NumPy
too (``oracle_images``: several sizes and aspect ratios).

Three commands:

  record   (in the torchvision venv) loads the generated weights into torchvision's model
           with load_state_dict, runs model.eval() on the images and writes its outputs and
           the state_dict manifest (key -> shape) into --out:
             /work/tv-venv/bin/python bench/torchvision_oracle.py record --out tests/fixtures/torchvision_oracle
  compare  (in the project venv) runs our Detector (through the Predictor) with the same weights and images and
           compares with a recorded folder (prints one line per image and model):
             python bench/torchvision_oracle.py compare --oracle tests/fixtures/torchvision_oracle
  live     records into a temporary folder with --torch-python, also writing torchvision's own
           ``torch.save(model.state_dict())`` .pth files, and compares, loading those files:
             python bench/torchvision_oracle.py live --torch-python /work/tv-venv/bin/python
           (record and live take --models NAME ...: only these; default all five)

Matching (``match``): each oracle detection is paired with ours of its class with the largest
box IoU; a detection whose score is within SCORE_TOLERANCE of the last kept score (the
DETECTION_MAX_INSTANCES cut) may legitimately be on one side only.
"""

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
MODELS = {"fasterrcnn_resnet50_fpn": "torchvision_fasterrcnn_r50_fpn.yaml",
          "maskrcnn_resnet50_fpn": "torchvision_maskrcnn_r50_fpn.yaml",
          "fasterrcnn_resnet50_fpn_v2": "torchvision_fasterrcnn_r50_fpn_v2.yaml",
          "maskrcnn_resnet50_fpn_v2": "torchvision_maskrcnn_r50_fpn_v2.yaml",
          "fasterrcnn_mobilenet_v3_large_fpn": "torchvision_fasterrcnn_mobilenet_v3_large_fpn.yaml"}
NUM_CLASSES = 5
MIN_SIZE, MAX_SIZE = 256, 416
DETECTIONS = 30  # per image (torchvision's 100 would make the recorded masks too large a fixture)
IMAGE_SIZES = ((240, 320), (300, 200), (256, 256), (180, 400))
SEED = 2025
BOX_TOLERANCE, SCORE_TOLERANCE, MASK_IOU = 1.0, 0.01, 0.95


# -- shared by both sides (NumPy only) --------------------------------------------------------

def oracle_images():
    """[(name, [H, W, 3] uint8 RGB)]: a smooth background with a few filled rectangles and discs."""
    images = []
    for i, (h, w) in enumerate(IMAGE_SIZES):
        rng = np.random.default_rng(SEED + i)
        y, x = np.mgrid[0:h, 0:w].astype(np.float32)
        image = np.stack([80 + 60 * np.sin(x / 23 + c) + 40 * np.cos(y / 31 - c) for c in range(3)], axis=-1)
        for _ in range(4):
            colour = rng.integers(0, 256, 3)
            cy, cx = rng.integers(0, h), rng.integers(0, w)
            r = rng.integers(15, min(h, w) // 3)
            if rng.random() < 0.5:
                image[max(cy - r, 0):cy + r, max(cx - r, 0):cx + r] = colour
            else:
                image[(y - cy) ** 2 + (x - cx) ** 2 < r * r] = colour
        images.append((f"image{i}_{h}x{w}", np.clip(image, 0, 255).astype(np.uint8)))
    return images


def _scale(key, shape, batch_norm):
    """Standard deviation, offset and uniform range of the values of one state_dict array
    (batch_norm: the array belongs to a BatchNorm)."""
    fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
    if key.endswith("running_var"):
        return 0.0, 1.0, (0.5, 1.5)            # uniform range
    if key.endswith("running_mean"):
        return 0.1, 0.0, None
    if batch_norm:  # BatchNorm affine
        if key.endswith("weight"):
            small = ".bn3." in key or "downsample.1" in key  # keep the residual sums from growing
            return 0.0, 0.0, (0.1, 0.3) if small else (0.6, 1.0)
        return 0.05, 0.0, None
    if key.endswith("bias"):
        return 0.01, 0.0, None
    if "conv5_mask" in key:
        fan_in = shape[0] * shape[2] * shape[3] // 4
    std = (2.0 / fan_in) ** 0.5
    if "bbox_pred" in key:
        std *= 0.2   # boxes move, but stay boxes
    return std, 0.0, None


def oracle_state_dict(manifest, seed=SEED):
    """{key: float32 array} from a manifest {"shapes": {key: shape}, "calibration": {module:
    {"scale": [K], "bias": [K]}}}: one generator per key, sorted keys; then each calibrated
    module's output channels are multiplied by ``scale`` and its bias set to ``bias`` (measured
    by ``record`` so that each class's logits have mean 0 and a chosen spread)."""
    arrays = {}
    shapes = manifest["shapes"]
    norms = {k[:-len(".running_mean")] for k in shapes if k.endswith(".running_mean")}
    for index, key in enumerate(sorted(shapes)):
        shape = tuple(shapes[key])
        rng = np.random.default_rng([seed, index])
        std, offset, uniform = _scale(key, shape, key.rsplit(".", 1)[0] in norms)
        if uniform is not None:
            values = rng.uniform(uniform[0], uniform[1], shape)
        else:
            values = offset + std * rng.standard_normal(shape)
        arrays[key] = values.astype(np.float32)
    for module, calibration in manifest.get("calibration", {}).items():
        weight = arrays[f"{module}.weight"]
        scale = np.asarray(calibration["scale"], np.float32).reshape((-1,) + (1,) * (weight.ndim - 1))
        arrays[f"{module}.weight"] = (weight * scale).astype(np.float32)
        arrays[f"{module}.bias"] = np.asarray(calibration["bias"], np.float32)
    return arrays


def storage_bytes(arrays, key):
    """The bytes torch.save writes for ``key`` of a recorded model's state_dict: the generated
    array (oracle_state_dict), or BatchNorm2d's num_batches_tracked, 0 (int64) after load_state_dict."""
    if key.endswith("num_batches_tracked"):
        return np.zeros((), "<i8").tobytes()
    return np.ascontiguousarray(arrays[key], "<f4").tobytes()


def with_data(without_data, manifest, out):
    """Writes ``out``: torch's own torch.save(model.state_dict()) zip (``without_data``, its
    entries but the storages) with each storage ``data/<i>`` regenerated from the seeds
    (manifest["storages"][i] names its key; the recorder checked these bytes equal torch's)."""
    import zipfile

    arrays = oracle_state_dict(manifest)
    with zipfile.ZipFile(without_data) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as target:
        prefix = source.namelist()[0].split("/")[0]
        for info in source.infolist():
            target.writestr(info.filename, source.read(info))
        for index, key in enumerate(manifest["storages"]):
            target.writestr(f"{prefix}/data/{index}", storage_bytes(arrays, key))


def mask_rle(mask):
    """[H, W] bool -> run lengths in row-major order, starting with a run of False."""
    flat = np.concatenate([[False], mask.reshape(-1), [not mask.reshape(-1)[-1]]]) if mask.size else np.zeros(1, bool)
    changes = np.flatnonzero(flat[1:] != flat[:-1])
    return np.diff(np.concatenate([[0], changes])).astype(np.int64).tolist()


def rle_mask(counts, hw):
    values = np.zeros(sum(counts), bool)
    position = 0
    for i, n in enumerate(counts):
        values[position:position + n] = i % 2 == 1
        position += n
    return values[:hw[0] * hw[1]].reshape(hw)


# -- the torchvision side --------------------------------------------------------------------

def record(out, save_pth=False, models=tuple(MODELS)):
    import torch
    import torchvision

    torch.set_num_threads(1)
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    results = {"torch": torch.__version__, "torchvision": torchvision.__version__, "numpy": np.__version__,
               "num_classes": NUM_CLASSES, "min_size": MIN_SIZE, "max_size": MAX_SIZE, "detections": DETECTIONS,
               "seed": SEED, "models": {}}
    for name in models:
        model = getattr(torchvision.models.detection, name)(
            weights=None, weights_backbone=None, num_classes=NUM_CLASSES, min_size=MIN_SIZE, max_size=MAX_SIZE,
            box_detections_per_img=DETECTIONS)
        shapes = {k: list(v.shape) for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
        manifest = {"shapes": shapes, "calibration": {}}
        _load(model, manifest)
        manifest["calibration"] = calibrate(model)
        _load(model, manifest)
        if name in WITHOUT_DATA:
            manifest["storages"] = write_without_data(model.state_dict(), manifest, out / WITHOUT_DATA[name])
        (out / f"manifest_{name}.json").write_text(json.dumps(manifest, sort_keys=True) + "\n")
        if save_pth:
            torch.save(model.state_dict(), out / f"{name}.pth")
        images = []
        for image_name, image in oracle_images():
            with torch.no_grad():
                tensor = torch.from_numpy(image).permute(2, 0, 1).float() / 255.0
                output = model([tensor])[0]
            entry = {"image": image_name, "boxes_xyxy": output["boxes"].numpy().round(4).tolist(),
                     "labels": output["labels"].numpy().tolist(), "scores": output["scores"].numpy().round(6).tolist()}
            if "masks" in output:
                entry["masks_rle"] = [mask_rle(m[0].numpy() > 0.5) for m in output["masks"]]
            images.append(entry)
            print(f"{name} {image_name}: {len(entry['labels'])} detections", flush=True)
        results["models"][name] = images
    (out / "detections.json").write_text(json.dumps(results, separators=(",", ":")) + "\n")


# Models whose torch.save(model.state_dict()) is recorded without its storages (the 75 MB of
# float32 weights, regenerated from the seeds by ``with_data``): torch's own zip and pickle.
WITHOUT_DATA = {"fasterrcnn_mobilenet_v3_large_fpn": "state_dict_fasterrcnn_mobilenet_v3_large_fpn_without_data.pth"}


def write_without_data(state_dict, manifest, out):
    """torch.save(state_dict) into memory, then ``out``: the same zip without its ``data/<i>``
    storage entries. Returns the state_dict key of each storage, in torch's numbering, after
    checking that each storage's bytes are what ``storage_bytes`` regenerates."""
    import io
    import zipfile

    import torch

    buffer = io.BytesIO()
    torch.save(state_dict, buffer)
    keys = list(state_dict)  # torch numbers the storages as it meets them: one per tensor here
    arrays = oracle_state_dict(manifest)
    with zipfile.ZipFile(buffer) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as target:
        storages = [i for i in source.infolist() if "/data/" in i.filename]
        assert len(storages) == len(keys), (len(storages), len(keys))
        for info in source.infolist():
            if "/data/" in info.filename:
                key = keys[int(info.filename.rsplit("/", 1)[1])]
                assert source.read(info) == storage_bytes(arrays, key), key
            else:
                target.writestr(info.filename, source.read(info))
    return keys


def _load(model, manifest):
    import torch

    state = {k: torch.from_numpy(v) for k, v in oracle_state_dict(manifest).items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected and all(k.endswith("num_batches_tracked") for k in missing), (missing, unexpected)
    model.eval()


# Spread of the calibrated logits: classes compete (scores from about 0.05 to 0.9) and masks
# cover part of their box.
CLASS_LOGIT_STD, MASK_LOGIT_STD = 2.0, 3.0
# MobileNetV3's RPN (rpn_score_thresh 0.05): objectness logits of mean -4 and std 2, so that about
# 70 % of the anchors score below 0.05 (logit -2.94): the threshold removes much of the top-k.
RPN_LOGIT_MEAN, RPN_LOGIT_STD = -4.0, 2.0


def calibrate(model):
    """Scale and bias of cls_score (and mask_fcn_logits) so that over the RoIs of the first
    image each class logit has mean 0 and std CLASS_LOGIT_STD (mask: over the pixels, MASK_LOGIT_STD);
    with an RPN score threshold also rpn.head.cls_logits (mean RPN_LOGIT_MEAN, std RPN_LOGIT_STD over
    the first image's anchors). All from one forward pass of the uncalibrated model."""
    import torch

    seen = {}

    def keep_output(name):
        def hook(module, inputs, output):  # the RPN head runs once per FPN map: keep them all
            seen[name] = seen.get(name, []) + [output.detach()] if name.startswith("rpn") else output.detach()
        return hook

    modules = {"roi_heads.box_predictor.cls_score": (CLASS_LOGIT_STD, 0.0)}  # (std, mean)
    if hasattr(model.roi_heads, "mask_predictor") and model.roi_heads.mask_predictor is not None:
        modules["roi_heads.mask_predictor.mask_fcn_logits"] = (MASK_LOGIT_STD, 0.0)
    if model.rpn.score_thresh > 0:
        modules["rpn.head.cls_logits"] = (RPN_LOGIT_STD, RPN_LOGIT_MEAN)
    handles = [model.get_submodule(m).register_forward_hook(keep_output(m)) for m in modules]
    image = oracle_images()[0][1]
    with torch.no_grad():
        model([torch.from_numpy(image).permute(2, 0, 1).float() / 255.0])
    for h in handles:
        h.remove()
    calibration = {}
    for module, (spread, target_mean) in modules.items():
        output = torch.cat([o.flatten(2) for o in seen[module]], dim=2) if module.startswith("rpn") else seen[module]
        bias = model.get_submodule(module).bias.detach()
        raw = output - bias.reshape((1, -1) + (1,) * (output.ndim - 2))  # without the bias
        dims = [d for d in range(output.ndim) if d != 1]
        mean, std = raw.mean(dim=dims), raw.std(dim=dims)
        scale = (spread / std).numpy().astype(np.float32)
        calibration[module] = {"scale": [float(v) for v in scale],
                               "bias": [float(v) for v in (target_mean - mean.numpy() * scale).astype(np.float32)]}
    return calibration


# -- our side ----------------------------------------------------------------------------------

def our_model(name, oracle_dir, pth=None):
    """A Predictor (our Detector with the torchvision config of ``name``) with the oracle's
    settings and weights (generated, or a .pth), wrapped as OurModel."""
    from detection.config import Config
    from detection.engine.predictor import Predictor
    from detection.modeling.torchvision_weights import load_state_dict

    config = Config.from_yaml(REPO / "configs" / MODELS[name], overrides=[
        f"NUM_CLASSES={NUM_CLASSES}", "CLASS_NAMES=null", "CATEGORY_IDS=null",
        f"IMAGE_MIN_DIM={MIN_SIZE}", f"IMAGE_MAX_DIM={MAX_SIZE}", "IMAGES_PER_GPU=1",
        f"DETECTION_MAX_INSTANCES={DETECTIONS}"])
    predictor = Predictor(config, batch_size=1, score_threshold=config.DETECTION_MIN_CONFIDENCE)
    if pth is not None:
        predictor.detector.load_weights(pth, log=None)
    else:
        manifest = json.loads((pathlib.Path(oracle_dir) / f"manifest_{name}.json").read_text())
        load_state_dict(predictor.detector.inference_model, oracle_state_dict(manifest), f"generated {name}",
                        config.NUM_CLASSES)
    return OurModel(predictor)


class OurModel:
    """``detect(image)`` -> boxes [D, 4] [y1, x1, y2, x2] original pixels, class_ids [D], scores
    [D], masks [D, H, W] uint8 (Mask R-CNN): the Predictor's detections of one image."""

    def __init__(self, predictor):
        self.predictor = predictor
        self.config = predictor.config
        self.use_mask = predictor.config.USE_MASK

    def detect(self, image):
        return self.detect_all([image])[0]

    def detect_all(self, images):
        """detect() of each image, in order, through one input pipeline."""
        from detection.engine.predictor import array_records

        return [{k: found[k] for k in ("boxes", "class_ids", "scores", "masks") if found[k] is not None}
                for found in self.predictor.predict_records(array_records(images))]


def _iou(a, b):
    """a [N, 4], b [M, 4] xyxy -> [N, M]."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=-1)
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])  # noqa: E731
    return inter / np.maximum(area(a)[:, None] + area(b)[None] - inter, 1e-9)


def match(oracle, ours, max_instances):
    """Compares one image's detections. oracle: a detections.json entry; ours: OurModel.detect().

    Returns a dict: counts, matched, unmatched (oracle detections without a partner, outside the
    tolerance band of the cut), max box difference (px), max score difference, min mask IoU."""
    boxes = np.asarray(oracle["boxes_xyxy"], np.float32).reshape(-1, 4)
    labels = np.asarray(oracle["labels"])
    scores = np.asarray(oracle["scores"], np.float32)
    our_boxes = ours["boxes"][:, [1, 0, 3, 2]]
    cut = scores[-1] if len(scores) >= max_instances else -1.0
    ious = _iou(boxes, our_boxes) if len(our_boxes) and len(boxes) else np.zeros((len(boxes), len(our_boxes)))
    ious = np.where(labels[:, None] == ours["class_ids"][None], ious, -1.0)
    result = {"oracle": len(labels), "ours": len(our_boxes), "matched": 0, "unmatched": 0,
              "box_diff": 0.0, "score_diff": 0.0, "mask_iou": 1.0}
    for i in range(len(labels)):
        j = int(np.argmax(ious[i])) if ious.shape[1] else -1
        if j < 0 or ious[i, j] < 0.5:
            if scores[i] > cut + SCORE_TOLERANCE:
                result["unmatched"] += 1
            continue
        result["matched"] += 1
        result["box_diff"] = max(result["box_diff"], float(np.abs(boxes[i] - our_boxes[j]).max()))
        result["score_diff"] = max(result["score_diff"], float(abs(scores[i] - ours["scores"][j])))
        if "masks_rle" in oracle:
            want = rle_mask(oracle["masks_rle"][i], ours["masks"].shape[1:])
            got = ours["masks"][j] > 0.5
            union = np.logical_or(want, got).sum()
            iou = np.logical_and(want, got).sum() / union if union else 1.0
            result["mask_iou"] = min(result["mask_iou"], float(iou))
    our_above_cut = int((ours["scores"] > cut + SCORE_TOLERANCE).sum())
    result["extra"] = max(0, our_above_cut - int((scores > cut + SCORE_TOLERANCE).sum()))
    return result


def passes(result):
    return (result["unmatched"] == 0 and result["extra"] == 0 and result["box_diff"] <= BOX_TOLERANCE
            and result["score_diff"] <= SCORE_TOLERANCE and result["mask_iou"] > MASK_IOU)


def compare(oracle_dir, pth_dir=None):
    oracle_dir = pathlib.Path(oracle_dir)
    recorded = json.loads((oracle_dir / "detections.json").read_text())
    images = dict(oracle_images())
    ok = True
    for name, entries in recorded["models"].items():
        pth = None if pth_dir is None else pathlib.Path(pth_dir) / f"{name}.pth"
        model = our_model(name, oracle_dir, pth)
        found = model.detect_all([images[entry["image"]] for entry in entries])
        for entry, ours in zip(entries, found, strict=True):
            result = match(entry, ours, model.config.DETECTION_MAX_INSTANCES)
            ok &= passes(result)
            print(f"{name} {entry['image']}: {'ok' if passes(result) else 'DIFFERENT'} " + json.dumps(result))
    return ok


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("record")
    p.add_argument("--out", required=True)
    p.add_argument("--save-pth", action="store_true", help="also write torch.save(model.state_dict()) per model")
    p.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    p = sub.add_parser("compare")
    p.add_argument("--oracle", default=str(REPO / "tests" / "fixtures" / "torchvision_oracle"))
    p.add_argument("--pth-dir", help="load the weights from the <model>.pth files here instead of generating them")
    p = sub.add_parser("live")
    p.add_argument("--torch-python", default="/work/tv-venv/bin/python")
    p.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    args = parser.parse_args(argv)
    if args.command == "record":
        record(args.out, args.save_pth, args.models)
        return 0
    if args.command == "compare":
        return 0 if compare(args.oracle, args.pth_dir) else 1
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([args.torch_python, __file__, "record", "--out", tmp, "--save-pth", "--models", *args.models],
                       check=True)
        return 0 if compare(tmp, tmp) else 1


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main())
