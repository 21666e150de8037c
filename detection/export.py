"""Export a trained detector as a SavedModel that takes raw uint8 images of any size.

    python tools/export.py --config configs/shapes.yaml --weights W.weights.h5 --output export/shapes/1

The ``serving_default`` signature (also ``serve``):

  input   images:          [batch, H, W, 3] uint8 RGB; any batch and any H, W, and different
                           calls may differ (one call: one size, as a tensor has).
  outputs boxes:           [batch, D, 4] float32 [y1, x1, y2, x2] in the pixels of the
                           INPUT image (not the model's resized input), pixel edges
                           (a box covering all of a W x H image is [0, 0, H, W]).
          class_ids:       [batch, D] int32, the dataset's own category ids (for a config
                           with CLASS_NAMES: the contiguous ids 1..K); 0 on padding rows.
          scores:          [batch, D] float32, descending; 0 on padding rows.
          num_detections:  [batch] int32; rows >= num_detections are padding (zeros).
          masks:           [batch, D, 28, 28] float32 (Mask R-CNN only): the probability
                           that each of a 28 x 28 grid of cells spanning the box is inside
                           the object, the grid covering [y1, x1, y2, x2] exactly; resize it
                           to the box's size and threshold at 0.5 for a mask (what
                           detection.engine.predictor.paste_masks does).
  D = DETECTION_MAX_INSTANCES.

Inside the signature, per image, what the training pipeline does: resize with the config's
IMAGE_RESIZE_MODE (``tf_resize_geometry``: the arithmetic of detection/data/resize.py in
float64, tested equal to ``resize_geometry``) by the IMAGE_RESIZE_METHOD's ``tf_resize``
(detection/data/tf_resize.py): for opencv a bit-exact copy of cv2.resize INTER_LINEAR on uint8
(the pipeline's resize; tf.image.resize differs by 1 grey level on 12% of the pixels); zero-pad
around it, the image where the method puts it (top-left, or centred for matterport's); build
image_meta; run the inference model. The inference model's batch is static (batch_slice), so the batch is run one
image at a time through a batch-1 Detector with ``tf.map_fn``: any batch works, and no compute
is spent on padding rows. (Padding the batch to a fixed size instead would cap the batch size
and waste work on small requests.) IMAGE_RESIZE_MODE pad64 and none work too (the model input
is then [1, None, None, 3]; checked by hand on the tiny model: boxes equal the Predictor's).

Differences from the Keras Predictor (detection.engine.predictor) on the same image file,
measured on the tiny shapes model at 48x80, 90x90 and 100x60: the model input is the same
bits, boxes agree within 1e-5 px and scores exactly (with tf.image.resize instead: 0.008 px,
scores 0.004). Not the same input: an image at least twice the model input on both sides,
which the Predictor (like the training pipeline) decodes at 1/2, 1/4 or 1/8 size with
OpenCV's reduced decoding and then resizes; the SavedModel receives full pixels and resizes
once. On 150x200 originals into 64 px that moved boxes by 0.3 px and scores by 0.02, and on
an uncertain detection changed which boxes pass.

Files: the SavedModel, plus ``assets.extra/classes.json`` ({"class_names", "category_ids"}),
which TensorFlow Serving ignores.

Serving with TensorFlow Serving (REST on port 8501; the folder above ``1/`` is the model base
path, ``1`` its version; use a Serving release at least as new as the TensorFlow that exported,
2.21 here, and the standard ops are all it needs)::

    python tools/export.py --config configs/shapes.yaml --weights runs/shapes/final.weights.h5 \\
        --output /srv/models/detector/1
    docker run --rm -p 8501:8501 \\
        --mount type=bind,source=/srv/models/detector,target=/models/detector \\
        -e MODEL_NAME=detector -t tensorflow/serving:latest
    # or, without docker:
    tensorflow_model_server --rest_api_port=8501 --model_name=detector \\
        --model_base_path=/srv/models/detector

    # the request: one image as nested lists [H][W][3] of 0..255 ints, batch of 1
    python -c "import cv2, json; im = cv2.imread('photo.jpg')[:, :, ::-1]; \\
        print(json.dumps({'signature_name': 'serving_default', 'instances': [im.tolist()]}))" > request.json
    curl -s -X POST http://localhost:8501/v1/models/detector:predict \\
        -H 'Content-Type: application/json' -d @request.json
    # -> {"predictions": [{"boxes": [[y1, x1, y2, x2], ...], "class_ids": [...], "scores": [...],
    #                      "num_detections": N, "masks": [...]}]}

    # the signature, as TensorFlow sees it:
    saved_model_cli show --dir /srv/models/detector/1 --tag_set serve --signature_def serving_default

(``instances`` is the row format: one entry per image, all of one size; each image's outputs
come back as one prediction.)
"""

