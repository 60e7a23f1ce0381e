"""BMP: uncompressed bitmaps decoded a band at a time give the variants of a whole decode."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from lambda_resizer import decoding
from lambda_resizer.core import Recipe, process_image
from lambda_resizer.formats import bmp
from tests.lambda_resizer.formats.test_tiff import psnr, variants_decoded_whole
from tests.lambda_resizer.images import encode, photo


@pytest.fixture(autouse=True)
def many_bands(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bands of 64 KiB, so these small test images are decoded in many bands."""
    monkeypatch.setattr(decoding, "BAND_BYTES", 64 * 1024)


def top_down(data: bytes) -> bytes:
    """Return a bottom-up BMP rewritten top-down (negative height, rows reversed)."""
    image = Image.open(io.BytesIO(data))
    offset, stride = image.tile[0].offset, image.tile[0].args[1]
    rows = [data[offset + i * stride : offset + (i + 1) * stride] for i in range(image.height)]
    header = bytearray(data[:offset])
    header[22:26] = (-image.height).to_bytes(4, "little", signed=True)
    return bytes(header) + b"".join(reversed(rows))


def bmp_sources() -> dict[str, bytes]:
    image = photo(900, 660, seed=6)
    bottom_up = encode(image, "BMP")
    return {
        "24-bit bottom-up": bottom_up,
        "24-bit top-down": top_down(bottom_up),
        "8-bit palette": encode(image.quantize(256), "BMP"),
        "1-bit": encode(image.convert("1"), "BMP"),
    }


@pytest.mark.parametrize("name", list(bmp_sources()))
def test_band_decoded_bmp_variants_match_a_whole_decode(name, monkeypatch):
    data = bmp_sources()[name]
    recipe = Recipe(sizes=(("a", 300), ("b", 120)))
    assert bmp.bands(Image.open(io.BytesIO(data)), data, 64) is not None  # really decoded in bands
    banded = [v.encoded["jpeg"] for v in process_image(data, recipe).variants]
    for made, whole in zip(banded, variants_decoded_whole(data, monkeypatch, recipe), strict=True):
        assert psnr(made, whole) >= 45
