import os

import cv2
import numpy as np
import pytest
from PIL import Image

from detection.data.images import (
    ImageReadError,
    TruncatedImageWarning,
    decode_reduction,
    image_meta,
    image_size,
    index_images,
    read_image,
    read_image_checked,
    resize_and_pad,
    resize_bilinear_zero_border,
    truncation_suspected,
)
from detection.data.resize import resize_geometry


def test_exif_orientation_is_applied(tmp_path):
    # 20 rows x 40 cols, left half white; orientation 6 means "rotate 90 degrees clockwise to view".
    pixels = np.zeros((20, 40, 3), np.uint8)
    pixels[:, :20] = 255
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = 6
    image.save(tmp_path / "rotated.jpg", exif=exif.tobytes(), quality=95)
    decoded = read_image(str(tmp_path / "rotated.jpg"))
    assert decoded.shape == (40, 20, 3)
    # After a clockwise turn the white left half is the top half.
    assert decoded[:18].mean() > 240 and decoded[22:].mean() < 15


def test_grayscale_rgba_and_16_bit_become_rgb_uint8(tmp_path):
    gray = np.full((4, 5), 77, np.uint8)
    cv2.imwrite(str(tmp_path / "gray.png"), gray)
    bgra = np.zeros((4, 5, 4), np.uint8)
    bgra[..., 0], bgra[..., 2], bgra[..., 3] = 200, 10, 0  # blue in BGR order, fully transparent
    cv2.imwrite(str(tmp_path / "rgba.png"), bgra)
    deep = np.full((4, 5), 40000, np.uint16)
    cv2.imwrite(str(tmp_path / "deep.png"), deep)
    assert read_image(str(tmp_path / "gray.png")).tolist() == np.full((4, 5, 3), 77).tolist()
    rgba = read_image(str(tmp_path / "rgba.png"))
    assert rgba.shape == (4, 5, 3) and rgba[0, 0].tolist() == [10, 0, 200]  # RGB order
    deep8 = read_image(str(tmp_path / "deep.png"))
    assert deep8.dtype == np.uint8 and deep8[0, 0, 0] == 40000 >> 8


