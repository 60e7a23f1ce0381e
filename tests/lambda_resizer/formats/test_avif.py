"""AVIF: the frame decoded to its YUV planes and converted by libavif a band at a time gives the
variants of Pillow's whole decode."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from PIL import Image

from lambda_resizer import decoding
from lambda_resizer.core import process_image
from lambda_resizer.formats import avif
from tests.lambda_resizer.formats.test_heif import (
    RECIPE,
    assert_same_variants,
    only_the_planes,
    translucent,
    whole_decode,
)
from tests.lambda_resizer.images import ORIENTATION, encode, photo, reject


@pytest.fixture(autouse=True)
def many_bands(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bands of 15 rows of these 900-wide images (reduced by 3): many bands, most starting on an
    odd row, inside a row of 4:2:0 chroma."""
    monkeypatch.setattr(decoding, "BAND_BYTES", 4 * 900 * 3 * 5)


def with_orientation() -> bytes:
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    return encode(photo(900, 661, seed=7), "AVIF", quality=80, speed=10, exif=exif.tobytes())


SOURCES: dict[str, Callable[[], bytes]] = {
    "4:2:0": lambda: encode(photo(900, 661, seed=7), "AVIF", quality=80, speed=10),
    "4:4:4": lambda: encode(photo(900, 661, seed=7), "AVIF", quality=80, speed=10, subsampling="4:4:4"),
    "limited range": lambda: encode(photo(900, 661, seed=7), "AVIF", quality=80, speed=10, range="limited"),
    "with alpha": lambda: encode(translucent(photo(900, 661, seed=7)), "AVIF", quality=80, speed=10),
    "grey": lambda: encode(photo(900, 661, seed=7).convert("L"), "AVIF", quality=80, speed=10),
    "orientation 6 (irot)": with_orientation,
}


@pytest.fixture
def planes_only(monkeypatch: pytest.MonkeyPatch) -> None:
    only_the_planes(avif, "Pillow's libavif", monkeypatch)


@pytest.mark.parametrize("name", list(SOURCES))
def test_bands_converted_from_the_planes_give_the_variants_of_a_whole_decode(name, monkeypatch, planes_only):
    data = SOURCES[name]()
    banded = process_image(data, RECIPE)
    if name == "orientation 6 (irot)":  # stored as is, turned by the core as the plugin's EXIF says
        assert (banded.info.width, banded.info.height, banded.info.exif_orientation) == (661, 900, 6)
    assert_same_variants(banded.variants, whole_decode(data, monkeypatch))


def test_a_libavif_version_not_checked_takes_the_plugins_route(monkeypatch):
    data = SOURCES["4:2:0"]()
    monkeypatch.setattr(avif, "_VERIFIED", ("0.",))
    avif._libavif.cache_clear()
    try:
        assert not avif.planar()
        banded = process_image(data, RECIPE).variants
    finally:
        avif._libavif.cache_clear()
    assert_same_variants(banded, whole_decode(data, monkeypatch))


def test_avif_image_data_that_libavif_cannot_decode_is_rejected_as_corrupt():
    data = bytearray(SOURCES["4:2:0"]())
    start = data.index(b"mdat") + 4 + 16  # the boxes intact, the AV1 data garbage after its start
    data[start:] = np.random.default_rng(0).bytes(len(data) - start)
    err = reject(bytes(data), RECIPE)
    assert err.code == "corrupt" and "AVIF image data" in err.message, err.message


def test_an_avif_cut_short_is_rejected_not_crashed():
    data = SOURCES["4:2:0"]()
    assert reject(data[: len(data) * 2 // 3], RECIPE).code in ("truncated", "corrupt")