import json
import os

import numpy as np
import tensorflow as tf

from detection.core.image_meta import IMAGE_META_SIZE, compose_image_meta_tensor
from detection.data.resize import resize_method, resize_mode
from detection.data.tf_resize import TF_OPS, tf_resize_bilinear_zero_border, tf_resize_image  # noqa: F401 (re-exported)
from detection.modeling.folding import fold_batch_norms

SIGNATURE_INPUT = "images"


def tf_resize_geometry(height, width, config):
    """The resize geometry of detection/data/resize.py, in TensorFlow.

    height, width: int32 scalar tensors, the original image size.
    Returns (scale float64, resized_h, resized_w, padded_h, padded_w, offset_y, offset_x) int32
    scalars but the scale, input pixels per original pixel. The arithmetic is resize_geometry's
    (the same ResizeMethod and ResizeMode rules run on tensors), in float64 as Python's floats,
    rounding halves to even as Python's round does.
    """
    mode = config.IMAGE_RESIZE_MODE
    method = resize_method(config.IMAGE_RESIZE_METHOD)
    h, w = tf.cast(height, tf.float64), tf.cast(width, tf.float64)
    scale = method.scale(h, w, mode, config.IMAGE_MIN_DIM, config.IMAGE_MAX_DIM, config.IMAGE_MIN_SCALE, TF_OPS)
    resized_h, resized_w = method.resized_shape(h, w, scale, TF_OPS)
    padded_h, padded_w = resize_mode(mode).padded_shape((resized_h, resized_w), config.IMAGE_MAX_DIM, TF_OPS)
    offset_y, offset_x = (tf.cast(v, tf.int32) for v in method.offset((padded_h, padded_w), (resized_h, resized_w)))
    return scale, resized_h, resized_w, padded_h, padded_w, offset_y, offset_x


def preprocess_image(image, config):
    """One uint8 image [h, w, 3] -> (model input [1, H, W, 3] float32, image_meta [1, 12]),
    as the training pipeline makes them (image id 0)."""
    shape = tf.shape(image)
    height, width = shape[0], shape[1]
    scale, rh, rw, ph, pw, oy, ox = tf_resize_geometry(height, width, config)
    resized = tf.cast(resize_method(config.IMAGE_RESIZE_METHOD).tf_resize(image, rh, rw), tf.float32)
    padded = tf.pad(resized, [[oy, ph - rh - oy], [ox, pw - rw - ox], [0, 0]])
    padded = tf.ensure_shape(padded, config.IMAGE_SHAPE)  # static in a fixed-size mode
    meta = compose_image_meta_tensor(0, (height, width, 3), (ph, pw, 3), (oy, ox, oy + rh, ox + rw), scale)
    return padded[None], tf.ensure_shape(meta, [IMAGE_META_SIZE])[None]


