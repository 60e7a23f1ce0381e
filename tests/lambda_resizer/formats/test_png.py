"""PNG: large non-interlaced images decoded a band at a time give the variants of a whole decode."""

from __future__ import annotations

import io
import struct

import pytest
from PIL import Image

from lambda_resizer import decoding
from lambda_resizer.core import Recipe, process_image
from lambda_resizer.formats import png
from tests.lambda_resizer.formats.test_tiff import psnr, variants_decoded_whole
from tests.lambda_resizer.images import encode, photo, png_bytes, reject

RECIPE = Recipe(sizes=(("a", 300), ("b", 120)))


@pytest.fixture(autouse=True, params=["streamed", "libspng"])
def small_images_banded_too(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every PNG through each band decoder: streamed (the large-image path) and libspng's."""
    monkeypatch.setattr(decoding, "PNG_BAND_BYTES", 1)
    if request.param == "streamed":
        monkeypatch.setattr(decoding, "PNG_WHOLE_PIXELS", 0)


@pytest.fixture(autouse=True)
def many_bands(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bands of 64 KiB, so these small test images are decoded in many bands."""
    monkeypatch.setattr(decoding, "BAND_BYTES", 64 * 1024)


def png_sources() -> dict[str, bytes]:
    image = photo(900, 660, seed=7)
    rgba = image.convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize(image.size))
    keyed = image.quantize(200)
    keyed.info["transparency"] = 0
    rows16 = b"".join(
        b"\x00" + b"".join(struct.pack(">HHH", 40 * x, 50 * y, 30000) for x in range(200)) for y in range(150)
    )
    return {
        "RGB": encode(image, "PNG"),
        "RGBA": encode(rgba, "PNG"),
        "palette + tRNS": encode(keyed, "PNG"),
        "4-bit palette": encode(image.quantize(16), "PNG", bits=4),
        "grey": encode(image.convert("L"), "PNG"),
        "16-bit grey": encode(image.convert("I").point(lambda v: v * 257).convert("I;16"), "PNG"),
        "16-bit RGB": png_bytes(200, 150, depth=16, colour_type=2, rows=rows16),
    }


@pytest.mark.slow
@pytest.mark.parametrize("name", list(png_sources()))
def test_band_decoded_png_variants_match_a_whole_decode(name, monkeypatch):
    data = png_sources()[name]
    assert png.bands(Image.open(io.BytesIO(data)), data, 64) is not None  # really decoded in bands
    banded = [v.encoded["jpeg"] for v in process_image(data, RECIPE).variants]
    for made, whole in zip(banded, variants_decoded_whole(data, monkeypatch, RECIPE), strict=True):
        assert psnr(made, whole) >= 45


def test_animated_pngs_are_decoded_whole():
    image = photo(300, 200)
    animated = encode(image, "PNG", save_all=True, append_images=[photo(300, 200, 1)])
    assert png.bands(Image.open(io.BytesIO(animated)), animated, 64) is None
    assert process_image(animated, RECIPE).info.frame_count == 2


def test_a_band_decoded_png_cut_short_is_named_truncated():
    data = encode(photo(1500, 1100), "PNG")
    assert reject(data[: len(data) // 2]).code == "truncated"
