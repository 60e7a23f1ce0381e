"""HEIF (HEIC): the primary image decoded to its YCbCr planes and converted a band at a time gives the
variants of pillow-heif's whole decode."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from types import ModuleType

import numpy as np
import pillow_heif
import pytest
from PIL import Image

from lambda_resizer import decoding
from lambda_resizer.core import Recipe, process_image
from lambda_resizer.formats import heif
from tests.lambda_resizer.formats.test_tiff import psnr
from tests.lambda_resizer.images import ORIENTATION, decode, encode, photo, reject

RECIPE = Recipe(sizes=(("a", 300), ("b", 120)), formats=("jpeg", "webp"))


@pytest.fixture(autouse=True)
def many_bands(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bands of 15 rows of these 900-wide images (reduced by 3): many bands, most starting on an
    odd row, inside a row of 4:2:0 chroma."""
    monkeypatch.setattr(decoding, "BAND_BYTES", 4 * 900 * 3 * 5)


def translucent(image: Image.Image) -> Image.Image:
    rgba = image.convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize(image.size))
    return rgba


def ten_bit(image: Image.Image, **options: object) -> bytes:
    """Return ``image`` as a 10-bit HEIC (pillow-heif writes 16-bit samples as 10 bits)."""
    samples = np.asarray(image).astype(np.uint16) * 257
    out = io.BytesIO()
    pillow_heif.from_bytes("RGB;16", image.size, samples.tobytes()).save(out, quality=80, **options)
    return out.getvalue()


def rotated() -> bytes:
    """A HEIC stored turned, with EXIF orientation 6: pillow-heif writes it as an irot property."""
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    return encode(photo(900, 661, seed=7).transpose(Image.Transpose.ROTATE_90), "HEIF", exif=exif.tobytes())


BT2020 = {"chroma": 422, "matrix_coefficients": 9}
SOURCES: dict[str, Callable[[], bytes]] = {
    "4:2:0": lambda: encode(photo(900, 661, seed=7), "HEIF", quality=80),
    "4:4:4": lambda: encode(photo(900, 661, seed=7), "HEIF", quality=80, chroma=444),
    "4:2:2 BT.2020": lambda: encode(photo(900, 661, seed=7), "HEIF", quality=80, **BT2020),
    "limited range BT.709": lambda: encode(
        photo(900, 661, seed=7), "HEIF", quality=80, full_range_flag=0, matrix_coefficients=1
    ),
    "with alpha": lambda: encode(translucent(photo(900, 661, seed=7)), "HEIF", quality=80),
    "grey": lambda: encode(photo(900, 661, seed=7).convert("L"), "HEIF", quality=80),
    "rotated (irot)": rotated,
    "10-bit": lambda: ten_bit(photo(900, 661, seed=7)),
    "10-bit limited range": lambda: ten_bit(photo(900, 661, seed=7), full_range_flag=0),
}


def whole_decode(data: bytes, monkeypatch: pytest.MonkeyPatch) -> list:
    """Return the variants of pillow-heif's own whole decode (no band decoder)."""
    with monkeypatch.context() as patch:
        patch.setattr(decoding, "band_decoder", lambda im, data, rows: None)
        return process_image(data, RECIPE).variants


def assert_same_variants(made: list, reference: list) -> None:
    for variant, expected in zip(made, reference, strict=True):
        assert (variant.width, variant.height) == (expected.width, expected.height)
        assert psnr(variant.encoded["jpeg"], expected.encoded["jpeg"]) >= 45
        assert psnr(variant.encoded["webp"], expected.encoded["webp"]) >= 45
        alpha = [np.asarray(decode(v.encoded["webp"]).convert("RGBA"))[..., 3] for v in (variant, expected)]
        assert np.abs(alpha[0].astype(int) - alpha[1]).max() <= 1  # transparency as a whole decode keeps it


def only_the_planes(module: ModuleType, library: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Skip if ``module`` cannot call its ``library``, else fail the test if the plugin's route is taken."""
    if not module.planar():
        pytest.skip(f"{library} cannot be called here: every file takes the plugin's route")

    def refuse(im: Image.Image, data: bytes, rows: int) -> Iterator[Image.Image] | None:
        raise AssertionError("the plugin's RGB route was taken")

    monkeypatch.setattr(module, "_plugin_bands", refuse)


@pytest.fixture
def planes_only(monkeypatch: pytest.MonkeyPatch) -> None:
    only_the_planes(heif, "pillow-heif's libheif", monkeypatch)


@pytest.mark.parametrize("name", list(SOURCES))
def test_bands_converted_from_the_planes_give_the_variants_of_a_whole_decode(name, monkeypatch, planes_only):
    data = SOURCES[name]()
    banded = process_image(data, RECIPE)
    if name == "rotated (irot)":  # libheif turned the pixels, as it does for pillow-heif
        assert (banded.info.width, banded.info.height) == (900, 661)
    assert_same_variants(banded.variants, whole_decode(data, monkeypatch))


def test_a_matrix_libheif_converts_specially_takes_the_plugins_route_and_its_pixels(monkeypatch):
    data = encode(photo(640, 480, seed=3), "HEIF", quality=80, chroma=444, matrix_coefficients=8)  # YCgCo
    taken = []
    plugin = heif._plugin_bands
    monkeypatch.setattr(heif, "_plugin_bands", lambda *args: taken.append(1) or plugin(*args))
    banded = process_image(data, RECIPE).variants
    assert taken  # not converted here: libheif's own conversion, cut into bands
    assert_same_variants(banded, whole_decode(data, monkeypatch))


def test_a_libheif_version_not_checked_takes_the_plugins_route(monkeypatch):
    data = SOURCES["4:2:0"]()
    monkeypatch.setattr(heif, "_VERIFIED", ("0.",))
    heif._libheif.cache_clear()
    try:
        assert not heif.planar()
        banded = process_image(data, RECIPE).variants
    finally:
        heif._libheif.cache_clear()
    assert_same_variants(banded, whole_decode(data, monkeypatch))


def test_heic_image_data_that_libheif_cannot_decode_is_rejected_as_corrupt():
    data = bytearray(SOURCES["4:2:0"]())
    start = data.index(b"mdat") + 4  # the boxes intact, the coded picture garbage
    data[start:] = np.random.default_rng(0).bytes(len(data) - start)
    err = reject(bytes(data), RECIPE)
    assert err.code == "corrupt" and "HEIF image data" in err.message, err.message


def test_a_heic_cut_short_is_rejected_not_crashed():
    data = SOURCES["4:2:0"]()
    assert reject(data[: len(data) * 2 // 3], RECIPE).code in ("truncated", "corrupt")


def test_chroma_planes_short_of_the_image_are_rejected_as_corrupt_not_read_past(monkeypatch, planes_only):
    plane = heif._Decoded.plane

    def short(self: heif._Decoded, channel: int, bits: int) -> np.ndarray:
        got = plane(self, channel, bits)
        return got[: got.shape[0] // 2] if channel == heif._CB else got  # as a hostile stream could decode

    monkeypatch.setattr(heif._Decoded, "plane", short)
    err = reject(SOURCES["4:2:0"](), RECIPE)
    assert err.code == "corrupt" and "chroma planes" in err.message, err.message
