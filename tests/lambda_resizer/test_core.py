"""Tests of the pure resize core: every input mode and format, orientation, colour, hostile bytes."""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path

import imagehash
import numpy as np
import pillow_heif
import pytest
from PIL import Image, ImageCms, ImageFile, ImageFilter, ImageOps

from lambda_resizer.core import (
    DEFAULT_RECIPE,
    REJECT_CODES,
    ImageRejected,
    Recipe,
    content_type,
    extension,
    fit,
    process_image,
)
from lambda_resizer.phash import hamming, phash

pillow_heif.register_heif_opener()  # to write HEIC test files; the core registers it itself to read them

CORPUS = Path(__file__).resolve().parents[2] / ".." / "shared" / "bench-corpus" / "photos"
RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)
ORIENTATION = 0x0112
# The stored pixels that EXIF orientation n turns into the displayed image (inverse of exif_transpose).
STORED_FROM_DISPLAYED = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


# --- image makers ----------------------------------------------------------------------------


def photo(width: int = 320, height: int = 240, seed: int = 0) -> Image.Image:
    """Return a photo-like RGB image: smooth colour fields, a few shapes, mild noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    channels = []
    for _ in range(3):
        fx, fy = rng.uniform(0.5, 4, 2) / max(width, height)
        channels.append(128 + 90 * np.sin(2 * np.pi * (fx * x + fy * y) + rng.uniform(0, 6.3)))
    img = np.stack(channels, axis=-1)
    for _ in range(6):
        cx, cy, r = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(0.05, 0.2) * width
        img[(x - cx) ** 2 + (y - cy) ** 2 < r**2] = rng.uniform(0, 255, 3)
    img += rng.normal(0, 4, img.shape)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")


def encode(img: Image.Image, fmt: str, **params: object) -> bytes:
    out = io.BytesIO()
    img.save(out, fmt, **params)
    return out.getvalue()


def decode(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def mean_colour(img: Image.Image, box: tuple[float, float, float, float]) -> np.ndarray:
    """Return the mean RGB, as seen on white, of a box given in fractions of the image size."""
    if img.mode == "RGBA":
        img = Image.alpha_composite(Image.new("RGBA", img.size, WHITE), img)
    w, h = img.size
    crop = img.convert("RGB").crop((int(box[0] * w), int(box[1] * h), int(box[2] * w), int(box[3] * h)))
    return np.asarray(crop, dtype=np.float64).reshape(-1, 3).mean(axis=0)


def near(colour: np.ndarray, expected: tuple[int, int, int], tolerance: float = 12) -> bool:
    return bool(np.abs(colour - np.array(expected)).max() <= tolerance)


def marked(width: int, height: int) -> Image.Image:
    """Return a blue image with a red top-left and a green bottom-right quarter-size block."""
    img = Image.new("RGB", (width, height), BLUE)
    img.paste(RED, (0, 0, width // 4, height // 4))
    img.paste(GREEN, (width - width // 4, height - height // 4, width, height))
    return img


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bytes(
    width: int, height: int, *, depth: int, colour_type: int, rows: bytes, chunks: bytes = b""
) -> bytes:
    """Return a PNG built by hand (for headers and bit depths Pillow will not write); ``chunks``
    go between IHDR and IDAT."""
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + chunks
        + png_chunk(b"IDAT", zlib.compress(rows))
        + png_chunk(b"IEND", b"")
    )


def rgb_profile(red: tuple, green: tuple, blue: tuple, gamma: float = 2.2) -> bytes:
    """Return a minimal ICC v2 matrix/TRC RGB display profile with the given D50 colorants."""

    def s15(value: float) -> bytes:
        return struct.pack(">i", round(value * 65536))

    def xyz(x: float, y: float, z: float) -> bytes:
        return b"XYZ \0\0\0\0" + s15(x) + s15(y) + s15(z)

    curve = b"curv\0\0\0\0" + struct.pack(">IH", 1, round(gamma * 256)) + b"\0\0"
    name = b"test RGB"
    desc = b"desc\0\0\0\0" + struct.pack(">I", len(name) + 1) + name + b"\0" + b"\0" * 79
    tags = [
        (b"desc", desc),
        (b"wtpt", xyz(0.9642, 1.0, 0.8249)),
        (b"rXYZ", xyz(*red)),
        (b"gXYZ", xyz(*green)),
        (b"bXYZ", xyz(*blue)),
        (b"rTRC", curve),
        (b"gTRC", curve),
        (b"bTRC", curve),
        (b"cprt", b"text\0\0\0\0none\0\0\0\0"),
    ]
    offset, table, body = 128 + 4 + 12 * len(tags), b"", b""
    for sig, data in tags:
        data += b"\0" * (-len(data) % 4)
        table += sig + struct.pack(">II", offset + len(body), len(data))
        body += data
    header = struct.pack(
        ">I4sI4s4s4s12s4s4sI4s4s8sI", offset + len(body), b"", 0x02100000, b"mntr", b"RGB ", b"XYZ ",
        b"\0" * 12, b"acsp", b"", 0, b"", b"", b"\0" * 8, 0,
    ) + s15(0.9642) + s15(1.0) + s15(0.8249) + b"\0" * 48  # fmt: skip
    return header + struct.pack(">I", len(tags)) + table + body


SRGB_D50 = ((0.4361, 0.2225, 0.0139), (0.3851, 0.7169, 0.0971), (0.1431, 0.0606, 0.7141))


def reject(data: bytes, recipe: Recipe = DEFAULT_RECIPE) -> ImageRejected:
    with pytest.raises(ImageRejected) as caught:
        process_image(data, recipe)
    err = caught.value
    assert err.code in REJECT_CODES
    assert str(err) == err.message and len(err.message) > 10 and "\n" not in err.message
    return err


def check_variants(result, width: int, height: int, recipe: Recipe = DEFAULT_RECIPE) -> list[Image.Image]:
    """Assert one variant per size with the expected size; return the decoded primary images."""
    assert [v.name for v in result.variants] == [name for name, _ in recipe.sizes]
    images = []
    for variant, (_, edge) in zip(result.variants, recipe.sizes, strict=True):
        assert (variant.width, variant.height) == fit(width, height, edge)
        assert set(variant.encoded) == set(recipe.formats)
        img = decode(variant.encoded[recipe.formats[0]])
        assert img.size == (variant.width, variant.height)
        images.append(img)
    return images


# --- the interface ---------------------------------------------------------------------------


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


def test_info_describes_the_source():
    data = encode(photo(400, 300), "JPEG", quality=90)
    info = process_image(data).info
    assert (info.width, info.height, info.format, info.mode) == (400, 300, "JPEG", "RGB")
    assert info.bytes == len(data) and len(info.sha256) == 64
    assert info.frame_count == 1 and info.exif_orientation == 1
    assert len(info.phash) == 16 and int(info.phash, 16) >= 0


def test_never_upscales_and_keeps_aspect():
    result = process_image(encode(photo(300, 200), "PNG"))
    sizes = [(v.width, v.height) for v in result.variants]
    assert sizes == [(300, 200), (300, 200), (256, 171), (128, 85)]


def test_variants_follow_recipe_order_even_when_sizes_are_not_descending():
    recipe = Recipe(sizes=(("tiny", 64), ("big", 400), ("mid", 200)))
    result = process_image(encode(photo(800, 600), "JPEG"), recipe)
    check_variants(result, 800, 600, recipe)


# --- modes and formats -----------------------------------------------------------------------


def jpeg_segments(data: bytes) -> list[bytes]:
    """Return a JPEG's marker segments after SOI, each scan with its entropy-coded data."""
    segments, i = [], 2
    while data[i + 1] != 0xD9:
        marker, length = data[i + 1], struct.unpack(">H", data[i + 2 : i + 4])[0]
        j = i + 2 + length
        if marker == 0xDA:
            while data[j] != 0xFF or data[j + 1] == 0 or 0xD0 <= data[j + 1] <= 0xD7:
                j += 1
        segments.append(data[i:j])
        i = j
    return segments


