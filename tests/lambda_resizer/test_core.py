"""process_image end to end: sizes, order, facts about the source, real photos."""

from __future__ import annotations

import re

import imagehash
import pytest
from PIL import Image

from lambda_resizer.core import (
    DEFAULT_RECIPE,
    Recipe,
    process_image,
)
from lambda_resizer.phash import hamming
from tests.lambda_resizer.images import (
    BLUE,
    CORPUS,
    GREEN,
    RED,
    check_variants,
    decode,
    encode,
    marked,
    mean_colour,
    near,
    photo,
)


def test_info_describes_the_source():
    data = encode(photo(400, 300), "JPEG", quality=90)
    info = process_image(data).info
    assert (info.width, info.height, info.format, info.mode) == (400, 300, "JPEG", "RGB")
    assert info.bytes == len(data) and len(info.sha256) == 64
    assert info.frame_count == 1 and info.exif_orientation == 1
    # The source's perceptual hash as the duplicate finder reads it: 16 lowercase hex digits, within a
    # few bits of imagehash's pHash of the uploaded file (it is measured on a 256 px copy).
    assert re.fullmatch("[0-9a-f]{16}", info.phash)
    assert hamming(info.phash, str(imagehash.phash(decode(data)))) <= 4


def test_never_upscales_and_keeps_aspect():
    result = process_image(encode(photo(300, 200), "PNG"))
    sizes = [(v.width, v.height) for v in result.variants]
    assert sizes == [(300, 200), (300, 200), (256, 171), (128, 85)]


def test_variants_follow_recipe_order_even_when_sizes_are_not_descending():
    recipe = Recipe(sizes=(("tiny", 64), ("big", 400), ("mid", 200)))
    result = process_image(encode(photo(800, 600), "JPEG"), recipe)
    check_variants(result, 800, 600, recipe)


@pytest.mark.parametrize("fmt", ["HEIF", "AVIF"])
def test_heic_and_avif_inputs(fmt):
    source = marked(240, 160)
    try:
        data = encode(source, fmt, quality=95)
    except (KeyError, OSError, ValueError) as exc:  # no encoder in this build
        pytest.skip(f"cannot encode {fmt} here: {exc}")
    result = process_image(data, Recipe(sizes=(("a", 120),)))
    assert result.info.format == fmt
    (img,) = check_variants(result, 240, 160, Recipe(sizes=(("a", 120),)))
    assert near(mean_colour(img, (0, 0, 0.2, 0.2)), RED, 20)


@pytest.mark.parametrize("fmt", ["GIF", "WEBP", "PNG"])
def test_animation_uses_first_frame_and_counts_frames(fmt):
    frames = [Image.new("RGB", (80, 60), colour) for colour in (RED, GREEN, BLUE)]
    data = encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)
    result = process_image(data, Recipe(sizes=(("a", 40),)))
    assert result.info.frame_count == 3
    assert near(mean_colour(decode(result.variants[0].encoded["jpeg"]), (0, 0, 1, 1)), RED)


@pytest.mark.skipif(not CORPUS.is_dir(), reason=f"benchmark photos not found at {CORPUS}")
def test_real_photos():
    for path in sorted(CORPUS.iterdir()):
        result = process_image(path.read_bytes())
        assert len(result.variants) == 4, path.name
        check_variants(result, result.info.width, result.info.height)
        for variant, (_, edge) in zip(result.variants, DEFAULT_RECIPE.sizes, strict=True):
            assert max(variant.width, variant.height) == min(edge, max(result.info.width, result.info.height))
