"""PNG: non-interlaced images decoded a band of rows at a time, behind which memory is released.

A PNG is one zlib stream over all rows, and each row's filter refers to the row above, so Pillow
decodes it in one go into a full-size image. Here the stream is inflated a band at a time (by
ISA-L, about twice as fast as the zlib Pillow uses) and handed to Pillow's own PNG decoder
(unfiltering, every bit depth and colour type) as *stored* deflate blocks, so exactly the rows
fed come out. The decoder writes into an anonymous memory map viewed as the image; once a band
has been converted and reduced, its pages are given back to the kernel (``MADV_DONTNEED``).
Interlaced and animated files, and modes Pillow cannot write into mapped memory, return None:
they are decoded whole.
"""

from __future__ import annotations

import mmap
import struct
from collections.abc import Iterator

from PIL import Image, ImageFile

try:  # ISA-L's inflate reads the same streams about twice as fast as zlib's
    from isal import isal_zlib as zlib
except ImportError:  # pragma: no cover - isal is a dependency; stdlib zlib is the fallback
    import zlib  # type: ignore[no-redef]

try:  # libspng: SIMD unfiltering, about twice as fast as Pillow's decoder; whole images only
    import pyspng
except ImportError:  # pragma: no cover - pyspng is a dependency; the band decoder is the fallback
    pyspng = None

#: Whether inflating here is faster than Pillow's own (zlib) decode: then every PNG is banded.
FAST_INFLATE = zlib.__name__ != "zlib"
#: Raw modes libspng decodes exactly as Pillow does (palettes expanded to RGB); its 16-bit, grey +
#: alpha and 1-bit output differ, and colour keys (tRNS) are left to Pillow.
_SPNG_RAWMODES = {"RGB", "RGBA", "L", "L;2", "L;4", "P", "P;1", "P;2", "P;4"}

#: Pillow mode of the decoded file -> (mode of the mapped image, how a band is handed on).
MAPPED = {"L": "L", "P": "P", "RGB": "RGBX", "RGBA": "RGBA", "I;16": "I;16"}
_STORED_BLOCK = 65535
_PAGE = mmap.PAGESIZE


def chunks(data: bytes, start: int = 8) -> Iterator[tuple[bytes, int, int]]:
    """Yield (type, data offset, data length) of each chunk from ``start`` (a chunk header)."""
    position = start
    while position + 8 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, position)
        yield kind, position + 8, length
        if kind == b"IEND":
            return
        position += 12 + length


def metadata_after_pixels(data: bytes) -> bool:
    """Return whether EXIF, XMP or text chunks follow the image data (Pillow reads them only by decoding)."""
    seen_pixels = False
    for kind, _, _ in chunks(data):
        seen_pixels = seen_pixels or kind == b"IDAT"
        if seen_pixels and kind in (b"eXIf", b"tEXt", b"zTXt", b"iTXt"):
            return True
    return False


def bands(im: Image.Image, data: bytes, rows: int) -> Iterator[Image.Image] | None:
    """Return an iterator over the image as bands of ``rows`` rows, top to bottom; None if not possible.

    :param im: the opened PNG, not loaded.
    :param data: the file's bytes.
    :param rows: band height (the last band may be shorter).
    :return: bands that view the map: each is valid until the next one is asked for.
    """
    if not isinstance(im, ImageFile.ImageFile) or len(im.tile) != 1:
        return None
    if getattr(im, "n_frames", 1) != 1 or im.info.get("interlace"):
        return None
    tile = im.tile[0]
    rawmode = tile.args if isinstance(tile.args, str) else None
    mapped = MAPPED.get(im.mode)
    if rawmode is None or mapped is None or tile.extents != (0, 0, *im.size):
        return None
    width, height = im.size
    try:
        decoder = Image._getdecoder(mapped, "zip", rawmode)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    pixel = {"L": 1, "P": 1, "I;16": 2}.get(mapped, 4)
    stride = width * pixel
    row_bytes = (decoder_bits(rawmode, width) + 7) // 8 + 1  # with its filter byte

    def generate() -> Iterator[Image.Image]:
        memory = mmap.mmap(-1, stride * height)
        view = memoryview(memory)
        # Pillow's hints name bytes; any buffer works, and this one is shared, not copied.
        target = Image.frombuffer(mapped, (width, height), memory, "raw", mapped, 0, 1)  # type: ignore[arg-type]
        decoder.setimage(target.im, (0, 0, width, height))
        inflater = zlib.decompressobj()
        pending = b""
        idat = _idat_data(data, tile.offset - 8)
        first = True
        released = 0
        try:
            for top in range(0, height, rows):
                count = min(rows, height - top)
                wanted = count * row_bytes
                raw = [pending]
                have = len(pending)
                while have < wanted:
                    # Input left over from the last call, else the next IDAT, else nothing: the
                    # inflater may still hold output when its input is used up.
                    chunk = inflater.unconsumed_tail or next(idat, b"")
                    out = inflater.decompress(chunk, wanted - have)
                    if not out and not chunk:
                        break
                    raw.append(out)
                    have += len(out)
                joined = b"".join(raw)
                if len(joined) < wanted:
                    raise EOFError(
                        f"PNG image data ends after {top + len(joined) // row_bytes} of {height} rows"
                    )
                pending = joined[wanted:]
                _feed(decoder, joined[:wanted], header=first, last=top + count >= height)
                first = False
                rows_view = view[top * stride : (top + count) * stride]
                band = Image.frombuffer(mapped, (width, count), rows_view, "raw", mapped, 0, 1)  # type: ignore[arg-type]
                if mapped == "RGBX":
                    band = band.convert("RGB")
                elif mapped == "P":
                    band = band.copy()
                    if im.palette:
                        band.putpalette(im.palette.copy())
                band.info = dict(im.info)
                yield band
                end = (top + count) * stride // _PAGE * _PAGE
                if end > released:
                    memory.madvise(mmap.MADV_DONTNEED, released, end - released)
                    released = end
        finally:
            decoder.cleanup()  # the map itself goes with the last image viewing it

    return generate()


