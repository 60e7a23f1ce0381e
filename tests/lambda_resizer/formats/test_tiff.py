"""TIFF: pages counted in one walk."""

from __future__ import annotations

import pytest
from PIL import Image

from lambda_resizer.core import (
    process_image,
)
from tests.lambda_resizer.images import (
    encode,
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
