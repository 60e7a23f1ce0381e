"""Sniffing and rejection: hostile, broken and foreign bytes get a code and a sentence."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageFile

from lambda_resizer.core import (
    ImageRejected,
    Recipe,
    process_image,
)
from lambda_resizer.sniffing import ACCEPTED_FORMATS, accepted_extensions, sniff
from tests.lambda_resizer.images import (
    encode,
    jpeg_segments,
    photo,
    png_bytes,
    reject,
)


def test_empty():
    assert reject(b"").code == "empty"


def test_text_named_jpg_is_not_an_image():
    assert reject(b"Hello! This is not a JPEG, it is a shopping list:\n- milk\n").code == "not_an_image"


def test_random_bytes_are_not_an_image():
    assert reject(np.random.default_rng(1).bytes(4096)).code == "not_an_image"


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF"])
@pytest.mark.parametrize("keep", [0.5, 0.02])
def test_truncated_files(fmt, keep):
    data = encode(photo(400, 300).convert("P") if fmt == "GIF" else photo(400, 300), fmt)
    err = reject(data[: max(20, int(len(data) * keep))])
    assert err.code == "truncated", err


def test_truncated_avif():
    try:
        data = encode(photo(200, 150), "AVIF")
    except (KeyError, OSError, ValueError) as exc:
        pytest.skip(f"cannot encode AVIF here: {exc}")
    assert reject(data[: len(data) // 2]).code == "truncated"


def test_corrupt_png_data():
    data = bytearray(encode(photo(64, 64), "PNG"))
    start = data.index(b"IDAT")
    length = struct.unpack(">I", data[start - 4 : start])[0]
    data[start + 6 : start + 4 + length] = np.random.default_rng(0).bytes(
        length - 2
    )  # garbage deflate stream
    data[start + 4 + length : start + 8 + length] = struct.pack(
        ">I", zlib.crc32(bytes(data[start : start + 4 + length]))
    )
    err = reject(bytes(data))
    assert err.code == "corrupt" and "cannot be decoded" in err.message


def test_png_header_claiming_100000x100000_is_refused_before_decoding():
    data = png_bytes(100_000, 100_000, depth=8, colour_type=2, rows=b"\0" * 301)
    err = reject(data)
    assert err.code == "too_many_pixels" and "10000 MP" in err.message and "100 MP limit" in err.message


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_header_over_the_recipe_cap_but_under_pillows_is_refused_too():
    err = reject(png_bytes(12_000, 10_000, depth=8, colour_type=0, rows=b"\0" * 100))
    assert err.code == "too_many_pixels"
    assert err.message == "image is 12000x10000 = 120 MP, over the 100 MP limit"


def test_a_progressive_jpeg_with_too_many_scans_is_refused_before_decoding():
    data = encode(Image.new("L", (640, 480), 128), "JPEG", progressive=True)
    segments = jpeg_segments(data)
    bomb = b"\xff\xd8" + b"".join(segments) + (segments[-2] + segments[-1]) * 100 + b"\xff\xd9"
    with pytest.raises(ImageRejected) as rejected:
        process_image(bomb)
    assert rejected.value.code == "too_many_scans" and "scans, over the 100 allowed" in str(rejected.value)
    assert process_image(data).info.width == 640  # an ordinary progressive JPEG (about 10 scans)


def test_recipe_pixel_cap():
    err = reject(encode(photo(100, 100), "PNG"), Recipe(max_pixels=5_000))
    assert err.code == "too_many_pixels" and "100x100" in err.message


@pytest.mark.parametrize(
    ("data", "name"),
    [(encode(Image.new("RGB", (32, 32)), "ICO"), "ICO"), (b"%PDF-1.7\n1 0 obj\n<<>>\nendobj\n", "PDF"),
     (b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"/>', "SVG")],
)  # fmt: skip
def test_other_formats_are_unsupported_and_named(data, name):
    err = reject(data)
    assert err.code == "unsupported_format" and name in err.message


def test_rejection_is_a_value_error_and_leaves_pillow_settings_alone():
    assert issubclass(ImageRejected, ValueError)
    reject(encode(photo(64, 64), "JPEG")[:300])
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_every_format_sniffing_can_name_is_an_accepted_format_with_extensions():
    samples = {
        "JPEG": encode(photo(40, 30), "JPEG"),
        "PNG": encode(photo(40, 30), "PNG"),
        "GIF": encode(photo(40, 30), "GIF"),
        "WEBP": encode(photo(40, 30), "WEBP"),
        "TIFF": encode(photo(40, 30), "TIFF"),
        "BMP": encode(photo(40, 30), "BMP"),
    }
    for data in samples.values():
        sniffed = sniff(data)
        assert sniffed is not None and set(sniffed[1]) <= set(ACCEPTED_FORMATS)
    extensions = accepted_extensions()
    assert {".jpg", ".jpeg", ".png", ".apng", ".gif", ".webp", ".tif", ".bmp", ".heic", ".avif"} <= extensions
    assert not {".psd", ".ico", ".pdf", ".jp2"} & extensions
