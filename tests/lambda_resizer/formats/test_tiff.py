"""TIFF: pages counted in one walk; striped, tiled and uncompressed single-strip files decoded in bands."""

from __future__ import annotations

import functools
import io
from collections.abc import Callable

import numpy as np
import pytest
from PIL import Image, ImageOps

from lambda_resizer import decoding
from lambda_resizer.core import Recipe, process_image
from lambda_resizer.estimate import read_header
from lambda_resizer.formats import tiff
from tests.imaging import tiled_tiff
from tests.lambda_resizer.images import (
    ORIENTATION,
    STORED_FROM_DISPLAYED,
    decode,
    encode,
    photo,
    reject,
    tiff_of_tiny_pages,
)

BIG_TIFF_3_PAGES = encode(
    Image.new("RGB", (50, 40)),
    "TIFF",
    save_all=True,
    append_images=[Image.new("RGB", (50, 40))] * 2,
    big_tiff=True,
)


@pytest.mark.parametrize(
    ("data", "pages"),
    [
        (tiff_of_tiny_pages(20_000), 20_000),  # Pillow's n_frames took 5 s here: quadratic
        (tiff_of_tiny_pages(3, loop=True), 3),
        (BIG_TIFF_3_PAGES, 3),
    ],
)
def test_tiff_pages_are_counted_in_one_walk(data, pages):
    result = process_image(data)
    assert result.info.frame_count == pages and result.info.format == "TIFF"


