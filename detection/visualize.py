"""Pictures of detections and ground truth, drawn with OpenCV.

    picture = display_instances(image, predictor.detect([image])[0], path="out/0001.jpg")

Every function takes an RGB uint8 image [H, W, 3] and boxes ``[y1, x1, y2, x2]`` in THAT
image's pixels, and returns a NEW uint8 RGB image (the input is never changed). Small images
are drawn larger, so labels stay legible: an image whose longer side is below ``min_size``
(256 px) is upscaled by the integer factor ``draw_scale(shape)`` (nearest neighbour, so
pixels stay crisp) and boxes and masks are scaled with it; a picture of a 64 x 64 image is
256 x 256. Each class has a fixed colour, ``class_colour(k)``: class k takes PALETTE[(k - 1)
% len(PALETTE)], so a class looks the same in every picture.
"""

import math
import os

import cv2
import numpy as np

from detection.data.masks import expand_mini_mask

# Distinct, saturated colours (RGB) that stay readable on photos; Kelly's list without its
# white, black and greys, in an order where neighbours differ most.
PALETTE = (
    (230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180),
    (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128),
    (220, 190, 255), (170, 110, 40), (255, 225, 25), (128, 0, 0), (170, 255, 195),
    (128, 128, 0), (255, 215, 180), (0, 0, 128),
)
MASK_ALPHA = 0.45  # opacity of the mask fill
MIN_SIZE = 256  # images with a longer side below this are upscaled for drawing
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def class_colour(class_id):
    """(R, G, B) of class id k (crowd GT rows, -k, share k's colour): PALETTE[(|k| - 1) % len]."""
    return PALETTE[(abs(int(class_id)) - 1) % len(PALETTE)]


def draw_scale(image_shape, min_size=MIN_SIZE):
    """Integer factor by which an image of ``image_shape`` (H, W[, C]) is drawn: the smallest
    that brings its longer side to ``min_size`` or more, and 1 for images already that large."""
    longest = max(image_shape[0], image_shape[1])
    return max(1, math.ceil(min_size / max(longest, 1)))


def draw_detections(image, boxes, class_ids, scores, class_names, masks=None, score_threshold=0.0,
                    min_size=MIN_SIZE):
    """Draws detections: a box, a "name score" label and (with masks) a translucent fill.

    image: [H, W, 3] uint8 RGB.
    boxes: [N, 4] float [y1, x1, y2, x2] pixels of ``image``.
    class_ids: [N] int contiguous class ids 1..K (rows with class 0 are padding, skipped).
    scores: [N] float; detections below ``score_threshold`` are not drawn.
    class_names: K names, class_names[k - 1] of class k (ids past the list show as "class k").
    masks: None, or [N, H, W] full-image masks (nonzero = inside) at the size of ``image``.
    Returns [H * s, W * s, 3] uint8 RGB, s = draw_scale(image.shape, min_size).
    """
    scores = np.asarray(scores, np.float32).reshape(-1)
    labels = [f"{_class_name(k, class_names)} {s:.2f}" for k, s in zip(np.asarray(class_ids).reshape(-1), scores)]
    keep = (scores >= score_threshold) & (np.asarray(class_ids).reshape(-1) != 0)
    return _draw(image, boxes, class_ids, labels, masks, keep, min_size)


