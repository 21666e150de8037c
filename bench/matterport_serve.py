"""matterport's own ``model.detect([image])`` as a paired-timing server (bench/paired.py).

Runs with the python of a separate venv that has matterport's TF 2 port (akTwelve/Mask_RCNN
under TensorFlow 2.20 and tf-keras 2.20, ../shared/matterport/README.md), never with this
project's environment; the project neither depends on nor imports matterport's code:

    PY bench/matterport_serve.py --mrcnn DIR --weights MODEL.h5 --config CFG.json --image IMG.png
        [--warmup 2]

DIR is the folder holding the port's ``mrcnn`` package (outside this checkout; default: the
venv imports it itself, e.g. through a .pth file in its site-packages). CFG.json holds
the attributes of matterport's Config (NAME, BACKBONE, NUM_CLASSES, IMAGE_MIN_DIM, ...;
GPU_COUNT and IMAGES_PER_GPU are set to 1). The weights are loaded with
``keras_model.load_weights(path, by_name=True)`` (the port's own ``load_weights`` loads
nothing under tf-keras), and a layer's kernel is checked to have changed. The image is read
as RGB (PNG: the same pixels as our side reads).

Served call: ``model.detect([image])`` to the end (matterport's mold, predict, unmold and
mask pasting). Before the warm-up calls it prints the first call's detections
(``DETECTIONS {"rois", "class_ids", "scores"}``): bench/run.py checks that both sides agree.
"""

import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["TF_USE_LEGACY_KERAS"] = "1"  # the port is Keras 2 code: tf.keras must be tf-keras


def build(mrcnn_dir, weights, values, model_dir):
    """matterport's inference MaskRCNN with ``values`` over its Config defaults, weights loaded."""
    if mrcnn_dir:
        sys.path.insert(0, mrcnn_dir)
    import numpy as np
    from mrcnn import model as modellib
    from mrcnn.config import Config

    attributes = {**values, "GPU_COUNT": 1, "IMAGES_PER_GPU": 1}
    config = type("PairConfig", (Config,), attributes)()
    model = modellib.MaskRCNN(mode="inference", config=config, model_dir=model_dir)
    layer = model.keras_model.get_layer("fpn_c5p5")
    before = np.array(layer.get_weights()[0])
    model.keras_model.load_weights(weights, by_name=True)
    if np.array_equal(before, layer.get_weights()[0]):
        raise SystemExit(f"{weights}: loading by name changed no weight of fpn_c5p5")
    return model


def read_rgb(path):
    import cv2

    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise SystemExit(f"{path}: not a readable image")
    return image[:, :, ::-1].copy()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mrcnn", help="folder of the mrcnn package (default: this python imports it)")
    parser.add_argument("--weights", required=True)
    parser.add_argument("--config", required=True, help="JSON of matterport Config attributes")
    parser.add_argument("--image", required=True)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args(argv)
    import tempfile

    values = json.loads(open(args.config).read())
    image = read_rgb(args.image)
    with tempfile.TemporaryDirectory() as model_dir:
        model = build(args.mrcnn, args.weights, values, model_dir)
        r = model.detect([image])[0]
        print("DETECTIONS " + json.dumps({"rois": r["rois"].tolist(), "class_ids": r["class_ids"].tolist(),
                                          "scores": r["scores"].tolist()}), flush=True)
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import paired  # bench/paired.py: stdlib only

        paired.serve(lambda: model.detect([image]), args.warmup)


if __name__ == "__main__":
    main()
