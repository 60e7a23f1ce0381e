"""Colour: every mode and bit depth becomes 8-bit sRGB; ICC profiles; alpha onto white."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from PIL import Image, ImageCms

from lambda_resizer.core import (
    Recipe,
    process_image,
)
from tests.lambda_resizer.images import (
    BLUE,
    GREEN,
    RED,
    SRGB_D50,
    WHITE,
    check_variants,
    decode,
    encode,
    mean_colour,
    near,
    png_bytes,
    png_chunk,
    rgb_profile,
    without_adobe_marker,
)


def _mode_sources() -> dict[str, tuple[bytes, str, tuple[int, int, int]]]:
    """Return name -> (file bytes, mode Pillow decodes it as, expected colour of the centre)."""
    base = Image.new("RGB", (96, 64), (200, 120, 40))
    grey = Image.new("L", (96, 64), 150)
    palette = base.convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    keyed = palette.copy()
    keyed.info["transparency"] = palette.getpixel((0, 0))  # the whole image is the transparent index
    rgba = base.convert("RGBA")
    rgba.putalpha(255)
    la = Image.merge("LA", (grey, Image.new("L", grey.size, 255)))
    gradient16 = Image.fromarray(np.full((64, 96), 40000, dtype=np.uint16))  # 40000/65535 -> ~156
    int32 = Image.fromarray(np.full((64, 96), 50000, dtype=np.int32), "I")  # 16-bit range in I -> ~195
    float32 = Image.fromarray(np.full((64, 96), 0.5, dtype=np.float32), "F")  # 0..1 range -> ~128
    cmyk = Image.new("CMYK", (96, 64), (0, 255, 255, 0))  # pure red in naive CMYK
    dark16 = np.full((64, 96), 200, dtype=np.uint16)  # 200/65535: nearly black, whatever the maximum
    hot16 = dark16.copy()
    hot16[0, 0] = 256  # one pixel over 255 must not change the scale of the rest
    hot_float = np.full((64, 96), 0.5, dtype=np.float32)
    hot_float[0, :3] = (1.5, np.nan, np.inf)  # a highlight over 1, a NaN and an infinity
    rgb_stored = encode(base, "JPEG", quality=95, keep_rgb=True)  # Adobe marker: transform 0
    return {
        "RGB": (encode(base, "PNG"), "RGB", (200, 120, 40)),
        "RGBA": (encode(rgba, "PNG"), "RGBA", (200, 120, 40)),
        "L": (encode(grey, "PNG"), "L", (150, 150, 150)),
        "LA": (encode(la, "PNG"), "LA", (150, 150, 150)),
        "P": (encode(palette, "PNG"), "P", (200, 120, 40)),
        "P+transparency": (encode(keyed, "PNG"), "P", WHITE),
        "1": (encode(grey.point(lambda v: 255).convert("1"), "PNG"), "1", WHITE),
        "CMYK jpeg": (encode(cmyk, "JPEG", quality=95), "CMYK", RED),
        "CMYK tiff": (encode(cmyk, "TIFF"), "CMYK", RED),
        "I;16 png": (encode(gradient16, "PNG"), "I;16", (156, 156, 156)),
        "I;16 png, dark": (encode(Image.fromarray(dark16), "PNG"), "I;16", (1, 1, 1)),
        "I;16 png + tRNS key": (  # every pixel is the 16-bit transparent key
            png_bytes(
                96,
                64,
                depth=16,
                colour_type=0,
                rows=(b"\0" + b"\x12\x34" * 96) * 64,
                chunks=png_chunk(b"tRNS", b"\x12\x34"),
            ),
            "I;16",
            WHITE,
        ),
        "I;16 png, dark with a hot pixel": (encode(Image.fromarray(hot16), "PNG"), "I;16", (1, 1, 1)),
        "F tiff, hot pixels and NaN": (encode(Image.fromarray(hot_float, "F"), "TIFF"), "F", (128, 128, 128)),
        "RGB-stored jpeg, Adobe marker": (rgb_stored, "RGB", (200, 120, 40)),
        "RGB-stored jpeg, R G B component ids only": (
            without_adobe_marker(rgb_stored),
            "RGB",
            (200, 120, 40),
        ),
        "I;16 tiff": (encode(gradient16, "TIFF"), "I;16", (156, 156, 156)),
        "I tiff": (encode(int32, "TIFF"), "I", (195, 195, 195)),
        "F tiff": (encode(float32, "TIFF"), "F", (128, 128, 128)),
        "RGB 16-bit png": (
            png_bytes(
                4,
                2,
                depth=16,
                colour_type=2,
                rows=(b"\0" + struct.pack(">HHH", 0x8000, 0x4000, 0xFFFF) * 4) * 2,
            ),
            "RGB",
            (128, 64, 255),
        ),
        "BMP": (encode(base, "BMP"), "RGB", (200, 120, 40)),
        "WebP": (encode(base, "WEBP", lossless=True), "RGB", (200, 120, 40)),
        "GIF": (encode(palette, "GIF"), "P", (200, 120, 40)),
    }


MODE_SOURCES = _mode_sources()


@pytest.mark.parametrize("name", list(MODE_SOURCES))
@pytest.mark.parametrize("formats", [("jpeg",), ("webp", "jpeg")])
def test_every_mode_becomes_8bit_srgb(name, formats):
    data, mode, colour = MODE_SOURCES[name]
    recipe = Recipe(sizes=(("a", 64), ("b", 16)), formats=formats)
    result = process_image(data, recipe)
    assert result.info.mode == mode
    width, height = result.info.width, result.info.height
    for img in check_variants(result, width, height, recipe):
        assert img.mode in ("RGB", "RGBA")
        assert near(mean_colour(img, (0.3, 0.3, 0.7, 0.7)), colour, tolerance=8), mean_colour(
            img, (0.3, 0.3, 0.7, 0.7)
        )


def test_icc_srgb_profile_passes_colours_through():
    source = Image.new("RGB", (64, 48), (200, 100, 50))
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    result = process_image(encode(source, "PNG", icc_profile=srgb), Recipe(sizes=(("a", 64),)))
    assert near(mean_colour(decode(result.variants[0].encoded["jpeg"]), (0, 0, 1, 1)), (200, 100, 50), 3)


def test_icc_profile_is_converted_to_srgb():
    swapped = rgb_profile(SRGB_D50[1], SRGB_D50[0], SRGB_D50[2])  # "red" primary is sRGB's green
    source = Image.new("RGB", (64, 48), RED)
    result = process_image(
        encode(source, "JPEG", quality=95, icc_profile=swapped), Recipe(sizes=(("a", 32),))
    )
    img = decode(result.variants[0].encoded["jpeg"])
    assert near(mean_colour(img, (0, 0, 1, 1)), GREEN, 12)
    assert "icc_profile" not in img.info


def test_jpeg_flattens_alpha_onto_white_and_webp_keeps_it():
    source = Image.new("RGBA", (80, 40), (255, 0, 0, 0))  # left half: fully transparent red
    source.paste((0, 0, 255, 255), (40, 0, 80, 40))  # right half: opaque blue
    result = process_image(encode(source, "PNG"), Recipe(sizes=(("a", 80),), formats=("jpeg", "webp")))
    jpeg = decode(result.variants[0].encoded["jpeg"])
    assert jpeg.mode == "RGB"
    assert near(mean_colour(jpeg, (0.05, 0.1, 0.4, 0.9)), WHITE)
    assert near(mean_colour(jpeg, (0.6, 0.1, 0.95, 0.9)), BLUE)
    webp = decode(result.variants[0].encoded["webp"])
    assert webp.mode == "RGBA" and webp.getpixel((5, 20))[3] == 0 and webp.getpixel((70, 20))[3] == 255


def test_half_transparent_black_becomes_mid_grey():
    source = Image.new("RGBA", (40, 40), (0, 0, 0, 128))
    result = process_image(encode(source, "PNG"), Recipe(sizes=(("a", 40),)))
    assert near(mean_colour(decode(result.variants[0].encoded["jpeg"]), (0, 0, 1, 1)), (127, 127, 127), 4)