def display_instances(image, boxes, masks=None, class_ids=None, class_names=None, scores=None, title=None,
                      path=None, show=False, min_size=MIN_SIZE):
    """Draws instances, as matterport's ``visualize.display_instances``, and returns the picture.

        r = predictor.detect([image])[0]
        picture = display_instances(image, r)                     # a detect() result
        display_instances(image, r["rois"], r["masks"], r["class_ids"], ["BG", "balloon"], r["scores"],
                          path="out.jpg")                         # matterport's arguments

    image: [H, W, 3] uint8 RGB. boxes: [N, 4] [y1, x1, y2, x2] in ``image``'s pixels, or a
    detect() result dict (rois, masks, class_ids, class_names, scores; then leave the other
    arguments out). masks: None or [H, W, N] (matterport's layout, nonzero = inside).
    class_ids: [N] ints; class_names: a list indexed by class id (matterport's, background
    first) or a {class id: name} mapping; missing names show as "class k". scores: [N] or None
    (labels without scores). title: drawn at the top-left. path: also saved there (format by
    extension). show: also shown with matplotlib (needs a display).
    Returns [H * s, W * s, 3] uint8 RGB, s = draw_scale(image.shape, min_size); a class keeps
    its colour in every picture.
    """
    if isinstance(boxes, dict):
        result = boxes
        boxes, masks, class_ids, scores = result["rois"], result.get("masks"), result["class_ids"], result["scores"]
        class_names = dict(zip(np.asarray(class_ids).tolist(), result["class_names"]))
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    class_ids = np.ones(len(boxes), np.int64) if class_ids is None else np.asarray(class_ids).reshape(-1)
    names = class_names if isinstance(class_names, dict) else dict(enumerate(class_names or []))
    labels = [names.get(int(k), f"class {int(k)}") for k in class_ids]
    if scores is not None:
        labels = [f"{label} {s:.2f}" for label, s in zip(labels, np.asarray(scores).reshape(-1))]
    if masks is not None:
        masks = np.transpose(np.asarray(masks), (2, 0, 1))  # [N, H, W] for drawing
    picture = _draw(image, boxes, class_ids, labels, masks, np.ones(len(boxes), bool), min_size)
    if title:
        _label(picture, title, (0, 0), (255, 255, 255), max(0.4, max(picture.shape[:2]) / 900), 1)
    if path is not None:
        save_image(path, picture)
    if show:
        import matplotlib.pyplot as plt

        plt.figure(figsize=(12, 12 * picture.shape[0] / picture.shape[1]))
        plt.imshow(picture)
        plt.axis("off")
        plt.show()
    return picture


def draw_ground_truth(image, boxes, class_ids, class_names, masks=None, min_size=MIN_SIZE):
    """Draws GT boxes with their class names (and masks); crowd rows (negative ids) are
    labelled "name (crowd)"; padding rows (class 0) are skipped.

    image: [H, W, 3] uint8 RGB; boxes: [N, 4] [y1, x1, y2, x2] pixels of ``image``;
    class_ids: [N] int; masks: None or [N, H, W] full-image masks.
    Returns [H * s, W * s, 3] uint8 RGB, s = draw_scale(image.shape, min_size).
    """
    class_ids = np.asarray(class_ids).reshape(-1)
    labels = [_class_name(k, class_names) + (" (crowd)" if k < 0 else "") for k in class_ids]
    return _draw(image, boxes, class_ids, labels, masks, class_ids != 0, min_size)


def draw_input_batch(batch, class_names, min_size=MIN_SIZE):
    """Pictures of what the model is trained on: each image of a ``make_dataset`` batch with
    its GT boxes and masks, in the MODEL-INPUT frame (after augmentation, resize, padding).

    batch: numpy dict of make_dataset's outputs: image [B, H, W, 3] float32 0..255,
        gt_class_ids [B, M], gt_boxes [B, M, 4] input pixels, gt_masks [B, M, mh, mw] mini
        masks (mini masks of 1 x 1 mean "no masks" and are not drawn).
    Returns a list of B uint8 RGB pictures.
    """
    pictures = []
    for i, image in enumerate(np.asarray(batch["image"])):
        image = np.clip(np.round(image), 0, 255).astype(np.uint8)
        rows = np.flatnonzero(batch["gt_class_ids"][i] != 0)
        boxes = batch["gt_boxes"][i][rows]
        masks = None
        mini = batch["gt_masks"][i][rows]
        if mini.shape[1:] != (1, 1):
            masks = np.stack([expand_mini_mask(m, b, image.shape) for m, b in zip(mini, boxes)]) if len(rows) \
                else np.zeros((0,) + image.shape[:2], np.uint8)
        pictures.append(draw_ground_truth(image, boxes, batch["gt_class_ids"][i][rows], class_names, masks, min_size))
    return pictures


def write_input_samples(dataset, config, count, output_dir, seed=None):
    """Writes ``count`` training samples as the model sees them (make_dataset(training=True):
    shuffled, augmented, resized, padded) with their GT drawn (draw_input_batch) to
    ``output_dir``/sample_000.png, ... Returns the paths written.

    dataset: a detection.data.records.Dataset; seed: default config.SEED.
    """
    from detection.data.pipeline import make_dataset

    batches = make_dataset(dataset, config, training=True, seed=seed, repeat=True, drop_remainder=False)
    paths = []
    for batch in batches.as_numpy_iterator():
        for picture in draw_input_batch(batch, dataset.class_names):
            if len(paths) == count:
                return paths
            paths.append(os.path.join(output_dir, f"sample_{len(paths):03d}.png"))
            save_image(paths[-1], picture)
    return paths


