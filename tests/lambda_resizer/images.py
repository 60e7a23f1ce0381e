"""Images made for the resize core's tests, and the checks they share."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pillow_heif
import pytest
from PIL import Image

from lambda_resizer.core import (
    DEFAULT_RECIPE,
    REJECT_CODES,
    ImageRejected,
    Recipe,
    fit,
    process_image,
)

pillow_heif.register_heif_opener()  # to write HEIC test files; the core registers it itself to read them

RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)

CORPUS = Path(__file__).resolve().parents[2] / ".." / "shared" / "bench-corpus" / "photos"
RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)


ORIENTATION = 0x0112
# The stored pixels that EXIF orientation n turns into the displayed image (inverse of exif_transpose).


STORED_FROM_DISPLAYED = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


def photo(width: int = 320, height: int = 240, seed: int = 0) -> Image.Image:
    """Return a photo-like RGB image: smooth colour fields, a few shapes, mild noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    channels = []
    for _ in range(3):
        fx, fy = rng.uniform(0.5, 4, 2) / max(width, height)
        channels.append(128 + 90 * np.sin(2 * np.pi * (fx * x + fy * y) + rng.uniform(0, 6.3)))
    img = np.stack(channels, axis=-1)
    for _ in range(6):
        cx, cy, r = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(0.05, 0.2) * width
        img[(x - cx) ** 2 + (y - cy) ** 2 < r**2] = rng.uniform(0, 255, 3)
    img += rng.normal(0, 4, img.shape)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")


def encode(img: Image.Image, fmt: str, **params: object) -> bytes:
    out = io.BytesIO()
    img.save(out, fmt, **params)
    return out.getvalue()


