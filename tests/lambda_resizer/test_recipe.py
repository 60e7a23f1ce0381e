"""The recipe and its output sizes."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from lambda_resizer.core import (
    DEFAULT_RECIPE,
    Recipe,
    content_type,
    extension,
    fit,
)


def test_recipe_record_is_json_and_names_the_settings():
    record = DEFAULT_RECIPE.to_record()
    assert json.loads(json.dumps(record)) == record
    assert record["sizes"] == {"large": 1024, "medium": 512, "small": 256, "thumb": 128}
    assert (record["filter"], record["quality"], record["webp_quality"]) == ("lanczos", 85, 80)
    assert record["formats"] == ["jpeg"] and record["pillow"] == Image.__version__


@pytest.mark.parametrize(
    "bad",
    [{"sizes": ()}, {"sizes": (("a", 10), ("a", 20))}, {"sizes": (("a", 0),)}, {"formats": ("png",)},
     {"formats": ()}, {"jpeg_quality": 0}, {"filter": "sinc"}, {"max_pixels": 0}],
)  # fmt: skip
def test_recipe_rejects_nonsense(bad):
    with pytest.raises(ValueError):
        Recipe(**bad)


def test_content_type_and_extension():
    assert (content_type("jpeg"), extension("jpeg")) == ("image/jpeg", "jpg")
    assert (content_type("webp"), extension("webp")) == ("image/webp", "webp")


@pytest.mark.parametrize(
    ("size", "edge", "expected"),
    [((4000, 3000), 1024, (1024, 768)), ((300, 200), 1024, (300, 200)), ((300, 200), 256, (256, 171)),
     ((4000, 10), 1024, (1024, 3)), ((2, 5000), 128, (1, 128)), ((1024, 1024), 1024, (1024, 1024))],
)  # fmt: skip
def test_fit_keeps_aspect_never_upscales_never_zero(size, edge, expected):
    assert fit(*size, edge) == expected


def test_recipe_refuses_a_pixel_cap_pillow_would_not_honour():
    with pytest.raises(ValueError, match="max_pixels must be between 1 and"):
        Recipe(max_pixels=300_000_000)
