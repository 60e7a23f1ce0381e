"""The perceptual hash: bit-identical to imagehash, near copies close, others far."""

from __future__ import annotations

import imagehash
import numpy as np
import pytest
from PIL import Image, ImageFilter

from lambda_resizer.core import (
    process_image,
)
from lambda_resizer.phash import hamming, phash
from tests.lambda_resizer.images import (
    decode,
    encode,
    photo,
)


@pytest.mark.parametrize("seed", range(12))
def test_phash_is_bit_identical_to_imagehash(seed):
    img = photo(256, 192, seed=seed)
    if seed % 3 == 1:
        img = img.filter(ImageFilter.GaussianBlur(3))
    if seed % 3 == 2:
        img = Image.fromarray(np.random.default_rng(seed).integers(0, 256, (150, 200, 3), dtype=np.uint8))
    assert phash(img) == str(imagehash.phash(img))


def test_info_phash_matches_imagehash_of_the_small_variant():
    result = process_image(encode(photo(1600, 1200, seed=3), "JPEG", quality=95))
    small = decode(next(v for v in result.variants if v.name == "small").encoded["jpeg"])
    assert hamming(result.info.phash, str(imagehash.phash(small))) <= 4


def test_phash_finds_near_duplicates_and_separates_unrelated_images():
    original = photo(1200, 900, seed=7)
    copy = original.resize((840, 630), Image.Resampling.BICUBIC)
    first = process_image(encode(original, "PNG")).info.phash
    again = process_image(encode(copy, "JPEG", quality=60)).info.phash
    other = process_image(encode(photo(1200, 900, seed=8), "PNG")).info.phash
    assert hamming(first, again) <= 6
    assert hamming(first, other) >= 16
