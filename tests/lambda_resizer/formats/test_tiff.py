"""TIFF: pages counted in one walk; striped, tiled and single-strip (raw, Deflate) files decoded in bands."""

from __future__ import annotations

import functools
import io
from collections.abc import Callable

import numpy as np
import pytest
from PIL import Image, ImageOps, TiffImagePlugin

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
        **deflate_strip_sources(image, rgba),
    }  # fmt: skip


#: One Deflate strip (Pillow's writer, libtiff's encoder): predictor 1 or 2 (horizontal differencing).
ONE_STRIP, PREDICTOR = {"strip_size": 2**30}, {317: 2}


def deflate_strip_sources(image: Image.Image, rgba: Image.Image) -> dict[str, bytes]:
    """Return one-strip Deflate TIFFs the core inflates a band at a time, named "deflate one strip ..."."""

    def deflated(im: Image.Image, predictor: bool = False) -> bytes:
        info = {"tiffinfo": PREDICTOR} if predictor else {}
        return encode(im, "TIFF", compression="tiff_adobe_deflate", **ONE_STRIP, **info)

    return {
        "deflate one strip RGB": deflated(image),
        "deflate one strip RGB predictor": deflated(image, True),
        "deflate one strip grey": deflated(image.convert("L")),
        "deflate one strip grey predictor": deflated(image.convert("L"), True),
        "deflate one strip RGBA": deflated(rgba),
        "deflate one strip RGBA predictor": deflated(rgba, True),
        "deflate one strip LA predictor": deflated(rgba.convert("LA"), True),
        "deflate one strip CMYK predictor": deflated(image.convert("CMYK"), True),
        # Adobe's code for Deflate (32946), the directory before the strip as many writers put it
        "deflate one strip code 32946": directory_first(deflated(image, True), {259: 32946}),
        "deflate one strip associated alpha": directory_first(deflated(rgba), {338: (1,)}),  # RGBa
    }


def directory_first(data: bytes, retag: dict[int, object] | None = None, keep: float = 1.0) -> bytes:
    """Return a one-strip TIFF written again with its directory before the strip (Pillow writes it
    after), some tags changed, and only ``keep`` of the strip's bytes: the file cut short in its strip."""
    tags = Image.open(io.BytesIO(data)).tag_v2
    (offset,), (count,) = tags[273], tags[279]
    ifd = TiffImagePlugin.ImageFileDirectory_v2(prefix=b"II")
    for tag, value in {**dict(tags.items()), **(retag or {})}.items():
        ifd[tag] = value
        ifd.tagtype[tag] = tags.tagtype[tag]
    ifd[273] = (0,)  # Pillow adds the end of the directory to StripOffsets itself
    return b"II*\x00\x08\x00\x00\x00" + ifd.tobytes(8) + data[offset : offset + int(count * keep)]


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


@pytest.mark.parametrize("name", [name for name in banded_tiff_sources() if name.startswith("deflate one")])
def test_a_deflate_strip_of_8_bit_samples_is_inflated_in_bands_that_are_libtiffs_pixels(name):
    data = banded_tiff_sources()[name]
    im = Image.open(io.BytesIO(data))
    assert tiff.inflated_rows(im) and read_header(io.BytesIO(data)).inflate
    bands = list(tiff.bands(im, data, 64) or ())
    assert len(bands) == -(-im.height // 64)
    assert {band.mode for band in bands} == {decode(data).mode}
    assert np.array_equal(np.concatenate([np.asarray(band) for band in bands]), np.asarray(decode(data)))


@pytest.mark.parametrize(
    "make",
    [
        lambda image: encode(image, "TIFF", compression="tiff_lzw", **ONE_STRIP),
        lambda image: encode(
            image.convert("I").point(lambda v: v * 200).convert("I;16"),
            "TIFF", compression="tiff_adobe_deflate", **ONE_STRIP,
        ),
        lambda image: encode(image.quantize(64), "TIFF", compression="tiff_adobe_deflate", **ONE_STRIP),
    ],
    ids=["lzw", "16-bit grey", "palette"],
)  # fmt: skip
def test_a_single_strip_zlib_cannot_read_as_rows_is_decoded_whole_by_libtiff(make, monkeypatch):
    data = make(photo(900, 660, seed=5))
    assert not tiff.inflated_rows(Image.open(io.BytesIO(data)))
    recipe = Recipe(sizes=(("a", 300),))
    made = process_image(data, recipe).variants[0].encoded["jpeg"]
    assert psnr(made, variants_decoded_whole(data, monkeypatch, recipe)[0]) == float("inf")


BANDED, WHOLE = Recipe(sizes=(("a", 300),)), Recipe(sizes=(("a", 1500),))  # reduced by 3; not reduced


@pytest.mark.parametrize(
    ("damage", "recipe"),
    [
        (lambda data: directory_first(data, keep=0.5), BANDED),  # the file ends half way through its strip
        (lambda data: directory_first(data, keep=0.5), WHOLE),
        (lambda data: data[:8] + bytes(2) + data[10:], BANDED),  # the zlib header (Pillow's strip is at 8)
        (lambda data: data[:8] + bytes(2) + data[10:], WHOLE),
        # zeros inflate to the right length of garbage, found by the checksum (libtiff does not look)
        (lambda data: data[:20_000] + bytes(64) + data[20_064:], BANDED),
    ],
    ids=["cut short", "cut short, whole", "bad header", "bad header, whole", "zeroed"],
)
def test_a_deflate_strip_that_does_not_inflate_is_rejected_as_corrupt(damage, recipe):
    picture = photo(1500, 1100)
    data = encode(picture, "TIFF", compression="tiff_adobe_deflate", tiffinfo=PREDICTOR, **ONE_STRIP)
    rejected = reject(damage(data), recipe)
    assert rejected.code == "corrupt"
    if recipe is BANDED:
        assert "deflate strip" in rejected.message


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
    # inflated a band of rows at a time
    "deflate one strip": lambda stored, o: encode(
        stored, "TIFF", compression="tiff_adobe_deflate", tiffinfo={ORIENTATION: o, **PREDICTOR}, **ONE_STRIP
    ),
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
    assert (header.banded, header.rows, header.inflate, header.unit) == (
        upright.banded, upright.rows, upright.inflate, upright.unit,
    )  # fmt: skip
