"""Quality signals: brightness and blur score."""

from __future__ import annotations

from PIL import Image, ImageFilter

from lambda_resizer.core import (
    process_image,
)
from tests.lambda_resizer.images import (
    WHITE,
    encode,
    photo,
)


def test_brightness_of_black_and_white():
    black = process_image(encode(Image.new("RGB", (300, 200), (0, 0, 0)), "PNG")).info
    white = process_image(encode(Image.new("RGB", (300, 200), WHITE), "PNG")).info
    assert black.brightness < 0.02 and white.brightness > 0.98


def test_blur_score_is_lower_for_a_blurred_image():
    sharp = photo(1024, 768, seed=4)
    blurred = sharp.filter(ImageFilter.GaussianBlur(6))
    assert (
        process_image(encode(blurred, "PNG")).info.blur_score
        < process_image(encode(sharp, "PNG")).info.blur_score / 3
    )