def decode(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def mean_colour(img: Image.Image, box: tuple[float, float, float, float]) -> np.ndarray:
    """Return the mean RGB, as seen on white, of a box given in fractions of the image size."""
    if img.mode == "RGBA":
        img = Image.alpha_composite(Image.new("RGBA", img.size, WHITE), img)
    w, h = img.size
    crop = img.convert("RGB").crop((int(box[0] * w), int(box[1] * h), int(box[2] * w), int(box[3] * h)))
    return np.asarray(crop, dtype=np.float64).reshape(-1, 3).mean(axis=0)


def near(colour: np.ndarray, expected: tuple[int, int, int], tolerance: float = 12) -> bool:
    return bool(np.abs(colour - np.array(expected)).max() <= tolerance)


def marked(width: int, height: int) -> Image.Image:
    """Return a blue image with a red top-left and a green bottom-right quarter-size block."""
    img = Image.new("RGB", (width, height), BLUE)
    img.paste(RED, (0, 0, width // 4, height // 4))
    img.paste(GREEN, (width - width // 4, height - height // 4, width, height))
    return img


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bytes(
    width: int, height: int, *, depth: int, colour_type: int, rows: bytes, chunks: bytes = b""
) -> bytes:
    """Return a PNG built by hand (for headers and bit depths Pillow will not write); ``chunks``
    go between IHDR and IDAT."""
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + chunks
        + png_chunk(b"IDAT", zlib.compress(rows))
        + png_chunk(b"IEND", b"")
    )


def rgb_profile(red: tuple, green: tuple, blue: tuple, gamma: float = 2.2) -> bytes:
    """Return a minimal ICC v2 matrix/TRC RGB display profile with the given D50 colorants."""

    def s15(value: float) -> bytes:
        return struct.pack(">i", round(value * 65536))

    def xyz(x: float, y: float, z: float) -> bytes:
        return b"XYZ \0\0\0\0" + s15(x) + s15(y) + s15(z)

    curve = b"curv\0\0\0\0" + struct.pack(">IH", 1, round(gamma * 256)) + b"\0\0"
    name = b"test RGB"
    desc = b"desc\0\0\0\0" + struct.pack(">I", len(name) + 1) + name + b"\0" + b"\0" * 79
    tags = [
        (b"desc", desc),
        (b"wtpt", xyz(0.9642, 1.0, 0.8249)),
        (b"rXYZ", xyz(*red)),
        (b"gXYZ", xyz(*green)),
        (b"bXYZ", xyz(*blue)),
        (b"rTRC", curve),
        (b"gTRC", curve),
        (b"bTRC", curve),
        (b"cprt", b"text\0\0\0\0none\0\0\0\0"),
    ]
    offset, table, body = 128 + 4 + 12 * len(tags), b"", b""
    for sig, data in tags:
        data += b"\0" * (-len(data) % 4)
        table += sig + struct.pack(">II", offset + len(body), len(data))
        body += data
    header = struct.pack(
        ">I4sI4s4s4s12s4s4sI4s4s8sI", offset + len(body), b"", 0x02100000, b"mntr", b"RGB ", b"XYZ ",
        b"\0" * 12, b"acsp", b"", 0, b"", b"", b"\0" * 8, 0,
    ) + s15(0.9642) + s15(1.0) + s15(0.8249) + b"\0" * 48  # fmt: skip
    return header + struct.pack(">I", len(tags)) + table + body


SRGB_D50 = ((0.4361, 0.2225, 0.0139), (0.3851, 0.7169, 0.0971), (0.1431, 0.0606, 0.7141))


def reject(data: bytes, recipe: Recipe = DEFAULT_RECIPE) -> ImageRejected:
    with pytest.raises(ImageRejected) as caught:
        process_image(data, recipe)
    err = caught.value
    assert err.code in REJECT_CODES
    assert str(err) == err.message and len(err.message) > 10 and "\n" not in err.message
    return err


def check_variants(result, width: int, height: int, recipe: Recipe = DEFAULT_RECIPE) -> list[Image.Image]:
    """Assert one variant per size with the expected size; return the decoded primary images."""
    assert [v.name for v in result.variants] == [name for name, _ in recipe.sizes]
    images = []
    for variant, (_, edge) in zip(result.variants, recipe.sizes, strict=True):
        assert (variant.width, variant.height) == fit(width, height, edge)
        assert set(variant.encoded) == set(recipe.formats)
        img = decode(variant.encoded[recipe.formats[0]])
        assert img.size == (variant.width, variant.height)
        images.append(img)
    return images


def jpeg_segments(data: bytes) -> list[bytes]:
    """Return a JPEG's marker segments after SOI, each scan with its entropy-coded data."""
    segments, i = [], 2
    while data[i + 1] != 0xD9:
        marker, length = data[i + 1], struct.unpack(">H", data[i + 2 : i + 4])[0]
        j = i + 2 + length
        if marker == 0xDA:
            while data[j] != 0xFF or data[j + 1] == 0 or 0xD0 <= data[j + 1] <= 0xD7:
                j += 1
        segments.append(data[i:j])
        i = j
    return segments


def without_adobe_marker(data: bytes) -> bytes:
    return b"\xff\xd8" + b"".join(seg for seg in jpeg_segments(data) if seg[1] != 0xEE) + b"\xff\xd9"


def tiff_of_tiny_pages(pages: int, *, loop: bool = False) -> bytes:
    """Return a TIFF of ``pages`` 1x1 grey pages; with ``loop`` the last page links back to the first."""
    out = bytearray(b"II*\0\x08\0\0\0")
    pixel = 8 + pages * 102
    for page in range(pages):
        link = len(out) + 102 if page < pages - 1 else (8 if loop else 0)
        tags = [(256, 3, 1, 1), (257, 3, 1, 1), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1)]
        tags += [(273, 4, 1, pixel), (278, 3, 1, 1), (279, 4, 1, 1)]
        out += struct.pack("<H", 8) + b"".join(struct.pack("<HHII", *tag) for tag in tags)
        out += struct.pack("<I", link)
    return bytes(out + b"\x80")