def save_image(path, rgb):
    """Writes an RGB uint8 image; the format follows the extension (.jpg at quality 95, .png).
    Creates the parent folder. Raises OSError when OpenCV cannot write it."""
    path = os.fspath(path)
    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, exist_ok=True)
    params = [cv2.IMWRITE_JPEG_QUALITY, 95] if path.lower().endswith((".jpg", ".jpeg")) else []
    ok, data = cv2.imencode(os.path.splitext(path)[1] or ".png", cv2.cvtColor(np.asarray(rgb, np.uint8),
                                                                             cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise OSError(f"{path}: OpenCV cannot encode an image with this extension")
    data.tofile(path)  # tofile, like read_image's fromfile, handles non-ASCII paths


# ----------------------------------------------------------------------------------------


def _class_name(class_id, class_names):
    k = abs(int(class_id))
    return class_names[k - 1] if 1 <= k <= len(class_names) else f"class {k}"


def _draw(image, boxes, class_ids, labels, masks, keep, min_size):
    """The rows where ``keep`` [N] bool is true, drawn (see draw_detections)."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be [H, W, 3] RGB, got shape {list(image.shape)}")
    scale = draw_scale(image.shape, min_size)
    height, width = image.shape[0] * scale, image.shape[1] * scale
    canvas = cv2.resize(image.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST) \
        if scale > 1 else image.astype(np.uint8).copy()
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4) * scale
    class_ids = np.asarray(class_ids).reshape(-1)
    rows = [i for i in range(len(boxes)) if keep[i]]
    thickness = max(1, round(max(height, width) / 300))
    font_scale = max(0.4, max(height, width) / 900)

    if masks is not None:
        # All fills first, then every outline and label on top, so no fill hides a label.
        for i in rows:
            mask = np.asarray(masks[i]) != 0
            if scale > 1:
                mask = np.repeat(np.repeat(mask, scale, axis=0), scale, axis=1)
            colour = np.array(class_colour(class_ids[i]), np.float32)
            canvas[mask] = np.round(canvas[mask] * (1 - MASK_ALPHA) + colour * MASK_ALPHA).astype(np.uint8)
    for i in rows:
        y1, x1, y2, x2 = boxes[i]
        colour = class_colour(class_ids[i])
        # Box edges are pixel edges: the last row / column inside is y2 - 1, x2 - 1.
        top_left = (int(round(x1)), int(round(y1)))
        bottom_right = (max(int(round(x2)) - 1, top_left[0]), max(int(round(y2)) - 1, top_left[1]))
        cv2.rectangle(canvas, top_left, bottom_right, colour, thickness)
        _label(canvas, labels[i], top_left, colour, font_scale, thickness)
    return canvas


def _label(canvas, text, top_left, colour, font_scale, thickness):
    """Text on a filled box of the class colour above the box's top-left corner (inside
    the box when there is no room above), black or white, whichever reads better."""
    text_thickness = max(1, thickness - 1)
    (tw, th), baseline = cv2.getTextSize(text, _FONT, font_scale, text_thickness)
    pad = 2
    x = min(max(top_left[0], 0), max(canvas.shape[1] - tw - 2 * pad, 0))
    y_top = top_left[1] - th - baseline - 2 * pad
    if y_top < 0:
        y_top = max(top_left[1], 0)
    y_top = min(y_top, max(canvas.shape[0] - th - baseline - 2 * pad, 0))
    cv2.rectangle(canvas, (x, y_top), (x + tw + 2 * pad, y_top + th + baseline + 2 * pad), colour, -1)
    luminance = 0.299 * colour[0] + 0.587 * colour[1] + 0.114 * colour[2]
    ink = (0, 0, 0) if luminance > 140 else (255, 255, 255)
    cv2.putText(canvas, text, (x + pad, y_top + pad + th), _FONT, font_scale, ink, text_thickness, cv2.LINE_AA)
