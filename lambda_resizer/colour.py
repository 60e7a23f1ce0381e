"""Colour: 8-bit sRGB out of every mode, bit depth and embedded ICC profile; alpha onto white."""

from __future__ import annotations

import io
from functools import lru_cache

import numpy as np
from PIL import Image, ImageCms

WHITE = (255, 255, 255)
_SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
# 512 colours spanning the RGB cube, to recognise profiles that are sRGB in all but name.
_PROBE = Image.frombytes(
    "RGB",
    (512, 1),
    bytes(c for r in range(8) for g in range(8) for b in range(8) for c in (r * 36, g * 36, b * 36)),
)


def to_working(im: Image.Image, icc: bytes | None, source_mode: str) -> Image.Image:
    """Return the image as 8-bit sRGB in the mode variants are made in: YCbCr, or RGBA with alpha.

    :param im: small image in YCbCr, L, LA, RGBA, CMYK, I or F mode.
    :param icc: the source's embedded ICC profile, if any.
    :param source_mode: the mode the source decodes as (its bit depth decides 16-bit scaling).
    :return: a new image with empty ``info``, so variants carry no EXIF, XMP or ICC. The pixels
        are sRGB, which is what viewers assume for untagged images: no profile is needed.
    """
    alpha = None
    if im.mode in ("LA", "RGBA"):
        alpha = im.getchannel("A")
        if alpha.getextrema()[0] == 255:
            alpha = None
        im = im.convert(im.mode[:-1])
    if im.mode in ("I", "F"):
        im = to_8bit(im, source_mode)
    transform = _srgb_transform(icc, "RGB" if im.mode == "YCbCr" else im.mode) if icc else None
    if transform is not None:
        converted = ImageCms.applyTransform(im.convert("RGB") if im.mode == "YCbCr" else im, transform)
        assert converted is not None  # None only for inPlace=True
        im = converted
    if alpha is not None:
        im = im.convert("RGB")
        im.putalpha(alpha)
    elif im.mode != "YCbCr":
        im = im.convert("YCbCr")
    im.info = {}  # resize and convert copy info: clearing it here keeps metadata out of every variant
    return im


def to_8bit(im: Image.Image, source_mode: str) -> Image.Image:
    """Return an ``L`` image from a 32-bit integer or float image.

    16-bit sources are scaled by their declared depth (65535 -> 255), so a dark image stays dark.
    32-bit integers and floats declare no range, so it is read from the pixels with the brightest
    0.1% ignored (a few hot pixels do not change the whole image): floats are 0..1 unless more
    pixels are above 1 (then 0..255), 32-bit integers 16-bit data when more are above 255. NaN
    and infinities are black.
    """
    pixels = np.nan_to_num(np.asarray(im, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    if source_mode.startswith("I;16"):
        return _grey(pixels / 257.0)
    top = float(np.percentile(pixels, 99.9)) if pixels.size else 0.0
    if im.mode == "F" and top <= 1.0:
        pixels = pixels * 255.0
    elif im.mode == "I" and top > 255.0:
        pixels = pixels / 257.0
    return _grey(pixels)


def _grey(pixels: np.ndarray) -> Image.Image:
    """Return 8-bit grey from pixel values on a 0..255 scale (rounded, clipped)."""
    return Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8), "L")


@lru_cache(maxsize=16)
def _srgb_transform(icc: bytes, mode: str) -> ImageCms.ImageCmsTransform | None:
    """Return a transform from the embedded profile to sRGB, or None when none is needed or possible."""
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        # No 1-pixel cache: the transform is shared (lru_cache) and may be applied from threads.
        transform = ImageCms.buildTransform(profile, _SRGB, mode, "RGB", flags=ImageCms.Flags.NOCACHE)
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return None  # a broken or mismatched profile: the pixels are still usable as they are
    if mode == "RGB":
        probe = np.asarray(ImageCms.applyTransform(_PROBE, transform), dtype=np.int16)
        if np.abs(probe - np.asarray(_PROBE, dtype=np.int16)).max() <= 1:
            return None  # already sRGB (e.g. "sRGB IEC61966-2.1"): skipping it is exact and cheaper
    return transform


def flatten(im: Image.Image) -> Image.Image:
    """Return an LA or RGBA image composited onto white, as L or RGB; other images unchanged."""
    if im.mode not in ("LA", "RGBA"):
        return im
    white = Image.new(im.mode[:-1], im.size, WHITE[: len(im.mode) - 1])
    white.paste(im, mask=im)  # Pillow masks with the alpha band of an LA/RGBA mask
    return white


def to_rgb(im: Image.Image) -> Image.Image:
    """Return an RGB image: RGBA is composited onto white, YCbCr converted."""
    return flatten(im) if im.mode == "RGBA" else im.convert("RGB")
