"""Generated test pictures."""

from __future__ import annotations

import io
import random

from PIL import Image, ImageDraw


def photo_like(seed: int, size: tuple[int, int] = (640, 480)) -> Image.Image:
    """Return a random picture with shapes and gradients (something a resizer and a hash can tell apart)."""
    rng = random.Random(seed)
    image = Image.linear_gradient("L").resize(size).convert("RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(12):
        x0, y0 = rng.randrange(size[0]), rng.randrange(size[1])
        x1, y1 = x0 + rng.randrange(20, size[0] // 2), y0 + rng.randrange(20, size[1] // 2)
        colour = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)((x0, y0, x1, y1), fill=colour)
    return image


def encode(image: Image.Image, fmt: str = "JPEG", **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def tiled_tiff(image: Image.Image, tile: int = 256, *, deflate: bool = True, orientation: int = 1) -> bytes:
    """Return ``image`` (RGB) as a tiled TIFF, tiles deflated: Pillow writes only striped TIFFs.

    ``orientation`` other than 1 is written as the EXIF Orientation tag (274), pixels as given.
    """
    import struct
    import zlib

    width, height = image.size
    across, down = -(-width // tile), -(-height // tile)
    padded = Image.new("RGB", (across * tile, down * tile))
    padded.paste(image.convert("RGB"))
    tiles = []
    for row in range(down):
        for column in range(across):
            raw = padded.crop((column * tile, row * tile, (column + 1) * tile, (row + 1) * tile)).tobytes()
            tiles.append(zlib.compress(raw, 6) if deflate else raw)
    turned = [(274, 3, 1, orientation)] if orientation != 1 else []
    entries = [
        (256, 4, 1, width), (257, 4, 1, height), (258, 3, 3, None), (259, 3, 1, 8 if deflate else 1),
        (262, 3, 1, 2), *turned, (277, 3, 1, 3), (284, 3, 1, 1), (322, 3, 1, tile), (323, 3, 1, tile),
        (324, 4, len(tiles), None), (325, 4, len(tiles), None),
    ]  # fmt: skip
    ifd_size = 2 + 12 * len(entries) + 4
    extra = 8 + ifd_size
    bits_at, offsets_at = extra, extra + 6
    counts_at = offsets_at + 4 * len(tiles)
    data_at = counts_at + 4 * len(tiles)
    offsets, position = [], data_at
    for blob in tiles:
        offsets.append(position)
        position += len(blob)
    out = bytearray(b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", len(entries)))
    for tag, kind, count, value in entries:
        if value is None:
            value = {258: bits_at, 324: offsets_at, 325: counts_at}[tag]
        out += struct.pack("<HHII", tag, kind, count, value)
    out += struct.pack("<I", 0)
    out += struct.pack("<HHH", 8, 8, 8)
    out += struct.pack(f"<{len(tiles)}I", *offsets) + struct.pack(f"<{len(tiles)}I", *map(len, tiles))
    return bytes(out) + b"".join(tiles)


def without_restart_marker(data: bytes, index: int = 5) -> bytes:
    """Return a JPEG with the ``index``-th restart marker of its first scan removed (a lost marker:
    libjpeg resynchronises; our progressive decoders leave such a file to it)."""
    sos = data.index(b"\xff\xda")
    start = sos + 2 + int.from_bytes(data[sos + 2 : sos + 4], "big")
    markers = [i for i in range(start, len(data) - 1) if data[i] == 0xFF and 0xD0 <= data[i + 1] <= 0xD7]
    return data[: markers[index]] + data[markers[index] + 2 :]
