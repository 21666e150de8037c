"""Reading image files and placing them in the model input.

Every image comes out RGB uint8 [H, W, 3], whatever the file holds: ``cv2.IMREAD_COLOR``
turns grayscale into 3 channels, drops alpha, maps 16-bit to 8-bit (value >> 8) and applies
the EXIF orientation tag (verified on OpenCV 4.12: a 20x40 JPEG tagged orientation 6 decodes
as 40x20). A missing, empty or corrupt file is an ``ImageReadError`` naming the file.

Truncated JPEGs (a download cut short: the data end before the end-of-image marker) are decoded
as far as the data go, the missing rows grey, as browsers and ``cv2.imread`` show them
(libjpeg's own recovery: the end marker it inserts at a premature end of file is appended here;
``cv2.imdecode`` alone rejects the data). ``read_image_checked`` says when that happened, so the
pipeline and the loaders count it (``truncated_image``); ``truncation_suspected`` finds such
files from their last bytes, without decoding, at load time. A truncated PNG stays an error.

Frames: the original image is what ``read_image`` returns at reduction 1; ``resize_and_pad``
scales it by ``geometry.scale`` with the geometry's ResizeMethod (detection/data/resize.py) and
places it at ``geometry.offset`` in the padded model input (see detection/data/resize.py).
"""

import os
import warnings

import cv2
import numpy as np

from detection.core.image_meta import compose_image_meta
from detection.data.threads import thread_map
from detection.data.validation import DataError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")

_JPEG_START, _JPEG_END = b"\xff\xd8\xff", b"\xff\xd9"
_PNG_START, _PNG_END = b"\x89PNG\r\n\x1a\n", b"IEND"
# Bytes read at the end of a file to find its end marker: writers may add a little padding
# after it (zeros, a trailer), never inside entropy-coded JPEG data, where 0xFF is stuffed.
_TAIL_BYTES = 64

# JPEG decoding can scale by 1/2, 1/4, 1/8 in the DCT, far faster than decoding then resizing.
_REDUCED_FLAGS = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2,
                  4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}


class ImageReadError(DataError):
    """An image file is missing, unreadable, corrupt or truncated beyond decoding."""


class TruncatedImageWarning(UserWarning):
    """read_image decoded a truncated JPEG as far as its data go."""


def read_image(path, reduction=1):
    """Reads an image file as RGB uint8 [H, W, 3] (H, W: the displayed size, EXIF applied).

    reduction: 1, 2, 4 or 8; decode at 1/reduction of the size (rounded up), for JPEGs a
        cheap DCT-domain scaling. Use it when the image will be scaled down anyway.
    A truncated JPEG is decoded as far as its data go (see the module docstring) with a
    TruncatedImageWarning naming the file (read_image_checked returns a flag instead).
    Raises ImageReadError naming the file when it is missing or cannot be decoded (OpenCV
    rejects truncated PNG data).
    """
    image, truncated = read_image_checked(path, reduction)
    if truncated:
        warnings.warn(f"{path}: truncated JPEG, decoded as far as its data go (the rest grey)",
                      TruncatedImageWarning, stacklevel=2)
    return image


def read_image_checked(path, reduction=1):
    """``read_image`` that also says whether the file was a truncated JPEG.

    Returns (image [H, W, 3] uint8 RGB, truncated: bool); truncated: the JPEG data ended
    before the end-of-image marker and the image is decoded as far as they go (the rest
    grey). Raises ImageReadError as read_image does.
    """
    try:
        data = np.fromfile(path, np.uint8)  # np.fromfile + imdecode also handles non-ASCII paths
    except OSError as e:
        raise ImageReadError(f"{path}: cannot read image file: {e.strerror or e}") from None
    if data.size == 0:
        raise ImageReadError(f"{path}: empty image file")
    image = cv2.imdecode(data, _REDUCED_FLAGS[reduction])
    truncated = False
    if image is None and data[:3].tobytes() == _JPEG_START:
        image = cv2.imdecode(np.concatenate([data, np.frombuffer(_JPEG_END, np.uint8)]), _REDUCED_FLAGS[reduction])
        truncated = image is not None
    if image is None:
        raise ImageReadError(f"{path}: corrupt, truncated or unsupported image data")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB), truncated


