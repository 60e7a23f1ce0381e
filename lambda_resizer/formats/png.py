"""PNG: non-interlaced images decoded a band of rows at a time, behind which memory is released.

A PNG is one zlib stream over all rows, and each row's filter refers to the row above, so Pillow
decodes it in one go into a full-size image. Here the stream is inflated a band at a time (by
ISA-L, about twice as fast as the zlib Pillow uses) and handed to Pillow's own PNG decoder
(unfiltering, every bit depth and colour type) as *stored* deflate blocks, so exactly the rows
fed come out. The decoder writes into an anonymous memory map viewed as the image; once a band
has been converted and reduced, its pages are given back to the kernel (``MADV_DONTNEED``).
Interlaced and animated files, and modes Pillow cannot write into mapped memory, return None:
they are decoded whole. 8-bit grey, RGB and RGBA files skip Pillow's (scalar) unfiltering: each
band goes to libspng as a small PNG of its own (`spng_bands`), twice as fast with the same pixels.
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

#: Pillow mode -> (PNG colour type, bytes a pixel) of the 8-bit files libspng decodes a band at a time.
_SPNG_BAND_TYPES = {"L": (0, 1), "RGB": (2, 3), "RGBA": (6, 4)}
_SIGNATURE = b"\x89PNG\r\n\x1a\n"

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
        released = 0
        try:
            for top, count, raw in _inflated_rows(data, tile.offset, row_bytes, height, rows):
                _feed(decoder, raw, header=top == 0, last=top + count >= height)
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


def spng_bands(im: Image.Image, data: bytes, rows: int) -> Iterator[Image.Image] | None:
    """Return an iterator over an 8-bit grey, RGB or RGBA PNG as bands of ``rows`` rows, by libspng.

    Each band's rows, inflated by ISA-L, go to libspng as a small PNG of their own (stored deflate
    blocks), led by the row above them unfiltered (filter type None): its rows' Up, Average and
    Paeth filters then refer to the right pixels, and libspng's SIMD unfiltering (about twice
    Pillow's speed) gives exactly Pillow's pixels, with only a band in memory. None where it does
    not apply (other depths and colour types, colour keys, interlaced or animated files).
    """
    if not isinstance(im, ImageFile.ImageFile) or len(im.tile) != 1:
        return None
    tile = im.tile[0]
    if pyspng is None or im.mode not in _SPNG_BAND_TYPES or tile.args != im.mode:
        return None
    if "transparency" in im.info or getattr(im, "n_frames", 1) != 1 or im.info.get("interlace"):
        return None
    if tile.extents != (0, 0, *im.size):
        return None
    width, height = im.size
    colour_type, pixel = _SPNG_BAND_TYPES[im.mode]
    row_bytes = width * pixel + 1  # with its filter byte

    def generate() -> Iterator[Image.Image]:
        above = b""
        for top, count, raw in _inflated_rows(data, tile.offset, row_bytes, height, rows):
            lead = b"\x00" + above if above else b""
            header = struct.pack(">IIBBBBB", width, count + bool(above), 8, colour_type, 0, 0, 0)
            try:
                array = pyspng.load(_png_of(header, lead, raw))
            except RuntimeError as exc:  # libspng's errors: a bad filter type, say
                raise OSError(f"PNG rows {top}-{top + count - 1} cannot be decoded: {exc}") from exc
            band = Image.fromarray(array[1:] if above else array, im.mode)
            above = array[-1].tobytes()
            del array  # Pillow has its copy: not held while the band is used, nor the next decoded
            band.info = dict(im.info)
            yield band
            del band

    return generate()


def _inflated_rows(
    data: bytes, offset: int, row_bytes: int, height: int, rows: int
) -> Iterator[tuple[int, int, memoryview]]:
    """Yield (top, count, filtered rows) of the image data from the IDAT chunk at ``offset``, by ``rows``."""
    inflater = zlib.decompressobj()
    pending = b""
    idat = _idat_data(data, offset - 8)
    for top in range(0, height, rows):
        count = min(rows, height - top)
        wanted = count * row_bytes
        raw = [pending]
        have = len(pending)
        while have < wanted:
            # Input left over from the last call, else the next IDAT, else nothing: the inflater
            # may still hold output when its input is used up.
            chunk = inflater.unconsumed_tail or next(idat, b"")
            out = inflater.decompress(chunk, wanted - have)
            if not out and not chunk:
                break
            raw.append(out)
            have += len(out)
        pieces = [piece for piece in raw if piece]
        joined = pieces[0] if len(pieces) == 1 else b"".join(pieces)  # most bands: one piece, no copy
        if len(joined) < wanted:
            raise EOFError(f"PNG image data ends after {top + len(joined) // row_bytes} of {height} rows")
        pending = joined[wanted:]
        yield top, count, memoryview(joined)[:wanted]
        del joined, pieces, raw  # not held while the next band is inflated


def _png_of(header: bytes, lead: bytes, raw: memoryview) -> bytes:
    """Return a PNG of IHDR ``header`` whose image data is ``lead`` then ``raw``, as stored deflate blocks.

    Built in one join, so the rows are copied once.
    """
    blocks: list[bytes | memoryview] = [b"\x78\x01", *_stored_blocks(lead), *_stored_blocks(raw, final=True)]
    adler = zlib.adler32(raw, zlib.adler32(lead))
    blocks.append(struct.pack(">I", adler))
    crc = zlib.crc32(b"IDAT")
    for piece in blocks:
        crc = zlib.crc32(piece, crc)
    length = sum(len(piece) for piece in blocks)
    head = [_SIGNATURE, _chunk(b"IHDR", header), struct.pack(">I4s", length, b"IDAT")]
    return b"".join([*head, *blocks, struct.pack(">I", crc), _chunk(b"IEND", b"")])


def _stored_blocks(raw: bytes | memoryview, *, final: bool = False) -> list[bytes | memoryview]:
    """Return ``raw`` as stored deflate blocks (headers and views of the bytes); ``final`` ends the stream."""
    view = memoryview(raw)
    blocks: list[bytes | memoryview] = []
    for start in range(0, len(view), _STORED_BLOCK):
        block = view[start : start + _STORED_BLOCK]
        last = final and start + _STORED_BLOCK >= len(view)
        blocks += [struct.pack("<BHH", last, len(block), 0xFFFF ^ len(block)), block]
    return blocks


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(body, zlib.crc32(kind)))


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


def _feed(decoder: object, raw: bytes | memoryview, *, header: bool, last: bool) -> None:
    """Hand ``raw`` (whole filtered rows) to Pillow's zip decoder as stored deflate blocks."""
    pieces: list[bytes | memoryview] = [b"\x78\x01"] if header else []
    pieces += _stored_blocks(raw)
    consumed, error = decoder.decode(b"".join(pieces))  # type: ignore[attr-defined]
    if error < 0:
        raise OSError(f"PNG decoder error {error}")
    if consumed < 0 and not last:
        raise OSError("PNG decoder stopped before the last row")