def without_adobe_marker(data: bytes) -> bytes:
    return b"\xff\xd8" + b"".join(seg for seg in jpeg_segments(data) if seg[1] != 0xEE) + b"\xff\xd9"


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


# --- orientation -----------------------------------------------------------------------------


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


# --- colour and metadata ---------------------------------------------------------------------


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


def test_metadata_is_stripped_from_every_variant():
    exif = Image.Exif()
    exif[ORIENTATION] = 1
    exif[0x010F] = "Camera Maker"
    exif.get_ifd(0x8825).update({1: "N", 2: (52.0, 31.0, 0.0), 3: "E", 4: (13.0, 24.0, 0.0)})  # GPS
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF/></x:xmpmeta>'
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    data = encode(photo(400, 300), "JPEG", exif=exif.tobytes(), xmp=xmp, icc_profile=srgb)
    source = decode(data)
    assert source.getexif().get_ifd(0x8825) and "xmp" in source.info and "icc_profile" in source.info

    result = process_image(data, Recipe(formats=("jpeg", "webp")))
    for variant in result.variants:
        for fmt, blob in variant.encoded.items():
            img = decode(blob)
            assert not img.getexif(), (variant.name, fmt)
            assert "icc_profile" not in img.info and "xmp" not in img.info and "exif" not in img.info
            for marker in (b"Exif\0", b"ns.adobe.com/xap", b"ICC_PROFILE", b"Camera Maker", b"ICCP", b"XMP "):
                assert marker not in blob, (variant.name, fmt, marker)


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


