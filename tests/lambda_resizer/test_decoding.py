"""Shrink-on-load decoding: orientation applied whatever the container and the decode scale."""

from __future__ import annotations

import io

import pytest
from PIL import Image, ImageOps

from lambda_resizer.core import (
    DEFAULT_RECIPE,
    LibraryRouteNeeded,
    Recipe,
    process_image,
)
from lambda_resizer.estimate import estimate_memory, read_header
from tests.imaging import without_restart_marker
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
    photo,
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


def test_a_damaged_jpeg_our_route_declines_asks_before_libjpeg_decodes_it():
    # A lost restart marker: libjpeg resynchronises, holding every coefficient, which the header's
    # estimate did not count; a caller with a memory budget checks that first (processing.py).
    data = encode(
        photo(4000, 3000), "JPEG", quality=90, progressive=True, subsampling=0, restart_marker_blocks=6
    )
    damaged = without_restart_marker(data)
    with pytest.raises(LibraryRouteNeeded, match="restart marker"):
        process_image(damaged, DEFAULT_RECIPE, library_fallback=False)
    assert [v.name for v in process_image(damaged, DEFAULT_RECIPE).variants] == [
        "large",
        "medium",
        "small",
        "thumb",
    ]
    clean = process_image(data, DEFAULT_RECIPE, library_fallback=False)  # our route: no question asked
    assert len(clean.variants) == 4
    header = read_header(io.BytesIO(damaged))
    ours = estimate_memory(header, DEFAULT_RECIPE, source_bytes=len(damaged))
    libjpegs = estimate_memory(header, DEFAULT_RECIPE, source_bytes=len(damaged), library_route=True)
    assert (ours.path, libjpegs.path) == ("jpeg_scaled", "jpeg_progressive")
    assert libjpegs.peak_mb - ours.peak_mb > 60  # 36 M coefficients of 2 bytes
