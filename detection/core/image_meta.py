"""image_meta: the per-image vector that maps model-input pixels back to the original image.

Layout (float32, IMAGE_META_SIZE = 12):
  [0]      image_id (the dataset's own id)
  [1:4]    original image shape (H, W, C)
  [4:7]    model input shape after resize and padding (H, W, C)
  [7:11]   window (y1, x1, y2, x2): where the resized image sits inside the padded input
  [11]     scale: input pixels per original pixel

``parse_image_meta`` is the one place that knows the layout; everything else reads fields
through it. A box in input pixels maps to the original image as
``(box - [wy1, wx1, wy1, wx1]) / scale`` (``boxes_to_original``).
"""

import numpy as np

IMAGE_META_SIZE = 12


def _fields(image_id, original_shape, image_shape, window, scale):
    if len(original_shape) == 2 or len(image_shape) == 2:
        raise ValueError("shapes must be (H, W, C)")
    return [image_id, *original_shape[:3], *image_shape[:3], *window, scale]


def compose_image_meta(image_id, original_shape, image_shape, window, scale):
    """-> [12] float32 numpy vector (see the module docstring)."""
    return np.asarray(_fields(image_id, original_shape, image_shape, window, scale), np.float32)


def compose_image_meta_tensor(image_id, original_shape, image_shape, window, scale):
    """compose_image_meta in a graph: the same fields as scalars or scalar tensors -> [12] float32."""
    import tensorflow as tf

    return tf.stack([tf.cast(v, tf.float32) for v in _fields(image_id, original_shape, image_shape, window, scale)])


def with_input_shape(meta, height, width):
    """meta [B, 12] tensor -> the same with the model input shape's H, W set (e.g. after the
    batch was padded to a larger size)."""
    import tensorflow as tf

    rows = tf.shape(meta)[0]
    shape = tf.broadcast_to(tf.cast(tf.stack([height, width]), tf.float32), [rows, 2])
    return tf.concat([meta[:, :_INPUT_SHAPE], shape, meta[:, _INPUT_SHAPE + 2:]], axis=1)


_INPUT_SHAPE = 4  # index of the model input's H in the layout above


def parse_image_meta(meta):
    """meta: [..., 12] (numpy or tensor) -> dict of image_id [...], original_shape [..., 3],
    image_shape [..., 3], window [..., 4], scale [...]."""
    return {
        "image_id": meta[..., 0],
        "original_shape": meta[..., 1:4],
        "image_shape": meta[..., 4:7],
        "window": meta[..., 7:11],
        "scale": meta[..., 11],
    }


def boxes_to_original(boxes, meta, frame="pixels"):
    """boxes: [B, N, 4] in the model's box frame, meta: [B, 12] -> [B, N, 4] original-image pixels.

    The frame's rule (detection/core/frames.py BoxFrame.to_original): for "pixels"
    ``(box - window origin) / scale``; for "normalized" matterport's ``unmold_detections``
    (the box relative to the window times (original side - 1), plus [0, 0, 1, 1], rounded to
    whole pixels); then clipped to the original image.
    """
    import tensorflow as tf

    from detection.core.frames import box_frame

    meta = tf.convert_to_tensor(meta, tf.float32)
    fields = parse_image_meta(meta)
    original = fields["original_shape"]
    out = box_frame(frame).to_original(tf.convert_to_tensor(boxes, tf.float32), fields)
    h, w = original[:, 0], original[:, 1]
    limit = tf.stack([h, w, h, w], axis=-1)[:, None, :]
    return tf.clip_by_value(out, 0.0, limit)
