"""PNG: large non-interlaced images decoded a band at a time give the variants of a whole decode."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
from PIL import Image

from lambda_resizer import decoding
from lambda_resizer.core import Recipe, process_image
from lambda_resizer.formats import png
from tests.lambda_resizer.formats.test_tiff import psnr, variants_decoded_whole
from tests.lambda_resizer.images import encode, photo, png_bytes, reject

RECIPE = Recipe(sizes=(("a", 300), ("b", 120)))
SPNG_BANDS = png.spng_bands  # the fixture below turns it off for the streamed decoder's runs


@pytest.fixture(autouse=True, params=["streamed", "libspng bands", "libspng whole"])
def small_images_banded_too(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every PNG through each band decoder: streamed to Pillow's decoder (what libspng cannot
    read), libspng a band at a time (the large-image path) and libspng's whole decode."""
    monkeypatch.setattr(decoding, "PNG_BAND_BYTES", 1)
    if request.param != "libspng whole":
        monkeypatch.setattr(decoding, "PNG_WHOLE_PIXELS", 0)
    if request.param == "streamed":
        monkeypatch.setattr(png, "spng_bands", lambda im, data, rows: None)


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


def filtered(pixels: np.ndarray, filters: list[int]) -> bytes:
    """Return the PNG scanlines of ``pixels`` (rows x bytes), row y filtered with ``filters[y % 5]``."""
    bpp = pixels.shape[2] if pixels.ndim == 3 else 1
    rows = pixels.reshape(pixels.shape[0], -1).astype(np.int32)
    out = []
    for y, row in enumerate(rows):
        kind = filters[y % len(filters)]
        up = rows[y - 1] if y else np.zeros_like(row)
        left = np.concatenate([np.zeros(bpp, np.int32), row[:-bpp]])
        corner = np.concatenate([np.zeros(bpp, np.int32), up[:-bpp]])
        if kind == 4:  # Paeth: the neighbour nearest to left + up - corner
            guess = left + up - corner
            pa, pb, pc = np.abs(guess - left), np.abs(guess - up), np.abs(guess - corner)
            predictor = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, corner))
        else:
            predictor = [np.zeros_like(row), left, up, (left + up) // 2][kind]
        out.append(bytes([kind]) + ((row - predictor) % 256).astype(np.uint8).tobytes())
    return b"".join(out)


@pytest.mark.parametrize(("mode", "colour_type"), [("L", 0), ("RGB", 2), ("RGBA", 6)])
@pytest.mark.parametrize("rows", [1, 7, 64, 1000])
def test_libspng_bands_are_pillows_pixels_across_every_filter_and_band_edge(mode, colour_type, rows):
    # Each band starts with the row above it unfiltered, so Up, Average and Paeth rows at a band's
    # top still refer to the right pixels: every filter at every band edge (rows coprime to 5).
    pixels = np.asarray(photo(97, 131, seed=5).convert("RGBA").convert(mode))
    data = png_bytes(97, 131, depth=8, colour_type=colour_type, rows=filtered(pixels, [4, 2, 3, 1, 0]))
    im = Image.open(io.BytesIO(data))
    bands = SPNG_BANDS(im, data, rows)
    assert bands is not None
    assert np.array_equal(
        np.concatenate([np.asarray(band) for band in bands]), np.asarray(Image.open(io.BytesIO(data)))
    )


def test_a_bad_filter_type_in_a_libspng_band_names_its_rows():
    pixels = np.asarray(photo(40, 30, seed=1))
    lines = bytearray(filtered(pixels, [1]))
    lines[20 * (40 * 3 + 1)] = 9  # row 20: no such filter
    data = png_bytes(40, 30, depth=8, colour_type=2, rows=bytes(lines))
    bands = SPNG_BANDS(Image.open(io.BytesIO(data)), data, 8)
    assert bands is not None
    with pytest.raises(OSError, match="PNG rows 16-23 cannot be decoded"):
        list(bands)
    assert reject(data).code == "corrupt"


@pytest.mark.parametrize("name", ["palette + tRNS", "4-bit palette", "16-bit grey", "16-bit RGB"])
def test_what_libspng_bands_do_not_read_goes_to_pillows_decoder(name):
    data = png_sources()[name]
    assert SPNG_BANDS(Image.open(io.BytesIO(data)), data, 64) is None
    assert png.bands(Image.open(io.BytesIO(data)), data, 64) is not None