class ServingModel(tf.Module):
    """The serving function around a batch-1 inference model (see the module docstring).

    detector: a detection.modeling.detector.Detector built with batch_size=1, weights loaded.
    category_ids: K ints; class k is reported as category_ids[k - 1].
    fold_batch_norm: serve the inference model with its BatchNormalizations folded into the
    convolutions (detection.modeling.folding; the weights as they are now).
    """

    def __init__(self, detector, category_ids, fold_batch_norm=True):
        super().__init__(name="detector_serving")
        if detector.batch_size != 1:
            raise ValueError(f"ServingModel needs a batch-1 Detector, got batch size {detector.batch_size}")
        self.config = detector.config
        self.model = detector.inference_model
        if fold_batch_norm:
            self.model, _ = fold_batch_norms(self.model)
        # Index 0 (background / padding) maps to 0.
        self._category_table = tf.constant([0] + [int(c) for c in category_ids], tf.int32)
        self.use_mask = bool(self.config.USE_MASK)

    def output_signature(self):
        d = self.config.DETECTION_MAX_INSTANCES
        spec = {"boxes": tf.TensorSpec([d, 4], tf.float32), "class_ids": tf.TensorSpec([d], tf.int32),
                "scores": tf.TensorSpec([d], tf.float32), "num_detections": tf.TensorSpec([], tf.int32)}
        if self.use_mask:
            spec["masks"] = tf.TensorSpec([d] + list(self.config.MASK_SHAPE), tf.float32)
        return spec

    def detect_one(self, image):
        """image [h, w, 3] uint8 -> one image's outputs (no batch axis; see module docstring)."""
        model_image, meta = preprocess_image(image, self.config)
        out = self.model({"image": model_image, "image_meta": meta}, training=False)
        class_ids = tf.cast(out["class_ids"][0], tf.int32)
        result = {"boxes": out["boxes"][0], "class_ids": tf.gather(self._category_table, class_ids),
                  "scores": out["scores"][0], "num_detections": tf.cast(out["num_detections"][0], tf.int32)}
        if self.use_mask:
            result["masks"] = out["masks"][0]
        return result

    def serve(self, images):
        """images [batch, H, W, 3] uint8 -> dict of [batch, ...] outputs (module docstring)."""
        return tf.map_fn(self.detect_one, images, fn_output_signature=self.output_signature())


def export_saved_model(detector, category_ids, path, class_names=None, fold_batch_norm=True):
    """Writes the SavedModel of ``detector`` (batch-1, weights loaded) to ``path``.

    category_ids: K dataset ids of classes 1..K; class_names: K names, stored in
    ``assets.extra/classes.json``; fold_batch_norm: see ServingModel. Returns ``path``.
    """
    import keras

    serving = ServingModel(detector, category_ids, fold_batch_norm)
    archive = keras.export.ExportArchive()
    archive.track(serving.model)
    archive.add_endpoint(name="serve", fn=serving.serve,
                         input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name=SIGNATURE_INPUT)])
    path = os.fspath(path)
    archive.write_out(path, verbose=False)
    extra = os.path.join(path, "assets.extra")
    os.makedirs(extra, exist_ok=True)
    with open(os.path.join(extra, "classes.json"), "w") as f:
        json.dump({"class_names": list(class_names) if class_names is not None else None,
                   "category_ids": [int(c) for c in category_ids]}, f, indent=2)
    return path


def export_from_weights(config, weights_path, path, class_names, category_ids, exclude=()):
    """Builds a batch-1 inference Detector for ``config``, loads ``weights_path`` (a
    ``.weights.h5`` of Detector.save_weights) and exports it to ``path``."""
    from detection.engine.predictor import inference_detector

    # The SavedModel's own threshold: DETECTION_MIN_CONFIDENCE, what serving users expect.
    # In the config's inference precision (detection/engine/precision.py), as the Predictor.
    # Static shapes (padding_free=False): the serving signature's outputs are fixed-size anyway.
    detector = inference_detector(config, batch_size=1, min_confidence=config.DETECTION_MIN_CONFIDENCE,
                                  padding_free=False)
    detector.load_weights(weights_path, exclude=exclude)
    return export_saved_model(detector, category_ids, path, class_names)


def load_serving(path):
    """The exported model's serving function: images [B, H, W, 3] uint8 (numpy or tensor) ->
    dict of numpy outputs (see the module docstring)."""
    loaded = tf.saved_model.load(os.fspath(path))
    signature = loaded.signatures["serving_default"]

    def run(images):
        outputs = signature(**{SIGNATURE_INPUT: tf.convert_to_tensor(np.asarray(images, np.uint8))})
        return {k: v.numpy() for k, v in outputs.items()}

    run.loaded = loaded  # the signature's variables live as long as the loaded object
    return run
