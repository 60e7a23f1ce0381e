"""WebP: stills decoded by libwebp already scaled, from the caller's bytes alone."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from lambda_resizer.core import Recipe, process_image
from lambda_resizer.formats import webp
from tests.lambda_resizer.formats.test_tiff import psnr
from tests.lambda_resizer.images import encode, photo, reject

RECIPE = Recipe(sizes=(("a", 300), ("b", 120)))


@pytest.fixture(autouse=True)
def libwebp_loaded() -> None:
    if webp._libwebp() is None:
        pytest.skip("Pillow's libwebp cannot be called here: every WebP takes Pillow's path")


def webp_sources() -> dict[str, bytes]:
    image = photo(900, 660, seed=8)
    rgba = image.convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize(image.size))
    return {
        "lossy": encode(image, "WEBP", quality=90),
        "lossy with alpha": encode(rgba, "WEBP", quality=90),
        "lossless": encode(image, "WEBP", lossless=True),
    }


@pytest.mark.parametrize("name", list(webp_sources()))
def test_a_still_decoded_by_libwebp_gives_the_variants_of_pillows_decode(name, monkeypatch):
    data = webp_sources()[name]
    scaled = process_image(data, RECIPE)  # Pillow's decoder of the file is freed before libwebp's
    with monkeypatch.context() as patch:
        patch.setattr(webp, "decode_scaled", lambda im, data, size: None)  # Pillow's own path
        whole = process_image(data, RECIPE)
    facts = ("width", "height", "format", "mode", "frame_count", "exif_orientation")
    assert [getattr(scaled.info, f) for f in facts] == [getattr(whole.info, f) for f in facts]
    for made, expected in zip(scaled.variants, whole.variants, strict=True):
        assert (made.width, made.height) == (expected.width, expected.height)
        for fmt in RECIPE.formats:
            assert psnr(made.encoded[fmt], expected.encoded[fmt]) >= 40


@pytest.mark.parametrize("lossless", [True, False])
def test_webp_image_data_that_libwebp_cannot_decode_is_rejected_as_corrupt(lossless):
    data = bytearray(encode(photo(300, 200), "WEBP", lossless=lossless, quality=90))
    data[40:-8] = np.random.default_rng(0).bytes(len(data) - 48)  # the header intact, garbage after it
    err = reject(bytes(data))
    assert err.code == "corrupt" and "WebP image data" in err.message, err.message
