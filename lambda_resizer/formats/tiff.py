"""TIFF: pages counted in one walk; striped, tiled and single-strip images decoded a band at a time."""

from __future__ import annotations

import contextlib
import io
import struct
import zlib
from collections.abc import Iterator

import numpy as np
from PIL import Image, ImageFile, TiffImagePlugin, TiffTags


def page_count(data: bytes) -> int:
    """Return the number of pages (IFDs) of a TIFF or BigTIFF file, walking the chain once.

    A loop or an offset past the end ends the walk; the first page was already read by Pillow.
    """
    order = "<" if data[:2] == b"II" else ">"
    if data[2:4] in (b"+\x00", b"\x00+"):  # BigTIFF: 8-byte counts and offsets, 20-byte entries
        count_format, next_format, entry_size, first = "Q", "Q", 20, 8
    else:
        count_format, next_format, entry_size, first = "H", "I", 12, 4
    count_size, next_size = struct.calcsize(count_format), struct.calcsize(next_format)
    (offset,) = struct.unpack_from(order + next_format, data, first)
    seen: set[int] = set()
    while offset and offset not in seen and offset + count_size <= len(data):
        seen.add(offset)
        (entries,) = struct.unpack_from(order + count_format, data, offset)
        link = offset + count_size + entries * entry_size
        if link + next_size > len(data):
            break
        (offset,) = struct.unpack_from(order + next_format, data, link)
    return max(1, len(seen))


# Tags that point at other structures in the original file (or are not needed to decode pixels):
# a band's file leaves them out. Orientation (274) too: it applies to the whole image, once (core).
_DROPPED_TAGS = {269, 270, 271, 272, 274, 285, 288, 289, 305, 306, 315, 316, 330, 513, 514, 700, 33432,
                 33723, 34377, 34665, 34675, 34853, 37724, 40965, 50706}  # fmt: skip
_OLD_JPEG = 6
_STRIP_OFFSETS, _ROWS_PER_STRIP, _STRIP_COUNTS = 273, 278, 279
_TILE_WIDTH, _TILE_LENGTH, _TILE_OFFSETS, _TILE_COUNTS = 322, 323, 324, 325
_BITS_PER_SAMPLE, _SAMPLES_PER_PIXEL, _ORIENTATION = 258, 277, 274
_COMPRESSION, _FILL_ORDER, _PLANAR, _PREDICTOR, _SAMPLE_FORMAT = 259, 266, 284, 317, 339
_DEFLATE = (8, 32946)  # Deflate, and Adobe's older code for the same
#: Pillow's raw modes of 8-bit contiguous samples the inflated rows are unpacked with (as its
#: libtiff decoder unpacks them), and the samples a pixel each takes.
_INFLATED_RAWMODES = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4, "RGBa": 4, "CMYK": 4}
#: Compressed bytes handed to zlib at a time, and inflated bytes taken from it at a time (then
#: copied into the band: a larger piece would be a second copy of the band).
_INFLATE_CHUNK = 1 << 20


def as_stored(im: Image.Image) -> int:
    """Make an opened TIFF decode its pixels as stored; return its EXIF orientation (1..8).

    Pillow 13 turns a TIFF's pixels by its Orientation tag as it loads them (a full-size copy,
    after which the tag is gone) and reports the turned size before that. The band decoders read
    stored strips and tiles, so for every route to give the same pixels the turn is taken away
    from Pillow here: the tag leaves the EXIF that Pillow's load reads it from, and the size is
    the stored one again. The core applies the orientation once, on the reduced image. The value
    is kept in ``info["original_orientation"]`` (where pillow-heif keeps the one libheif applied),
    so later calls return it too.

    :param im: an opened TIFF, not yet loaded (other images are left alone: 1).
    """
    if not isinstance(im, TiffImagePlugin.TiffImageFile):
        return 1
    kept = im.info.get("original_orientation")
    if isinstance(kept, int):
        return kept
    value = im.tag_v2.get(_ORIENTATION, 1)
    try:
        exif = im.getexif()  # cached: the Exif that Pillow's load_end reads the orientation from
        value = exif.get(_ORIENTATION, value)  # also an orientation given only in XMP
        exif.pop(_ORIENTATION, None)
    except Exception:  # unreadable EXIF must not cost us the picture; the tag itself still counts
        with contextlib.suppress(Exception):
            im.getexif().pop(_ORIENTATION, None)  # what was read before it failed (Pillow caches it)
    im.tag_v2.pop(_ORIENTATION, None)
    im._size = im._tile_size  # Pillow's stored size (_setup set the turned one)
    orientation = value if isinstance(value, int) and 1 <= value <= 8 else 1
    im.info["original_orientation"] = orientation
    return orientation


