"""The image resizes of detection/data/resize.py's methods in TensorFlow, for the exported
SavedModel: the same pixels as the NumPy implementations (tests/test_infer_export.py).

TF_OPS runs ResizeMethod's arithmetic on tensors (float64 scales, int32 sizes), as
PYTHON_OPS runs it on Python numbers.
"""

import types

import tensorflow as tf

TF_OPS = types.SimpleNamespace(
    maximum=tf.maximum, minimum=tf.minimum, round=tf.round, where=tf.where,
    number=lambda v: tf.constant(v, tf.float64), int=lambda v: tf.constant(v, tf.int32),
    round_up=lambda x, multiple: (x + multiple - 1) // multiple * multiple,
    round_int=lambda x: tf.cast(tf.round(x), tf.int32), floor_int=lambda x: tf.cast(tf.floor(x), tf.int32))


def tf_resize_image(image, resized_h, resized_w):
    """image [h, w, 3] uint8 -> [resized_h, resized_w, 3] uint8, bit-exact with
    ``cv2.resize(image, (resized_w, resized_h), interpolation=cv2.INTER_LINEAR)``.

    tf.image.resize (bilinear, half-pixel centres, antialias=False) samples the same points
    but in float; OpenCV works in 11-bit fixed point (INTER_RESIZE_COEF_BITS), which gave 12%
    of the pixels a difference of 1. So this follows OpenCV 4.12's 8-bit path step by step:
    per axis, source position f = (d + 0.5) * src / dst - 0.5 in float32, weights
    round((1 - frac) * 2048) and round(frac * 2048) (x: positions clamped to the image with
    weight 0 outside; y: only the row index clamped, as OpenCV does); a horizontal pass in
    integers; then the vertical pass of its SIMD kernel (VResizeLinearVec_32s8u:
    ((r0 >> 4) * b0 >> 16) + ((r1 >> 4) * b1 >> 16), plus 2, >> 2), the path every x86 and
    ARM build takes. tests/test_infer_export.py checks equality with cv2 on many sizes.
    """
    src = tf.shape(image)
    x0, x1, a0, a1 = _linear_taps(src[1], resized_w, clamp_weights=True)
    y0, y1, b0, b1 = _linear_taps(src[0], resized_h, clamp_weights=False)
    pixels = tf.cast(image, tf.int32)
    rows = (tf.gather(pixels, x0, axis=1) * a0[None, :, None]
            + tf.gather(pixels, x1, axis=1) * a1[None, :, None])  # [h, rw, 3], x 2048
    top = tf.bitwise.right_shift(tf.gather(rows, y0, axis=0), 4)
    bottom = tf.bitwise.right_shift(tf.gather(rows, y1, axis=0), 4)
    value = (tf.bitwise.right_shift(top * b0[:, None, None], 16)
             + tf.bitwise.right_shift(bottom * b1[:, None, None], 16) + 2)
    return tf.cast(tf.clip_by_value(tf.bitwise.right_shift(value, 2), 0, 255), tf.uint8)


def _linear_taps(src, dst, clamp_weights):
    """OpenCV's INTER_LINEAR taps along one axis of ``src`` -> ``dst`` pixels: (index0 [dst],
    index1 [dst] int32, weight0 [dst], weight1 [dst] int32 in 1/2048)."""
    scale = 1.0 / (tf.cast(dst, tf.float64) / tf.cast(src, tf.float64))
    position = tf.cast((tf.range(dst, dtype=tf.float64) + 0.5) * scale - 0.5, tf.float32)
    index = tf.floor(position)
    frac = position - index
    index = tf.cast(index, tf.int32)
    if clamp_weights:
        low = index < 0
        high = index >= src - 1
        frac = tf.where(low | high, 0.0, frac)
        index = tf.where(low, 0, tf.where(high, src - 1, index))
    weight0 = tf.cast(tf.round((1.0 - frac) * 2048.0), tf.int32)
    weight1 = tf.cast(tf.round(frac * 2048.0), tf.int32)
    return (tf.clip_by_value(index, 0, src - 1), tf.clip_by_value(index + 1, 0, src - 1), weight0, weight1)


def tf_resize_bilinear_zero_border(image, resized_h, resized_w):
    """detection.data.images.resize_bilinear_zero_border (matterport's scikit-image resize) in
    TensorFlow: image [h, w, C] -> [resized_h, resized_w, C] float64, each axis sampled at
    ``(i + 0.5) * in / out - 0.5`` between its two neighbours, zeros beyond the edges, then
    clipped to the input's range. The same float64 values as SciPy's to rounding (a cast to
    uint8 truncates them alike but for a value within rounding of an integer)."""
    def along(values, axis, out_size):
        size = tf.shape(values)[axis]
        position = (tf.range(out_size, dtype=tf.float64) + 0.5) * (tf.cast(size, tf.float64)
                                                                    / tf.cast(out_size, tf.float64)) - 0.5
        low = tf.floor(position)
        frac = position - low
        low = tf.cast(low, tf.int32)
        result = 0.0
        for index, weight in ((low, 1.0 - frac), (low + 1, frac)):
            inside = (index >= 0) & (index < size)
            taps = tf.gather(values, tf.clip_by_value(index, 0, size - 1), axis=axis)
            shape = [-1 if a == axis else 1 for a in range(3)]
            result += taps * tf.reshape(tf.where(inside, weight, 0.0), shape)
        return result

    pixels = tf.cast(image, tf.float64)
    out = along(along(pixels, 0, resized_h), 1, resized_w)
    # scikit-image's clip=True: to the input's range, widened to 0 only when the output reaches it.
    low, high = tf.reduce_min(pixels), tf.reduce_max(pixels)
    widen = ~((low <= 0.0) & (high >= 0.0)) & (tf.reduce_min(out) <= 0.0) & (tf.reduce_max(out) >= 0.0)
    low = tf.where(widen, tf.minimum(low, 0.0), low)
    high = tf.where(widen, tf.maximum(high, 0.0), high)
    return tf.clip_by_value(out, low, high)