def truncation_suspected(path):
    """True when ``path`` is a JPEG or PNG file whose last bytes hold no end marker (JPEG
    EOI, PNG IEND): data cut short, or a missing or unopenable file. Reads 8 bytes at the start and
    64 at the end, nothing else (about 20 us a file: docs/BENCHMARKS.md), so a loader can check every image;
    read_image_checked then tells a truncated JPEG from an undecodable file. Other formats, and
    files corrupt anywhere but at their end, give False (they are found when read).
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return True
    try:
        head = os.read(fd, len(_PNG_START))
        size = os.lseek(fd, 0, os.SEEK_END)
        tail = os.pread(fd, _TAIL_BYTES, max(0, size - _TAIL_BYTES))
    except OSError:
        return True
    finally:
        os.close(fd)
    if head.startswith(_JPEG_START):
        return _JPEG_END not in tail
    if head.startswith(_PNG_START):
        return _PNG_END not in tail
    return False


# PIL formats whose header size read_image reproduces once the EXIF orientation is applied:
# OpenCV 4.12 applies the orientation tag to JPEG and PNG (verified in tests/data/test_images.py),
# not to every format PIL reads (WebP, for one), so those are decoded instead.
_HEADER_FORMATS = ("JPEG", "MPO", "PNG")
_TRANSPOSING_ORIENTATIONS = (5, 6, 7, 8)  # EXIF 0x0112 values that swap width and height


def image_size(path):
    """(height, width) of the image ``read_image(path)`` returns, EXIF orientation applied.

    For JPEG and PNG files only the header is read (PIL, lazily: no pixel is decoded), which
    is what a loader whose annotation lacks the image size (VIA) needs for every image; other
    files are decoded with read_image. A truncated file whose header is intact gets its size
    here (the loaders' finalize_records then finds it, see truncation_suspected).
    Raises ImageReadError naming the file when it is missing or not an image.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            if image.format in _HEADER_FORMATS:
                width, height = image.size
                if image.getexif().get(0x0112) in _TRANSPOSING_ORIENTATIONS:
                    height, width = width, height
                return height, width
    except FileNotFoundError:
        raise ImageReadError(f"{path}: cannot read image file: No such file or directory") from None
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError):
        pass  # not something PIL reads: let OpenCV decide
    return read_image(path).shape[:2]


def decode_reduction(original_shape, target_shape):
    """Largest JPEG decode reduction (1, 2, 4, 8) that still decodes at least ``target_shape``.

    original_shape, target_shape: (h, w) in pixels.
    """
    best = 1
    for r in (2, 4, 8):
        if original_shape[0] // r >= target_shape[0] and original_shape[1] // r >= target_shape[1]:
            best = r
    return best


def index_images(folder):
    """{file stem: [paths]} of the images in ``folder`` with an extension in IMAGE_EXTENSIONS,
    any case. A stem with several files (a.jpg and a.png) lists them all, sorted, so a loader
    can report the ambiguity. Raises DataError when the folder does not exist."""
    index = {}
    try:
        names = sorted(os.listdir(folder))
    except (FileNotFoundError, NotADirectoryError):
        raise DataError(f"{folder}: image folder not found") from None
    for name in names:
        stem, ext = os.path.splitext(name)
        if ext.lower() in IMAGE_EXTENSIONS:
            index.setdefault(stem, []).append(os.path.join(folder, name))
    return index


def resize_and_pad(image, geometry):
    """Scales ``image`` [h, w, C] (or [h, w]) to ``geometry.resized_shape`` with the geometry's
    method and pads it with zeros around it to ``geometry.padded_shape`` (image at
    ``geometry.offset``). Returns [H, W, C] of the same dtype. The image may be decoded at a
    reduced size: it is resized to the target regardless."""
    if image.shape[:2] != tuple(geometry.resized_shape):
        image = geometry.resize_method.resize(image, tuple(geometry.resized_shape))
    return pad_to(image, geometry.padded_shape, geometry.offset)


