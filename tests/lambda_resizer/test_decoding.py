"""Shrink-on-load decoding: orientation applied whatever the container and the decode scale."""

from __future__ import annotations

import pytest
from PIL import Image, ImageOps

from lambda_resizer.core import (
    Recipe,
    process_image,
)
from tests.lambda_resizer.images import (
    BLUE,
    GREEN,
    ORIENTATION,
    RED,
    STORED_FROM_DISPLAYED,
    check_variants,
    decode,
    encode,
    marked,
    mean_colour,
    near,
)


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("edge", [2000, 360, 240, 100])  # no DCT scaling, 3/8, 1/4, 1/8
def test_exif_orientation_is_applied(orientation, edge):
    displayed = marked(960, 640)
    transpose = STORED_FROM_DISPLAYED[orientation]
    stored = displayed.transpose(transpose) if transpose is not None else displayed
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    data = encode(stored, "JPEG", quality=92, exif=exif.tobytes())
    assert ImageOps.exif_transpose(decode(data)).size == (960, 640)  # the test's own premise

    recipe = Recipe(sizes=(("a", edge),))
    result = process_image(data, recipe)
    assert (result.info.width, result.info.height, result.info.exif_orientation) == (960, 640, orientation)
    (img,) = check_variants(result, 960, 640, recipe)
    assert near(mean_colour(img, (0.02, 0.02, 0.2, 0.2)), RED, 20)
    assert near(mean_colour(img, (0.8, 0.8, 0.98, 0.98)), GREEN, 20)
    assert near(mean_colour(img, (0.8, 0.02, 0.98, 0.2)), BLUE, 20)


@pytest.mark.parametrize("fmt", ["HEIF", "AVIF", "PNG", "WEBP"])
def test_orientation_in_other_containers(fmt):
    displayed = marked(240, 160)
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    try:
        data = encode(displayed.transpose(Image.Transpose.ROTATE_90), fmt, exif=exif.tobytes(), quality=95)
    except (KeyError, OSError, ValueError) as exc:
        pytest.skip(f"cannot encode {fmt} here: {exc}")
    result = process_image(data, Recipe(sizes=(("a", 240),)))
    assert (result.info.width, result.info.height, result.info.exif_orientation) == (240, 160, 6)
    img = decode(result.variants[0].encoded["jpeg"])
    assert img.size == (240, 160)
    assert near(mean_colour(img, (0.02, 0.02, 0.2, 0.2)), RED, 20)