def spng_usable(mode: str, rawmode: object, *, keyed: bool, frames: int) -> bool:
    """Return whether libspng decodes this PNG to the pixels Pillow would (see ``_SPNG_RAWMODES``)."""
    return pyspng is not None and rawmode in _SPNG_RAWMODES and not keyed and frames == 1


def whole_bands(im: Image.Image, data: bytes, rows: int) -> Iterator[Image.Image] | None:
    """Return the image decoded whole by libspng (RGB for palettes), as bands of ``rows`` rows; or None.

    Faster than :func:`bands` and Pillow, at the cost of the whole image as 8-bit samples (3 bytes
    a pixel for RGB, one below Pillow's 4): used for images of moderate size.
    """
    tile = im.tile[0] if isinstance(im, ImageFile.ImageFile) and len(im.tile) == 1 else None
    frames = int(getattr(im, "n_frames", 1))
    if tile is None or not spng_usable(im.mode, tile.args, keyed="transparency" in im.info, frames=frames):
        return None
    array = pyspng.load(data)
    if array.shape[:2] != (im.size[1], im.size[0]) or array.dtype.itemsize != 1:
        return None
    mode = "L" if array.ndim == 2 else {3: "RGB", 4: "RGBA"}.get(array.shape[2])
    if mode is None:
        return None

    def generate() -> Iterator[Image.Image]:
        for top in range(0, array.shape[0], rows):
            band = Image.fromarray(array[top : top + rows], mode)
            band.info = dict(im.info)
            yield band

    return generate()


def decoder_bits(rawmode: str, width: int) -> int:
    """Return the bits of one row of a PNG in Pillow's ``rawmode`` (for the row length)."""
    bits = {"1": 1, "L;2": 2, "L;4": 4, "P;1": 1, "P;2": 2, "P;4": 4, "L": 8, "P": 8, "LA": 16,
            "RGB": 24, "RGBA": 32, "I;16B": 16, "LA;16B": 32, "RGB;16B": 48, "RGBA;16B": 64}  # fmt: skip
    if rawmode not in bits:
        raise ValueError(f"unknown PNG raw mode {rawmode}")
    return bits[rawmode] * width


def _idat_data(data: bytes, start: int) -> Iterator[bytes]:
    """Yield the data of the consecutive IDAT chunks from the one whose header is at ``start``."""
    for kind, offset, length in chunks(data, start):
        if kind != b"IDAT":
            return
        yield data[offset : offset + length]


def _feed(decoder: object, raw: bytes, *, header: bool, last: bool) -> None:
    """Hand ``raw`` (whole filtered rows) to Pillow's zip decoder as stored deflate blocks."""
    pieces = [b"\x78\x01"] if header else []
    for start in range(0, len(raw), _STORED_BLOCK):
        block = raw[start : start + _STORED_BLOCK]
        pieces.append(struct.pack("<BHH", 0, len(block), 0xFFFF ^ len(block)))
        pieces.append(block)
    consumed, error = decoder.decode(b"".join(pieces))  # type: ignore[attr-defined]
    if error < 0:
        raise OSError(f"PNG decoder error {error}")
    if consumed < 0 and not last:
        raise OSError("PNG decoder stopped before the last row")