def band_unit(im: Image.Image) -> int | None:
    """Return the rows of one strip or row of tiles of an opened TIFF, or None when it is one piece.

    An uncompressed single strip is rows at known offsets, and a deflated one is inflated a few
    rows at a time: their unit is one row.
    """
    tags = getattr(im, "tag_v2", None)
    if tags is None or tags.get(259) == _OLD_JPEG:
        return None
    if _raw_strip(im) is not None or _deflate_strip(im) is not None:
        return 1
    height = im.size[1]
    unit = tags.get(_TILE_LENGTH) if _TILE_OFFSETS in tags else tags.get(_ROWS_PER_STRIP, height)
    return int(unit) if unit and 0 < int(unit) < height else None


def bands(im: Image.Image, data: bytes, rows: int) -> Iterator[Image.Image] | None:
    """Return an iterator over the image as bands of ``rows`` rows, top to bottom; None if not possible.

    A band is decoded from a small TIFF made of the first directory's tags with the band's height
    and only the band's strips (or tiles), copied compressed: every compression, predictor,
    photometric and sample layout Pillow and libtiff read works the same, and the full image is
    never in memory. ``rows`` must be a multiple of :func:`band_unit`.

    :param im: the opened TIFF (first page), not loaded.
    :param data: the file's bytes.
    :param rows: band height, a multiple of the strip or tile height.
    """
    unit = band_unit(im)
    if unit is None or rows % unit:
        return None
    raw = _raw_strip(im)
    if raw is not None:
        return _raw_bands(im, data, rows, *raw)
    deflated = _deflate_strip(im)
    if deflated is not None:
        return _inflated_bands(im, data, rows, deflated)
    if not isinstance(im, TiffImagePlugin.TiffImageFile):
        return None
    tags = im.tag_v2
    width, height = im.size
    tiled = _TILE_OFFSETS in tags
    offsets_tag, counts_tag = (_TILE_OFFSETS, _TILE_COUNTS) if tiled else (_STRIP_OFFSETS, _STRIP_COUNTS)
    offsets, counts = tuple(tags.get(offsets_tag, ())), tuple(tags.get(counts_tag, ()))
    across = -(-width // int(tags[_TILE_WIDTH])) if tiled else 1
    down = -(-height // unit)
    planes = int(tags.get(277, 1)) if tags.get(284) == 2 else 1
    if len(offsets) != across * down * planes or len(counts) != len(offsets):
        return None
    if any(o + c > len(data) for o, c in zip(offsets, counts, strict=True)):
        return None  # truncated: the whole-image decode names the problem
    kept = {tag: value for tag, value in tags.items() if tag not in _DROPPED_TAGS}

    def band_file(first: int, count: int, band_height: int) -> bytes:
        pieces = [
            plane * across * down + row * across + column
            for plane in range(planes)
            for row in range(first, first + count)
            for column in range(across)
        ]
        ifd = TiffImagePlugin.ImageFileDirectory_v2(prefix=b"II")
        for tag, value in kept.items():
            ifd[tag] = value
            ifd.tagtype[tag] = tags.tagtype[tag]
        ifd[257] = band_height
        ifd.tagtype[257] = TiffTags.LONG
        for tag in (offsets_tag, counts_tag):
            ifd[tag] = tuple(0 for _ in pieces)
            ifd.tagtype[tag] = TiffTags.LONG
        ifd[counts_tag] = tuple(counts[i] for i in pieces)
        # Pillow adds the end of the directory to StripOffsets itself (not to TileOffsets).
        start = 0 if offsets_tag == _STRIP_OFFSETS else 8 + len(ifd.tobytes(8))
        starts, position = [], start
        for i in pieces:
            starts.append(position)
            position += counts[i]
        ifd[offsets_tag] = tuple(starts)
        directory = ifd.tobytes(8)
        body = b"".join(data[offsets[i] : offsets[i] + counts[i]] for i in pieces)
        return b"II*\x00\x08\x00\x00\x00" + directory + body

    def generate() -> Iterator[Image.Image]:
        per_band = rows // unit
        for first in range(0, down, per_band):
            count = min(per_band, down - first)
            band_height = min(rows, height - first * unit)
            band = Image.open(io.BytesIO(band_file(first, count, band_height)), formats=("TIFF",))
            band.load()
            yield band

    return generate()


def raw_rows(im: Image.Image) -> bool:
    """Return whether the TIFF is one uncompressed strip, decoded as bands of rows (no band files)."""
    return _raw_strip(im) is not None


def inflated_rows(im: Image.Image) -> bool:
    """Return whether the TIFF is one deflated strip, inflated a band of rows at a time (no libtiff)."""
    return _deflate_strip(im) is not None


def _deflate_strip(im: Image.Image) -> tuple[str, int, bool] | None:
    """Return (Pillow's raw mode, samples a pixel, horizontal predictor) of a TIFF stored as one
    Deflate strip of 8-bit contiguous samples, else None.

    libtiff would inflate such a strip whole into a buffer of its own beside Pillow's image (7 bytes
    a pixel at the peak); its rows are instead inflated here a band at a time. Anything else
    (other compressions, 16-bit or float samples, planar files, the floating-point predictor, a
    reversed fill order, palettes) is left to libtiff. Rows are the stored ones (see :func:`as_stored`).
    """
    found = _single_strip(im, "libtiff")
    if found is None:
        return None
    tags, tile = found
    if tags.get(_COMPRESSION) not in _DEFLATE:
        return None
    if len(tuple(tags.get(_STRIP_OFFSETS, ()))) != 1 or len(tuple(tags.get(_STRIP_COUNTS, ()))) != 1:
        return None
    if tags.get(_PLANAR, 1) != 1 or tags.get(_FILL_ORDER, 1) != 1 or tags.get(_PREDICTOR, 1) not in (1, 2):
        return None
    samples = int(tags.get(_SAMPLES_PER_PIXEL, 1))
    bits = tuple(tags.get(_BITS_PER_SAMPLE, (1,)))
    if set(bits) != {8} or set(tuple(tags.get(_SAMPLE_FORMAT, (1,)))) != {1}:
        return None
    rawmode = tile.args[0] if isinstance(tile.args, tuple) and tile.args else None
    if not isinstance(rawmode, str) or _INFLATED_RAWMODES.get(rawmode) != samples:
        return None
    return rawmode, samples, tags.get(_PREDICTOR, 1) == 2


def _inflated_bands(
    im: Image.Image, data: bytes, rows: int, layout: tuple[str, int, bool]
) -> Iterator[Image.Image]:
    """Yield a one-strip Deflate TIFF as bands: the strip's bytes fed to zlib a chunk at a time,
    its output cut into ``rows`` rows, the predictor undone, each band unpacked as Pillow would.

    Data that does not inflate, whose checksum does not match what it inflated to, or that ends
    before the last row raises OSError saying so (the core rejects the file as corrupt).
    """
    rawmode, samples, predictor = layout
    width, height = im.size
    mode, stride = im.mode, width * samples
    tags = im.tag_v2  # type: ignore[attr-defined]  # a TiffImageFile (_deflate_strip)
    offset, count = int(tags[_STRIP_OFFSETS][0]), int(tags[_STRIP_COUNTS][0])
    strip = memoryview(data)[offset : offset + count]
    inflater = zlib.decompressobj()
    position, pending = 0, memoryview(b"")  # compressed bytes read so far; given to zlib, not yet used

    def inflate(limit: int, row: int) -> bytes | None:
        """Return up to ``limit`` more inflated bytes (at least one), or None at the end of the data."""
        nonlocal position, pending
        while True:
            if not pending:
                if position >= len(strip) or inflater.eof:
                    return None
                pending = strip[position : position + _INFLATE_CHUNK]
                position += len(pending)
            try:
                piece = inflater.decompress(pending, limit)
            except zlib.error as exc:
                raise OSError(f"the deflate strip is corrupt after row {row} of {height}: {exc}") from exc
            pending = memoryview(inflater.unconsumed_tail)
            if piece:
                return piece

    def generate() -> Iterator[Image.Image]:
        for top in range(0, height, rows):
            count_rows = min(rows, height - top)
            band = np.empty((count_rows, width, samples), np.uint8)
            out, filled = band.data.cast("B"), 0
            while filled < len(out):
                piece = inflate(min(len(out) - filled, _INFLATE_CHUNK), top + filled // stride)
                if piece is None:
                    raise OSError(f"the deflate strip ends at row {top + filled // stride} of {height}")
                out[filled : filled + len(piece)] = piece
                filled += len(piece)
            del out
            if top + count_rows == height:
                # What follows the last row is the stream's end and its Adler-32 checksum: zlib checks
                # it only when it reaches it, and corrupt data can inflate to the right length of
                # garbage. At most one chunk of surplus output is read; a stream without its end is
                # taken as it is, as libtiff takes it.
                inflate(_INFLATE_CHUNK, height)
            if predictor:  # horizontal differencing: each sample was stored as its change from the left
                np.cumsum(band, axis=1, dtype=np.uint8, out=band)  # wraps mod 256, as it was written
            image = Image.frombytes(mode, (width, count_rows), band, "raw", rawmode)
            del band
            yield image
            del image  # before the next band is inflated: the caller holds it if it still needs it

    return generate()


def _single_strip(
    im: Image.Image, codec: str
) -> tuple[TiffImagePlugin.ImageFileDirectory_v2, ImageFile._Tile] | None:
    """Return (tags, Pillow's one tile) of a TIFF Pillow reads with ``codec`` as one strip covering
    the whole image (no tiles), else None: the shape both single-strip band routes start from."""
    if not isinstance(im, TiffImagePlugin.TiffImageFile) or len(im.tile) != 1:
        return None
    tags, tile = im.tag_v2, im.tile[0]
    if tile.codec_name != codec or _TILE_OFFSETS in tags:
        return None
    width, height = im.size
    if tile.extents != (0, 0, width, height) or int(tags.get(_ROWS_PER_STRIP, height)) < height:
        return None
    return tags, tile


def _raw_strip(im: Image.Image) -> tuple[ImageFile._Tile, int] | None:
    """Return (Pillow's raw tile, bytes per row) of an uncompressed TIFF stored as one strip, else None.

    Pillow reads such a file with its raw decoder as one tile covering the image (Pillow's own
    writer makes these). Planar files (one strip per sample) are left to the whole decode. The
    rows are the stored ones: see :func:`as_stored` for the EXIF orientation.
    """
    found = _single_strip(im, "raw")
    if found is None:
        return None
    tags, tile = found
    width, height = im.size
    if not isinstance(tile.args, tuple) or len(tile.args) != 3 or tile.args[1:] != (0, 1):
        return None  # (rawmode, stride 0: packed rows, top to bottom)
    bits = tuple(tags.get(_BITS_PER_SAMPLE, (1,)))
    samples = int(tags.get(_SAMPLES_PER_PIXEL, len(bits)))
    bits = bits * samples if len(bits) == 1 else bits
    stride = (width * sum(bits) + 7) // 8
    if tuple(tags.get(_STRIP_COUNTS, ())) != (stride * height,):
        return None  # not the packed rows the tags describe: the whole decode judges the file
    return tile, stride


def _raw_bands(
    im: Image.Image, data: bytes, rows: int, tile: ImageFile._Tile, stride: int
) -> Iterator[Image.Image] | None:
    """Yield an uncompressed single-strip TIFF as bands, each read by Pillow's raw decoder from its
    rows' offset (the header parsed again, the tile narrowed to the band): no copy of the strip."""
    width, height = im.size
    if tile.offset + stride * height > len(data):
        return None  # truncated: the whole-image decode names the problem

    def generate() -> Iterator[Image.Image]:
        for top in range(0, height, rows):
            count = min(rows, height - top)
            band = Image.open(io.BytesIO(data), formats=("TIFF",))
            as_stored(band)  # the whole file's header again: Pillow would turn the band by its tag
            band._size = band._tile_size = (width, count)  # type: ignore[attr-defined]
            band.tile = [ImageFile._Tile("raw", (0, 0, width, count), tile.offset + top * stride, tile.args)]
            band.load()
            yield band

    return generate()
