"""AVIF: the frame libavif decodes handed on a band at a time, its decoder released first.

Pillow's plugin converts libavif's YUV to RGB, copies that into a bytes object and then into a
Pillow image, while the decoder still holds the YUV planes and dav1d's pictures. Here a decoder of
our own (the one Pillow's plugin makes, same settings) returns the RGB bytes and is dropped, and
the bytes are cut into bands: the peak is libavif's conversion (YUV + its RGB + the bytes copy).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from PIL import AvifImagePlugin, Image

from . import buffer_bands


def bands(im: Image.Image, data: bytes, rows: int) -> Iterator[Image.Image] | None:
    """Return the first frame as bands of ``rows`` rows, top to bottom; None if not possible.

    :param im: the opened AVIF (Pillow's plugin), not loaded.
    :param data: the file's bytes.
    :param rows: band height.
    """
    if not isinstance(im, AvifImagePlugin.AvifImageFile) or im.mode not in ("RGB", "RGBA"):
        return None
    make = getattr(getattr(AvifImagePlugin, "_avif", None), "AvifDecoder", None)
    if make is None:
        return None
    decoder = make(data, AvifImagePlugin.DECODE_CODEC_CHOICE, AvifImagePlugin._get_default_max_threads())
    if decoder.get_info()[:3] != (im.size, im.n_frames, im.mode):
        return None

    def decode() -> tuple[Any, int]:
        nonlocal decoder
        pixels = decoder.get_frame(0)[0]
        decoder = None  # frees the YUV planes and dav1d's pictures before the bands are made
        return pixels, im.size[0] * len(im.mode)

    return buffer_bands(decode, im.mode, im.size, rows)