def test_webp_output_option():
    recipe = Recipe(formats=("jpeg", "webp"))
    result = process_image(encode(photo(1200, 900), "JPEG"), recipe)
    for img in check_variants(result, 1200, 900, recipe):
        assert img.format == "JPEG"
    for variant in result.variants:
        webp = decode(variant.encoded["webp"])
        assert webp.format == "WEBP" and webp.mode == "RGB" and webp.size == (variant.width, variant.height)


# --- perceptual hash and quality signals -----------------------------------------------------


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


# --- hostile input ---------------------------------------------------------------------------


def test_empty():
    assert reject(b"").code == "empty"


def test_text_named_jpg_is_not_an_image():
    assert reject(b"Hello! This is not a JPEG, it is a shopping list:\n- milk\n").code == "not_an_image"


def test_random_bytes_are_not_an_image():
    assert reject(np.random.default_rng(1).bytes(4096)).code == "not_an_image"


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF"])
@pytest.mark.parametrize("keep", [0.5, 0.02])
def test_truncated_files(fmt, keep):
    data = encode(photo(400, 300).convert("P") if fmt == "GIF" else photo(400, 300), fmt)
    err = reject(data[: max(20, int(len(data) * keep))])
    assert err.code == "truncated", err


def test_truncated_avif():
    try:
        data = encode(photo(200, 150), "AVIF")
    except (KeyError, OSError, ValueError) as exc:
        pytest.skip(f"cannot encode AVIF here: {exc}")
    assert reject(data[: len(data) // 2]).code == "truncated"


def test_corrupt_png_data():
    data = bytearray(encode(photo(64, 64), "PNG"))
    start = data.index(b"IDAT")
    length = struct.unpack(">I", data[start - 4 : start])[0]
    data[start + 6 : start + 4 + length] = np.random.default_rng(0).bytes(
        length - 2
    )  # garbage deflate stream
    data[start + 4 + length : start + 8 + length] = struct.pack(
        ">I", zlib.crc32(bytes(data[start : start + 4 + length]))
    )
    err = reject(bytes(data))
    assert err.code == "corrupt" and "cannot be decoded" in err.message


def test_png_header_claiming_100000x100000_is_refused_before_decoding():
    data = png_bytes(100_000, 100_000, depth=8, colour_type=2, rows=b"\0" * 301)
    err = reject(data)
    assert err.code == "too_many_pixels" and "10000 MP" in err.message and "100 MP limit" in err.message


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_header_over_the_recipe_cap_but_under_pillows_is_refused_too():
    err = reject(png_bytes(12_000, 10_000, depth=8, colour_type=0, rows=b"\0" * 100))
    assert err.code == "too_many_pixels"
    assert err.message == "image is 12000x10000 = 120 MP, over the 100 MP limit"


def test_a_progressive_jpeg_with_too_many_scans_is_refused_before_decoding():
    data = encode(Image.new("L", (640, 480), 128), "JPEG", progressive=True)
    segments = jpeg_segments(data)
    bomb = b"\xff\xd8" + b"".join(segments) + (segments[-2] + segments[-1]) * 100 + b"\xff\xd9"
    with pytest.raises(ImageRejected) as rejected:
        process_image(bomb)
    assert rejected.value.code == "too_many_scans" and "scans, over the 100 allowed" in str(rejected.value)
    assert process_image(data).info.width == 640  # an ordinary progressive JPEG (about 10 scans)


def tiff_of_tiny_pages(pages: int, *, loop: bool = False) -> bytes:
    """Return a TIFF of ``pages`` 1x1 grey pages; with ``loop`` the last page links back to the first."""
    out = bytearray(b"II*\0\x08\0\0\0")
    pixel = 8 + pages * 102
    for page in range(pages):
        link = len(out) + 102 if page < pages - 1 else (8 if loop else 0)
        tags = [(256, 3, 1, 1), (257, 3, 1, 1), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1)]
        tags += [(273, 4, 1, pixel), (278, 3, 1, 1), (279, 4, 1, 1)]
        out += struct.pack("<H", 8) + b"".join(struct.pack("<HHII", *tag) for tag in tags)
        out += struct.pack("<I", link)
    return bytes(out + b"\x80")


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


def test_recipe_refuses_a_pixel_cap_pillow_would_not_honour():
    with pytest.raises(ValueError, match="max_pixels must be between 1 and"):
        Recipe(max_pixels=300_000_000)


def test_recipe_pixel_cap():
    err = reject(encode(photo(100, 100), "PNG"), Recipe(max_pixels=5_000))
    assert err.code == "too_many_pixels" and "100x100" in err.message


@pytest.mark.parametrize(
    ("data", "name"),
    [(encode(Image.new("RGB", (32, 32)), "ICO"), "ICO"), (b"%PDF-1.7\n1 0 obj\n<<>>\nendobj\n", "PDF"),
     (b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"/>', "SVG")],
)  # fmt: skip
def test_other_formats_are_unsupported_and_named(data, name):
    err = reject(data)
    assert err.code == "unsupported_format" and name in err.message


def test_rejection_is_a_value_error_and_leaves_pillow_settings_alone():
    assert issubclass(ImageRejected, ValueError)
    reject(encode(photo(64, 64), "JPEG")[:300])
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


# --- real photos -----------------------------------------------------------------------------


@pytest.mark.skipif(not CORPUS.is_dir(), reason=f"benchmark photos not found at {CORPUS}")
def test_real_photos():
    for path in sorted(CORPUS.iterdir()):
        result = process_image(path.read_bytes())
        assert len(result.variants) == 4, path.name
        check_variants(result, result.info.width, result.info.height)
        for variant, (_, edge) in zip(result.variants, DEFAULT_RECIPE.sizes, strict=True):
            assert max(variant.width, variant.height) == min(edge, max(result.info.width, result.info.height))
