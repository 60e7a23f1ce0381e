"""JPEG: DCT-scaled decoding in every JPEG mode and at every scale."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from lambda_resizer.core import (
    Recipe,
    process_image,
)
from tests.lambda_resizer.images import (
    check_variants,
    encode,
    marked,
)


@pytest.mark.parametrize("mode", ["RGB", "L", "CMYK"])
@pytest.mark.parametrize("progressive", [False, True])
@pytest.mark.parametrize("edge", [500, 300, 200, 100])  # DCT scale 1/1, 3/8, 1/4, 1/8
def test_jpeg_shrink_on_load_in_every_jpeg_mode(mode, progressive, edge):
    source = marked(800, 600).convert(mode)
    recipe = Recipe(sizes=(("a", edge), ("b", edge // 2)))
    result = process_image(encode(source, "JPEG", quality=95, progressive=progressive), recipe)
    assert result.info.mode == mode
    img = check_variants(result, 800, 600, recipe)[0]
    expected = source.convert("RGB").resize(img.size, Image.Resampling.LANCZOS)
    assert np.abs(np.asarray(img, dtype=np.int16) - np.asarray(expected, dtype=np.int16)).mean() < 3
