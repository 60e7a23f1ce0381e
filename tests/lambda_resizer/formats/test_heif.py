"""HEIF and AVIF: frames cut into bands from their library's buffer give the variants of a whole decode."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from lambda_resizer import decoding
from lambda_resizer.core import Recipe, process_image
from lambda_resizer.formats import avif, heif
from tests.lambda_resizer.formats.test_tiff import psnr
from tests.lambda_resizer.images import decode, encode, photo


@pytest.fixture(autouse=True)
def many_bands(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bands of 64 KiB, so these small test images are decoded in many bands."""
    monkeypatch.setattr(decoding, "BAND_BYTES", 64 * 1024)


def sources() -> dict[str, tuple[bytes, object]]:
    image = photo(900, 660, seed=7)
    rgba = image.convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize(image.size))
    made: dict[str, tuple[bytes, object]] = {}
    for name, fmt, img, module in [
        ("HEIC", "HEIF", image, heif),
        ("HEIC with alpha", "HEIF", rgba, heif),
        ("AVIF", "AVIF", image, avif),
        ("AVIF with alpha", "AVIF", rgba, avif),
    ]:
        try:
            made[name] = (encode(img, fmt, quality=80), module)
        except (KeyError, OSError, ValueError):  # no encoder here: the test of that format is skipped
            continue
    return made


@pytest.mark.parametrize("name", ["HEIC", "HEIC with alpha", "AVIF", "AVIF with alpha"])
def test_band_cut_variants_match_a_whole_decode(name, monkeypatch):
    if name not in sources():
        pytest.skip(f"cannot encode {name} here")
    data, module = sources()[name]
    recipe = Recipe(sizes=(("a", 300), ("b", 120)), formats=("jpeg", "webp"))
    assert module.bands(Image.open(io.BytesIO(data)), data, 64) is not None  # really cut into bands
    banded = process_image(data, recipe).variants
    with monkeypatch.context() as patch:
        patch.setattr(decoding, "band_decoder", lambda im, data, rows: None)
        whole = process_image(data, recipe).variants
    for made, reference in zip(banded, whole, strict=True):
        assert psnr(made.encoded["jpeg"], reference.encoded["jpeg"]) >= 45
        assert psnr(made.encoded["webp"], reference.encoded["webp"]) >= 45
        alpha = [np.asarray(decode(v.encoded["webp"]).convert("RGBA"))[..., 3] for v in (made, reference)]
        assert np.abs(alpha[0].astype(int) - alpha[1]).max() <= 1  # transparency as a whole decode keeps it
