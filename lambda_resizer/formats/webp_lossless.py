"""Lossless WebP stills decoded a band of rows at a time, without libwebp's whole-image ARGB plane.

libwebp decodes a lossless (VP8L) image into one 32-bit plane of the whole image before its
transforms or its scaler see a row, because a backward reference may copy from any earlier pixel
(24 MP: 96 MB, a 100 MP file 400 MB). The format bounds how far back a copy reaches (about 2^20
pixels), so ``webp_lossless_rows.c`` keeps the coded pixels in a ring of 2^20 (4 MB) and hands out
each row inverse-transformed as soon as it is complete; the bands are then box-reduced as PNG's
and TIFF's are. The pixels are libwebp's exactly (the C is a transcription of its decoder:
``tests/lambda_resizer/formats/test_webp_lossless.py``).

Stills only (a ``VP8L`` chunk, alone or after ``VP8X`` and metadata chunks): animations and lossy
files keep libwebp. The C object is built by ``make setup`` and into the Lambda package by the CDK
app (:mod:`native_build`); without it libwebp decodes these files, and :func:`available` says so.
"""

from __future__ import annotations

import ctypes
import io
import logging
import struct
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, WebPImagePlugin

from . import release_free_memory

log = logging.getLogger(__name__)

LIBRARY = Path(__file__).with_name("_webp_lossless_rows.so")
#: The decoder's ring of coded pixels (RING_BITS in the C): a backward reference reaches 2^20 back.
RING_PIXELS = 1 << 20
#: The C decoder's results.
_OK, _BITSTREAM, _TRUNCATED, _NOMEM, _TOO_MANY_TABLES = 0, 1, 2, 3, 4
_REASONS = {
    _BITSTREAM: "its lossless bitstream is invalid",
    _TRUNCATED: "image file is truncated: its lossless bitstream ends early",
    _NOMEM: "out of memory",
    _TOO_MANY_TABLES: "its lossless bitstream asks for over 192 MB of Huffman tables (libwebp: under 60)",
}


@cache
def _library() -> ctypes.CDLL | None:
    if not LIBRARY.exists():
        log.warning("lossless WebPs are decoded whole by libwebp: %s is not built", LIBRARY.name)
        return None
    lib = ctypes.CDLL(str(LIBRARY))
    lib.vp8l_open.restype = ctypes.c_void_p
    lib.vp8l_open.argtypes = [ctypes.c_void_p, ctypes.c_int64, ctypes.POINTER(ctypes.c_int32)]
    lib.vp8l_read_rows.restype = ctypes.c_int
    lib.vp8l_read_rows.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int32, ctypes.c_int32]
    lib.vp8l_close.restype = None
    lib.vp8l_close.argtypes = [ctypes.c_void_p]
    return lib


def available() -> bool:
    """Return whether this route can run (its C object is built and loads)."""
    return _library() is not None


def _chunks(data: bytes | memoryview) -> Iterator[tuple[bytes, int, int]]:
    """Yield a WebP file's RIFF chunks: (fourcc, payload offset, payload length, cut to the file)."""
    if len(data) < 20 or data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        return
    position = 12
    while position + 8 <= len(data):
        kind = bytes(data[position : position + 4])
        (length,) = struct.unpack_from("<I", data, position + 4)
        yield kind, position + 8, min(length, len(data) - position - 8)
        position += 8 + length + (length & 1)


def vp8l_chunk(data: bytes | memoryview) -> tuple[int, int] | None:
    """Return (offset, length) of a lossless still's VP8L bitstream, or None (lossy, animated, not WebP)."""
    for kind, offset, length in _chunks(data):
        if kind == b"VP8L":
            return offset, length
        if kind in (b"VP8 ", b"ALPH", b"ANIM", b"ANMF"):
            return None
        if kind == b"VP8X" and length >= 1 and data[offset] & 0x02:  # the animation flag
            return None
    return None