@pytest.fixture(autouse=True)
def many_bands(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bands of 64 KiB, so these small test images are decoded in many bands."""
    monkeypatch.setattr(decoding, "BAND_BYTES", 64 * 1024)


def psnr(a: bytes, b: bytes) -> float:
    x = np.asarray(decode(a).convert("RGB"), dtype=np.float64)
    y = np.asarray(decode(b).convert("RGB"), dtype=np.float64)
    assert x.shape == y.shape
    error = np.square(x - y).mean()
    return float("inf") if error == 0 else float(10 * np.log10(255.0**2 / error))


def variants_decoded_whole(data: bytes, monkeypatch: pytest.MonkeyPatch, recipe: Recipe) -> list[bytes]:
    """Return the JPEG variants made from the whole image decoded at once (band decoding off)."""
    with monkeypatch.context() as patch:
        patch.setattr(decoding, "band_decoder", lambda im, data, rows: None)
        return [v.encoded["jpeg"] for v in process_image(data, recipe).variants]


def banded_tiff_sources() -> dict[str, bytes]:
    image = photo(900, 660, seed=5)
    rgba = image.convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize(image.size))
    grey16 = image.convert("I").point(lambda v: v * 200).convert("I;16")
    return {
        "deflate strips": encode(image, "TIFF", compression="tiff_adobe_deflate"),
        "lzw strips with predictor": encode(image, "TIFF", compression="tiff_lzw"),
        "jpeg strips": encode(image, "TIFF", compression="jpeg"),
        "RGBA packbits": encode(rgba, "TIFF", compression="packbits"),
        "16-bit grey": encode(grey16, "TIFF", compression="tiff_adobe_deflate"),
        "palette": encode(image.quantize(64), "TIFF", compression="tiff_adobe_deflate"),
        "tiles": tiled_tiff(image),
        # Pillow's uncompressed default: one strip, read as raw rows from each band's offset
        "uncompressed one strip": encode(image, "TIFF"),
        "uncompressed one strip RGBA": encode(rgba, "TIFF"),
        "uncompressed one strip 16-bit grey big-endian": encode(big_endian(grey16), "TIFF"),
        "uncompressed one strip 1-bit": encode(image.convert("1"), "TIFF"),
    }  # fmt: skip


def big_endian(grey16: Image.Image) -> Image.Image:
    """Return a 16-bit grey image in mode I;16B, which Pillow writes as a big-endian ("MM") TIFF."""
    return Image.frombytes("I;16B", grey16.size, np.asarray(grey16).astype(">u2").tobytes())


@pytest.mark.parametrize("name", list(banded_tiff_sources()))
def test_band_decoded_tiff_variants_match_a_whole_decode(name, monkeypatch):
    data = banded_tiff_sources()[name]
    recipe = Recipe(sizes=(("a", 300), ("b", 120)))
    assert tiff.band_unit(Image.open(io.BytesIO(data))) is not None  # really decoded in bands
    banded = [v.encoded["jpeg"] for v in process_image(data, recipe).variants]
    for made, whole in zip(banded, variants_decoded_whole(data, monkeypatch, recipe), strict=True):
        assert psnr(made, whole) >= 45


def test_a_tiff_cut_short_in_its_strips_is_still_named_truncated():
    data = encode(photo(1500, 1100), "TIFF", compression="tiff_adobe_deflate")
    assert reject(data[: len(data) * 2 // 3]).code in ("truncated", "corrupt")


# --- EXIF orientation: applied once, whichever way the TIFF is decoded ----------------------

#: Each way the core decodes a TIFF: the stored pixels with the Orientation tag.
ORIENTED_ROUTES: dict[str, Callable[[Image.Image, int], bytes]] = {
    # raw rows read from their offsets
    "uncompressed one strip": lambda stored, o: encode(stored, "TIFF", tiffinfo={ORIENTATION: o}),
    "uncompressed strips": lambda stored, o: encode(stored, "TIFF", tiffinfo={ORIENTATION: o, 278: 16}),
    "deflate strips": lambda stored, o: encode(
        stored, "TIFF", compression="tiff_adobe_deflate", tiffinfo={ORIENTATION: o}
    ),
    "lzw strips": lambda stored, o: encode(stored, "TIFF", compression="tiff_lzw", tiffinfo={ORIENTATION: o}),
    "jpeg strips": lambda stored, o: encode(
        stored, "TIFF", compression="jpeg", quality=95, tiffinfo={ORIENTATION: o}
    ),
    "tiles": lambda stored, o: tiled_tiff(stored, orientation=o),
}
#: Reduced by 3 (decoded in bands), and not reduced (decoded whole by Pillow and libtiff).
ORIENTED_RECIPES = {"banded": Recipe(sizes=(("a", 200), ("b", 80))), "whole": Recipe(sizes=(("a", 600),))}


@functools.cache
def displayed_picture() -> Image.Image:
    # No symmetry: a flip or a turn too many costs the PSNR. Both sides a multiple of the banded
    # recipe's reduction (3): a flipped file's partial edge block would shift the picture a little.
    return photo(600, 450, seed=7)


@functools.cache
def upright_variants(recipe: str) -> tuple[tuple[int, int, bytes], ...]:
    """Return (width, height, JPEG) of each variant of the picture as an upright PNG."""
    result = process_image(encode(displayed_picture(), "PNG"), ORIENTED_RECIPES[recipe])
    return tuple((v.width, v.height, v.encoded["jpeg"]) for v in result.variants)


@pytest.mark.parametrize("recipe", list(ORIENTED_RECIPES))
@pytest.mark.parametrize("route", list(ORIENTED_ROUTES))
@pytest.mark.parametrize("orientation", range(1, 9))
def test_a_tiff_stored_rotated_gives_the_variants_of_the_upright_picture(orientation, route, recipe):
    displayed = displayed_picture()
    transpose = STORED_FROM_DISPLAYED[orientation]
    stored = displayed.transpose(transpose) if transpose is not None else displayed
    data = ORIENTED_ROUTES[route](stored, orientation)
    assert ImageOps.exif_transpose(decode(data)).size == displayed.size  # the test's own premise
    if recipe == "banded":
        assert read_header(io.BytesIO(data)).banded  # really decoded in bands (of stored rows)

    result = process_image(data, ORIENTED_RECIPES[recipe])
    info = result.info
    assert (info.width, info.height, info.exif_orientation) == (*displayed.size, orientation)
    for made, (width, height, upright) in zip(result.variants, upright_variants(recipe), strict=True):
        assert (made.width, made.height) == (width, height)
        assert psnr(made.encoded["jpeg"], upright) >= 40


@pytest.mark.parametrize("route", list(ORIENTED_ROUTES))
def test_the_estimate_reads_an_oriented_tiff_as_stored(route):
    stored = photo(450, 600, seed=7)
    header = read_header(io.BytesIO(ORIENTED_ROUTES[route](stored, 6)))
    upright = read_header(io.BytesIO(ORIENTED_ROUTES[route](stored, 1)))
    assert (header.width, header.height) == (450, 600)  # stored, as the band rows are counted
    assert (header.banded, header.rows, header.unit) == (upright.banded, upright.rows, upright.unit)