def resize_bilinear_zero_border(array, out_hw):
    """scikit-image's ``resize(array, out_hw, order=1, mode="constant", cval=0, clip=True,
    anti_aliasing=False, preserve_range=True)``, which matterport's utils.resize calls, made
    the way scikit-image makes it: ``scipy.ndimage.zoom`` with grid_mode (sample at
    ``(i + 0.5) * (in / out) - 0.5``) and zeros beyond the edges, so border pixels blend with
    0; then the output clipped to the input's [min, max] (widened to 0 only when 0 is outside
    it and the output reaches 0), which also lifts blended borders back to the input's minimum.

    array: [h, w] or [h, w, C] any real dtype; out_hw: (H, W). Returns [H, W(, C)] float64;
    a cast to uint8 truncates, as matterport's ``image.astype(image_dtype)`` does.
    """
    from scipy import ndimage

    array = np.asarray(array, np.float64)
    zoom = [1 / (array.shape[0] / out_hw[0]), 1 / (array.shape[1] / out_hw[1])]  # as scikit-image computes them
    if array.ndim == 2:
        out = ndimage.zoom(array, zoom, order=1, mode="grid-constant", cval=0.0, grid_mode=True)
    else:
        # One 2-D zoom per channel, on the cores in parallel (ndimage releases the GIL): the
        # same numbers as one zoom over [h, w, C] (whose channel axis weighs 1 and 0 exactly:
        # tests/data/test_images.py) at a third of its work and time on 3 channels.
        out = np.empty(tuple(out_hw) + array.shape[2:], np.float64)
        channels = array.reshape(array.shape[:2] + (-1,))
        flat_out = out.reshape(tuple(out_hw) + (-1,))

        def zoom_channel(c):
            ndimage.zoom(channels[:, :, c], zoom, output=flat_out[:, :, c], order=1, mode="grid-constant", cval=0.0,
                         grid_mode=True)

        thread_map(zoom_channel, range(channels.shape[2]))
    return np.clip(out, *_clip_range(array, out))


def resize_bilinear_torch(array, out_hw):
    """torch's ``interpolate(mode="bilinear", align_corners=False)`` (no antialias), what
    torchvision's transform resizes with: each axis sampled at ``(i + 0.5) * in / out - 0.5``
    (in float32, clamped at 0), between its two neighbours (the last one repeated at the edge).

    array: [h, w] or [h, w, C], any real dtype; out_hw: (H, W). Returns [H, W(, C)] float32
    (not rounded: torchvision interpolates the float image).
    """
    out = np.asarray(array, np.float32)
    for axis, size in enumerate(out_hw):
        n = out.shape[axis]
        scale = np.float32(n) / np.float32(size)
        position = np.maximum((np.arange(size, dtype=np.float32) + np.float32(0.5)) * scale - np.float32(0.5),
                              np.float32(0))
        low = np.minimum(np.floor(position).astype(np.int64), n - 1)
        high = np.minimum(low + 1, n - 1)
        frac = (position - low.astype(np.float32)).reshape([-1 if a == axis else 1 for a in range(out.ndim)])
        out = (np.float32(1) - frac) * np.take(out, low, axis=axis) + frac * np.take(out, high, axis=axis)
    return out.astype(np.float32)


def _clip_range(array, out):
    """scikit-image's clip=True range for a resize of ``array`` with cval 0 into ``out``."""
    low, high = array.min(), array.max()
    if not low <= 0.0 <= high and out.min() <= 0.0 <= out.max():
        low, high = min(low, 0.0), max(high, 0.0)
    return low, high


def pad_to(image, padded_shape, offset=(0, 0)):
    """Zero-pads ``image`` [h, w, ...] to ``padded_shape`` (H, W), its top-left corner at ``offset``."""
    h, w = image.shape[:2]
    if (h, w) == tuple(padded_shape):
        return image
    padded = np.zeros((padded_shape[0], padded_shape[1]) + image.shape[2:], image.dtype)
    oy, ox = offset
    padded[oy:oy + h, ox:ox + w] = image
    return padded


def image_meta(image_id, original_shape, geometry):
    """image_meta [12] float32 for an image of ``original_shape`` (h, w[, c]) placed by
    ``geometry`` (see detection/core/image_meta.py)."""
    h, w = original_shape[:2]
    padded = (geometry.padded_shape[0], geometry.padded_shape[1], 3)
    return compose_image_meta(image_id, (h, w, 3), padded, geometry.window, geometry.scale)
