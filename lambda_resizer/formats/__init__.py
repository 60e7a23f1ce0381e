"""Shrink-on-load decoding, one module per source format (as Pillow has one plugin per format)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from PIL import Image


def buffer_bands(
    decode: Callable[[], tuple[Any, int]], mode: str, size: tuple[int, int], rows: int
) -> Iterator[Image.Image]:
    """Yield a frame a library decoded into one buffer of packed rows as bands of ``rows`` rows.

    Each band is copied out of the buffer (``Image.frombuffer`` of the band's rows), so Pillow never
    holds a full-size copy beside the library's; the buffer is released after the last band.

    :param decode: returns (the decoded pixels: any buffer, bytes per row); called on the first band.
    :param mode: the buffer's mode, which is also Pillow's rawmode for it (RGB, RGBA, L).
    :param size: the frame's size.
    :param rows: band height (the last band may be shorter).
    """
    pixels, stride = decode()
    view = memoryview(pixels).cast("B")
    width, height = size
    if stride < width * len(mode) or len(view) < stride * (height - 1) + width * len(mode):
        raise OSError(f"decoded buffer of {len(view)} bytes is short for {width}x{height} {mode}")
    for top in range(0, height, rows):
        count = min(rows, height - top)
        rows_view = view[top * stride : (top + count) * stride]
        # Pillow's hints name bytes; any buffer works (as in formats/webp.py).
        band = Image.frombuffer(mode, (width, count), rows_view, "raw", mode, stride, 1)  # type: ignore[arg-type]
        yield band.copy() if band.readonly else band  # not a view into the buffer that is released
    del view, pixels