@pytest.mark.parametrize("ext", [".jpg", ".png"])
def test_undecodable_missing_and_empty_files_are_errors_naming_the_file(tmp_path, ext):
    rng = np.random.default_rng(0)
    cv2.imwrite(str(tmp_path / f"full{ext}"), rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
    data = (tmp_path / f"full{ext}").read_bytes()
    (tmp_path / f"head{ext}").write_bytes(data[:60])  # cut inside the header: nothing to decode
    (tmp_path / f"empty{ext}").write_bytes(b"")
    names = [f"head{ext}", f"empty{ext}", f"absent{ext}"]
    if ext == ".png":  # a PNG cut short is not decoded (a JPEG is, see the next test)
        (tmp_path / "cut.png").write_bytes(data[: len(data) - 200])
        names.append("cut.png")
    for name in names:
        with pytest.raises(ImageReadError, match=name):
            read_image(str(tmp_path / name))


def test_a_truncated_jpeg_decodes_as_far_as_its_data_go_with_a_warning(tmp_path):
    rng = np.random.default_rng(0)
    cv2.imwrite(str(tmp_path / "full.jpg"), rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    full, full_truncated = read_image_checked(str(tmp_path / "full.jpg"))
    cut, truncated = read_image_checked(str(tmp_path / "cut.jpg"))
    assert (full_truncated, truncated) == (False, True) and cut.shape == (64, 64, 3)
    np.testing.assert_array_equal(cut[:8], full[:8])  # the rows the data hold
    assert (cut[-16:] == 128).all()  # the rows past the end: libjpeg's grey
    with pytest.warns(TruncatedImageWarning, match="cut.jpg"):
        np.testing.assert_array_equal(read_image(str(tmp_path / "cut.jpg")), cut)
    assert (read_image_checked(str(tmp_path / "cut.jpg"), reduction=2)[0].shape, truncated) == ((32, 32, 3), True)


def test_truncation_is_suspected_from_the_last_bytes_only(tmp_path):
    rng = np.random.default_rng(0)
    for ext in (".jpg", ".png"):
        cv2.imwrite(str(tmp_path / f"full{ext}"), rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
        data = (tmp_path / f"full{ext}").read_bytes()
        (tmp_path / f"cut{ext}").write_bytes(data[:-20])
        (tmp_path / f"padded{ext}").write_bytes(data + bytes(16))  # zeros after the end marker
    (tmp_path / "text.jpg").write_text("not an image")
    suspected = {name: truncation_suspected(str(tmp_path / name)) for name in sorted(os.listdir(tmp_path))}
    assert suspected == {"cut.jpg": True, "cut.png": True, "full.jpg": False, "full.png": False,
                         "padded.jpg": False, "padded.png": False, "text.jpg": False}


def test_reduced_decoding_and_its_choice(tmp_path):
    cv2.imwrite(str(tmp_path / "big.jpg"), np.full((400, 300, 3), 90, np.uint8))
    assert read_image(str(tmp_path / "big.jpg"), reduction=4).shape == (100, 75, 3)
    assert decode_reduction((2000, 1500), (1024, 768)) == 1
    assert decode_reduction((2000, 1500), (500, 375)) == 4
    assert decode_reduction((300, 400), (64, 64)) == 4


def test_resize_and_pad_places_the_image_top_left_and_meta_describes_it():
    image = np.full((30, 60, 3), 9, np.uint8)
    geometry = resize_geometry(30, 60, "square", 64, 128)
    out = resize_and_pad(image, geometry)
    assert out.shape == (128, 128, 3) and geometry.window == (0, 0, 64, 128)
    assert out[:64].min() == 9 and out[64:].max() == 0
    np.testing.assert_allclose(image_meta(7, (30, 60), geometry),
                               [7, 30, 60, 3, 128, 128, 3, 0, 0, 64, 128, 64 / 30], rtol=1e-6)


def test_index_images_matches_stems_any_extension_case(tmp_path):
    for name in ("a.JPG", "b.jpeg", "b.png", "c.txt", "d.Png"):
        (tmp_path / name).write_bytes(b"x")
    index = index_images(str(tmp_path))
    assert sorted(index) == ["a", "b", "d"] and len(index["b"]) == 2


@pytest.mark.parametrize("ext, orientation", [(".jpg", 6), (".jpg", 3), (".png", 8), (".webp", 6), (".bmp", None)])
def test_image_size_is_the_size_read_image_returns(tmp_path, ext, orientation):
    # JPEG and PNG: from the header, EXIF applied as OpenCV applies it; others (OpenCV 4.12
    # ignores a WebP's orientation): decoded, so the answer is read_image's in every case.
    image = Image.fromarray(np.zeros((20, 40, 3), np.uint8))
    exif = image.getexif()
    if orientation:
        exif[0x0112] = orientation
    image.save(tmp_path / f"a{ext}", **({"exif": exif.tobytes()} if orientation else {}))
    assert image_size(str(tmp_path / f"a{ext}")) == read_image(str(tmp_path / f"a{ext}")).shape[:2]
    assert image_size(str(tmp_path / f"a{ext}")) == ((40, 20) if orientation in (6, 8) and ext != ".webp" else (20, 40))


def test_image_size_of_a_missing_or_non_image_file_is_an_error_naming_it(tmp_path):
    (tmp_path / "text.jpg").write_text("not an image")
    for name in ("absent.jpg", "text.jpg"):
        with pytest.raises(ImageReadError, match=name):
            image_size(str(tmp_path / name))


@pytest.mark.parametrize("shape, out_hw", [((97, 143, 3), (256, 377)), ((300, 200, 3), (128, 85)),
                                           ((61, 47, 4), (61, 90)), ((40, 50, 1), (77, 33)), ((33, 20), (70, 45))])
def test_zero_border_resize_per_channel_is_scikit_images_one_zoom(shape, out_hw):
    # scikit-image (matterport's utils.resize) zooms [h, w, C] at once with the channel factor 1;
    # resize_bilinear_zero_border zooms each channel on its own (in threads): the same float64
    # values, bit for bit, also where flat regions make the exact value an integer (a uint8
    # cast of 76.99999 would truncate to 76).
    from scipy import ndimage

    rng = np.random.default_rng(sum(shape))
    image = rng.integers(0, 256, shape).astype(np.uint8)
    image[5:30, 10:40] = 77
    array = image.astype(np.float64)
    factors = [shape[0] / out_hw[0], shape[1] / out_hw[1]] + [1.0] * (len(shape) - 2)
    one_zoom = ndimage.zoom(array, [1 / f for f in factors], order=1, mode="grid-constant", cval=0.0, grid_mode=True)
    expected = np.clip(one_zoom, array.min(), array.max())
    got = resize_bilinear_zero_border(image, out_hw)
    assert got.dtype == np.float64 and got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)
    assert np.count_nonzero(expected == 77.0) > 100  # the flat region's exact integers were compared
