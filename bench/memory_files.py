"""Synthetic but ordinary image files for the memory benchmark: every format and mode the core reads.

Content is photo-like (smooth colour fields, a few shapes, mild texture) so that each codec
compresses it about as it compresses photos; files are made once and cached.
"""

from __future__ import annotations

import io
import math
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.imaging import tiled_tiff

ASPECT = 4 / 3


def size_for(megapixels: float) -> tuple[int, int]:
    """Return a 4:3 (width, height) of about ``megapixels``."""
    height = int(math.sqrt(megapixels * 1e6 / ASPECT))
    return int(height * ASPECT), height


def photo(size: tuple[int, int], seed: int = 0) -> Image.Image:
    """Return a photo-like RGB image of ``size``: a small random field upscaled, shapes, fine texture."""
    rng = np.random.default_rng(seed)
    small = Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8), "RGB")
    img = small.resize(size, Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(img)
    width, height = size
    for _ in range(40):
        x0, y0 = int(rng.uniform(0, width)), int(rng.uniform(0, height))
        x1, y1 = x0 + int(rng.uniform(0.02, 0.2) * width), y0 + int(rng.uniform(0.02, 0.2) * height)
        draw.ellipse((x0, y0, x1, y1), fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
    # Fine texture: a tiled noise patch, so encoders see detail without a huge random array.
    patch = rng.normal(0, 3, (256, 256)).astype(np.float32)
    row_of_patches = np.tile(patch, (4, -(-width // 256)))[:, :width, None]  # 1024 rows
    for top in range(0, height, 1024):
        bottom = min(height, top + 1024)
        block = np.asarray(img.crop((0, top, width, bottom)), dtype=np.float32)
        block += row_of_patches[: bottom - top]
        img.paste(Image.fromarray(np.clip(block, 0, 255).astype(np.uint8), "RGB"), (0, top))
    return img


def _save(img: Image.Image, fmt: str, **params: object) -> bytes:
    out = io.BytesIO()
    img.save(out, fmt, **params)
    return out.getvalue()


def _rgba(img: Image.Image) -> Image.Image:
    alpha = Image.linear_gradient("L").resize(img.size).point(lambda v: 96 + v * 159 // 255)
    rgba = img.convert("RGBA")
    rgba.putalpha(alpha)
    return rgba


def _palette_trns(img: Image.Image) -> Image.Image:
    pal = img.quantize(colors=255, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
    pal.info["transparency"] = 0
    return pal


def _grey16(img: Image.Image) -> Image.Image:
    grey = np.asarray(img.convert("L"), dtype=np.uint16) * 257
    return Image.fromarray(grey)


#: kind -> (file suffix, maker of the file bytes from a photo-like RGB image)
KINDS: dict[str, tuple[str, Callable[[Image.Image], bytes]]] = {
    "jpeg": ("jpg", lambda im: _save(im, "JPEG", quality=90)),
    "jpeg_progressive": ("jpg", lambda im: _save(im, "JPEG", quality=90, progressive=True)),
    # a restart marker every MCU: the most restart intervals a file can have (formats.jpeg_dc)
    "jpeg_progressive_restart": (
        "jpg",
        lambda im: _save(im, "JPEG", quality=90, progressive=True, restart_marker_blocks=1),
    ),
    "jpeg_444": ("jpg", lambda im: _save(im, "JPEG", quality=90, subsampling=0)),
    "png_rgb": ("png", lambda im: _save(im, "PNG", compress_level=6)),
    "png_rgba": ("png", lambda im: _save(_rgba(im), "PNG", compress_level=6)),
    "png_palette_trns": ("png", lambda im: _save(_palette_trns(im), "PNG", compress_level=6)),
    "png_grey16": ("png", lambda im: _save(_grey16(im), "PNG", compress_level=6)),
    "gif": ("gif", lambda im: _save(im.quantize(colors=256, dither=Image.Dither.NONE), "GIF")),
    "tiff_deflate": ("tif", lambda im: _save(im, "TIFF", compression="tiff_adobe_deflate")),
    "tiff_tiled": ("tif", tiled_tiff),
    "tiff_raw": ("tif", lambda im: _save(im, "TIFF")),  # uncompressed, one strip (Pillow's default)
    "tiff_deflate_strip": (  # compressed, one strip: libtiff inflates it whole
        "tif",
        lambda im: _save(im, "TIFF", compression="tiff_adobe_deflate", strip_size=2**30),
    ),
    "bmp": ("bmp", lambda im: _save(im, "BMP")),
    "webp": ("webp", lambda im: _save(im, "WEBP", quality=80, method=0)),
    "webp_lossless": ("webp", lambda im: _save(im, "WEBP", lossless=True, quality=0, method=0)),
    "heic": ("heic", lambda im: _save(im, "HEIF", quality=80)),
    "avif": ("avif", lambda im: _save(im, "AVIF", quality=60, speed=10)),
}


def make_file(kind: str, megapixels: float, cache: Path) -> Path:
    """Return the path of a cached ``kind`` file of about ``megapixels``, making it if needed."""
    suffix, maker = KINDS[kind]
    width, height = size_for(megapixels)
    path = cache / f"{kind}_{width}x{height}.{suffix}"
    if not path.exists():
        if kind in ("heic",):
            import pillow_heif

            pillow_heif.register_heif_opener()
        cache.mkdir(parents=True, exist_ok=True)
        data = maker(photo((width, height)))
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
    return path