class LosslessStill(ImageFile.ImageFile):
    """A lossless still WebP opened from its chunks alone, with the facts Pillow's plugin gives.

    Pillow's plugin reads the whole file into a bytes copy and hands it to libwebp's demuxer, which
    copies it again: two copies of the file at open, the largest part of the peak (24 MP, 16.6 MB
    file: 34 MB). This reads the RIFF chunks in place. Its pixels come from :func:`bands`; loaded
    whole (``load``, where nothing is reduced), from the same decoder.
    """

    format = "WEBP"
    format_description = "WebP image (lossless still)"
    n_frames = 1
    is_animated = False

    def __init__(self, data: bytes) -> None:
        self._data = data  # read in place by _open (which Pillow's constructor calls) and the decoder
        super().__init__(io.BytesIO(data[:30]))

    def _open(self) -> None:
        alpha, canvas, size, flags = False, None, None, 0
        view = memoryview(self._data)  # slicing the bytes would copy the image's chunk
        for index, (kind, offset, length) in enumerate(_chunks(view)):
            body = (
                view[offset : offset + min(length, 16)] if kind == b"VP8L" else view[offset : offset + length]
            )
            if kind == b"VP8X" and index == 0 and length >= 10:
                flags = body[0]
                canvas = (int.from_bytes(body[4:7], "little") + 1, int.from_bytes(body[7:10], "little") + 1)
            elif kind in _INFO_CHUNKS:
                # libwebp's demuxer keeps a metadata chunk only when VP8X flags it (none in a simple
                # file), and Pillow reports the first of its kind.
                key, flag = _INFO_CHUNKS[kind]
                if flags & flag and key not in self.info:
                    self.info[key] = bytes(body)
            elif kind == b"VP8L" and length >= 5 and body[0] == 0x2F:
                bits = int.from_bytes(body[1:5], "little")
                size = ((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
                # The bitstream's alpha bit, not VP8X's flag: WebPGetFeatures (Pillow's mode) reads
                # VP8X's, then VP8LGetInfo overwrites it.
                alpha = bool(bits >> 28 & 1)
        if size is None or (canvas is not None and canvas != size):
            raise SyntaxError("not a lossless still WebP this reader opens")
        self._size = size
        self._mode = "RGBA" if alpha else "RGB"
        self.info.update(loop=0, background=(0, 0, 0, 0))
        self.tile = []

    def load(self) -> Image.core.PixelAccess | None:
        if self._im is None:
            rows = max(1, 8 * 2**20 // (4 * self.width))
            decoded = bands(self, self._data, rows)
            if decoded is None:
                raise OSError("the lossless WebP decoder is not available")
            whole = Image.new(self.mode, self.size)
            for top, band in zip(range(0, self.height, rows), decoded, strict=False):
                whole.paste(band, (0, top))
            self.im = whole.im
        return Image.Image.load(self)


#: RIFF chunks Pillow's plugin exposes in ``info``: their key, and the VP8X flag that must be set.
_INFO_CHUNKS = {b"ICCP": ("icc_profile", 0x20), b"EXIF": ("exif", 0x08), b"XMP ": ("xmp", 0x04)}


def open_still(data: bytes) -> Image.Image | None:
    """Return a lossless still WebP opened without copying the file, or None (not one: Pillow opens it).

    :raises Image.DecompressionBombError: over twice Pillow's pixel limit, as Pillow's open raises.
    """
    if vp8l_chunk(data) is None or not available():
        return None
    try:
        im = LosslessStill(data)
    except SyntaxError:
        return None
    limit = Image.MAX_IMAGE_PIXELS
    if limit and im.width * im.height > 2 * limit:
        raise Image.DecompressionBombError(
            f"Image size ({im.width * im.height} pixels) exceeds limit of {2 * limit} pixels, "
            "could be decompression bomb DOS attack."
        )
    return im


def applies(im: Image.Image, data: bytes | memoryview) -> bool:
    """Return whether ``im`` (opened from ``data``) is a lossless still decoded here."""
    return (
        im.format == "WEBP"
        and getattr(im, "n_frames", 1) == 1
        and vp8l_chunk(data) is not None
        and available()
    )


def bands(im: Image.Image, data: bytes, rows: int) -> Iterator[Image.Image] | None:
    """Return a lossless still's bands of ``rows`` rows (RGB, or RGBA when it has alpha), or None.

    Pillow's decoder of ``im`` (a copy of the whole file, and its canvases) is freed first: its
    pixels can no longer be loaded, only its header facts remain.

    :raises OSError: the bitstream is invalid or ends early: its header and codes now, its pixels
        on the band they are in.
    """
    chunk = vp8l_chunk(data)
    lib = _library()
    if chunk is None or lib is None or im.format != "WEBP":
        return None
    offset, _ = chunk
    # libwebp's decoder is given the rest of the file, not the chunk's size (webp_dec.c DecodeInto):
    # a bitstream that overruns its chunk reads the pad byte and what follows, and so does this one.
    length = len(data) - offset
    payload = np.frombuffer(data, np.uint8, count=length, offset=offset)  # the caller's bytes, not a copy
    info = (ctypes.c_int32 * 5)()
    if isinstance(im, WebPImagePlugin.WebPImageFile) and hasattr(im, "_decoder"):
        del im._decoder
        release_free_memory()
    handle = lib.vp8l_open(payload.ctypes.data, length, info)
    if not handle:
        raise OSError(f"the WebP image data cannot be decoded: {_REASONS.get(info[3], f'status {info[3]}')}")
    width, height = info[0], info[1]
    if (width, height) != im.size:
        lib.vp8l_close(handle)
        raise OSError(f"the WebP canvas is {im.size[0]}x{im.size[1]} but its image is {width}x{height}")
    # Alpha when Pillow's mode says so (the bitstream's bit), with the bitstream's values, as libwebp.
    return _bands(lib, handle, payload, (width, height), "RGBA" if im.mode == "RGBA" else "RGB", rows)


def _bands(
    lib: ctypes.CDLL, handle: int, payload: np.ndarray, size: tuple[int, int], mode: str, rows: int
) -> Iterator[Image.Image]:
    """Yield the decoder's rows as bands; close it at the end, on an error or when abandoned."""
    width, height = size
    channels = len(mode)
    try:
        for top in range(0, height, rows):
            count = min(rows, height - top)
            band = bytearray(width * count * channels)
            status = lib.vp8l_read_rows(
                handle, (ctypes.c_char * len(band)).from_buffer(band), count, channels
            )
            if status != _OK:
                raise OSError(
                    f"the WebP image data cannot be decoded: {_REASONS.get(status, f'status {status}')}"
                )
            yield Image.frombuffer(mode, (width, count), band, "raw", mode, 0, 1)
    finally:
        lib.vp8l_close(handle)
        del payload
