"""BMP: uncompressed bitmaps decoded a band of rows at a time (their rows are at known offsets)."""

from __future__ import annotations

import io
from collections.abc import Iterator

from PIL import Image, ImageFile


def bands(im: Image.Image, data: bytes, rows: int) -> Iterator[Image.Image] | None:
    """Return an iterator over the image as bands of ``rows`` rows, top to bottom; None if not possible.

    Each band is a fresh parse of the header with its tile narrowed to the band's rows (Pillow's
    raw decoder reads them from their offset; bottom-up files store the last row first). RLE
    bitmaps have no row offsets and are decoded whole.

    :param im: the opened BMP, not loaded.
    :param data: the file's bytes.
    :param rows: band height (the last band may be shorter).
    """
    if not isinstance(im, ImageFile.ImageFile) or len(im.tile) != 1 or im.tile[0].codec_name != "raw":
        return None
    tile = im.tile[0]
    if not isinstance(tile.args, tuple) or len(tile.args) != 3:  # (rawmode, stride, direction)
        return None
    _, stride, direction = tile.args
    width, height = im.size
    if tile.extents != (0, 0, width, height) or direction not in (1, -1) or not isinstance(stride, int):
        return None
    if stride <= 0:
        return None
    if tile.offset + stride * height > len(data):
        return None  # truncated: the whole-image decode names the problem

    def generate() -> Iterator[Image.Image]:
        for top in range(0, height, rows):
            count = min(rows, height - top)
            first = top if direction == 1 else height - top - count  # in file order
            band = Image.open(io.BytesIO(data), formats=("BMP",))
            band._size = (width, count)
            band.tile = [
                ImageFile._Tile("raw", (0, 0, width, count), tile.offset + first * stride, tile.args)
            ]
            band.load()
            yield band

    return generate()
