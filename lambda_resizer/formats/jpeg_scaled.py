"""Progressive JPEG at 1/4, 3/8 and 1/2 scale without libjpeg's coefficient array.

libjpeg decodes a progressive file by accumulating every scan into the whole image's DCT
coefficients, 128 bytes a block (3 bytes a pixel in 4:2:0, 6 in 4:4:4), whatever the output
scale: a 24 MP file decoded at 1/4 holds 72 MB of coefficients for a 4.3 MB image. At a reduced
scale each block becomes n x n pixels, each a fixed linear combination of its 64 coefficients
(libjpeg's reduced IDCTs: box averages of the 8x8 IDCT for n = 2 and 4, the n-point IDCT of the
first n coefficients for 3 and 6). So a coefficient need not be kept: what each scan adds to it is
added straight into its block's n x n sums, times its weight. The AC scans are entropy-decoded that
way by ``jpeg_scaled_ac.c`` (C, through ctypes: a Python loop cannot decode millions of symbols at
libjpeg's speed); the DC scans by :mod:`jpeg_dc`. A block keeps its sums (2 bytes each) and two
64-bit masks (which coefficients are nonzero, their signs: refinement scans send a correction bit
for each nonzero one): 24 bytes at 2x2, 48 at 4x4. One component is decoded at a time, so only one
component's sums exist at once, beside the finished planes.

Each component gets the IDCT size libjpeg gives it (``dct_size``: chroma stored at half resolution
gets twice luma's), and what is left is upsampled as libjpeg does: its fancy upsampling (a triangle
filter: Pillow's bilinear) for 2x, replication for other ratios (4:1:1). The pixels are libjpeg's
to within rounding (``tests/lambda_resizer/formats/test_jpeg_scaled.py``).

Damage is handled as :mod:`jpeg_dc` handles it: junk before a marker is skipped, a bad Huffman code
or data that ends early raises :class:`~jpeg_dc.JpegDataError`, a lost restart marker and
progressions libjpeg only warns about (a band sent twice, bits refined out of order) go to
libjpeg's route (``decode_scaled`` returns None).

The C object is built by ``make setup`` (``python -m lambda_resizer.formats.native_build``)
and into the Lambda package by the CDK app; without it (no compiler) libjpeg decodes these files,
and :func:`available` says so.
"""

from __future__ import annotations

import ctypes
import logging
import math
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image

from . import jpeg_dc

log = logging.getLogger(__name__)

LIBRARY = Path(__file__).with_name("_jpeg_scaled_ac.so")
#: Output scales (eighths) this route decodes: 1/8 is jpeg_dc's, full size libjpeg's (its
#: coefficients are no larger than the image there).
EIGHTHS = (2, 3, 4)
#: decode_ac_scan's results
_OK, _BAD_CODE, _TRUNCATED, _LOST_RESTART = 0, 1, 2, 3

#: Zigzag index -> natural (row-major) index of an 8x8 block (ITU T.81 figure 5).
ZIGZAG = np.array(
    [0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27,
     20, 13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58,
     59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63]
)  # fmt: skip


@cache
def _library() -> ctypes.CDLL | None:
    if not LIBRARY.exists():
        log.warning(
            "progressive JPEGs at 1/4-1/2 scale are decoded by libjpeg: %s is not built", LIBRARY.name
        )
        return None
    lib = ctypes.CDLL(str(LIBRARY))
    p, i32, i64 = ctypes.c_void_p, ctypes.c_int32, ctypes.c_int64
    lib.decode_ac_scan.argtypes = [p, i64, i64, i32, p, i32, i32, i32, i32, p, i32, p, p, p]
    lib.decode_ac_scan.restype = ctypes.c_int
    lib.decode_dc_scan.argtypes = [p, i64, i32, p, p, p, p, p, i64, i64, i32, i32, i32]
    lib.decode_dc_scan.restype = ctypes.c_int
    lib.finish_plane.argtypes = [p, i32, i64, p, i64, i32, p, p, i64, i64]
    lib.finish_plane.restype = None
    return lib


def available() -> bool:
    """Return whether this route can run (its C object is built and loads)."""
    return _library() is not None


def applies(im: Image.Image, eighths: int) -> bool:
    """Return whether ``im`` is decoded here at ``eighths``/8 scale (the progressive files jpeg_dc reads)."""
    return eighths in EIGHTHS and jpeg_dc.applies(im) and available()


def dct_size(h: int, v: int, h_max: int, v_max: int, eighths: int) -> int:
    """Return the IDCT size libjpeg gives a component at ``eighths``/8 (its ``jpeg_core_output_dimensions``).

    Subsampled components get a larger IDCT, doubling while both directions still divide, so that
    less is left to upsample: 4:2:0 chroma at 1/4 gets 4x4, the luma's resolution.
    """
    size = eighths
    while size < 8 and (h_max * eighths) % (h * size * 2) == 0 and (v_max * eighths) % (v * size * 2) == 0:
        size *= 2
    return size


def _basis(n: int) -> np.ndarray:
    """Return the 1-D reduced IDCT (8 frequencies x n outputs) libjpeg uses for an n-point output.

    jidctred.c (n = 1, 2, 4): each output is the mean of 8/n adjacent outputs of the 8-point IDCT.
    jidctint.c (n = 3, 6, 8): the n-point IDCT of the first n coefficients, scaled as the 8-point.
    """
    scale = np.array([1 / math.sqrt(2)] + [1.0] * 7) / 2
    u = np.arange(8)[:, None]
    if n in (1, 2, 4):
        full = scale[:, None] * np.cos((2 * np.arange(8)[None, :] + 1) * u * np.pi / 16)
        return full.reshape(8, n, 8 // n).mean(axis=2)
    points = scale[:, None] * np.cos((2 * np.arange(n)[None, :] + 1) * u * np.pi / (2 * n))
    points[n:] = 0.0
    return points


@cache
def weights(quant: tuple[int, ...], n: int) -> np.ndarray:
    """Return each coefficient's weight in each n x n output, dequantised, in 2^-20 (int64, zigzag order)."""
    basis = _basis(n)
    rows, cols = ZIGZAG // 8, ZIGZAG % 8
    two_d = basis[rows][:, :, None] * basis[cols][:, None, :]  # (64, n, n): vertical x horizontal
    return np.rint(two_d.reshape(64, n * n) * np.array(quant)[:, None] * 16 * 2**16).astype(np.int64)


@cache
def _lut(table: tuple[bytes, bytes]) -> np.ndarray:
    """Return a Huffman table as (length << 8) | symbol by the next 16 bits (0: no code)."""
    lut = np.zeros(1 << 16, np.uint16)
    for span, bits, symbol in jpeg_dc.codes(*table):
        lut[span] = bits << 8 | symbol
    return lut


def decode_scaled(data: bytes | memoryview, eighths: int) -> Image.Image | None:
    """Return a progressive JPEG decoded at ``eighths``/8 scale (L or YCbCr), or None: libjpeg's route.

    The size is libjpeg's for that scale: each side ``ceil(side * eighths / 8)``.

    :param data: the whole file.
    :raises JpegDataError: the file is corrupt or ends early.
    """
    lib = _library()
    if lib is None or eighths not in EIGHTHS:
        return None
    try:
        frame = jpeg_dc._decode_dc(memoryview(data), record=True)
    except jpeg_dc._LeftToLibjpeg:
        return None
    if frame is None or frame.ac_scans is None:
        return None
    if not _dc(lib, frame):
        return None
    out = (-(-frame.width * eighths // 8), -(-frame.height * eighths // 8))
    planes = []
    for index, c in enumerate(frame.components):
        if c.dc is None or c.al != 0:
            what = "no DC scan" if c.dc is None else f"DC known only to bit {c.al}"
            raise jpeg_dc.JpegDataError(f"image file is truncated: component {c.ident} has {what}")
        n = dct_size(c.h, c.v, frame.h_max, frame.v_max, eighths)
        plane = _component(lib, frame, index, n)
        if plane is None:
            return None
        c.dc = None
        planes.append(_upsampled(plane, frame, c, n, eighths, out))
    frame.dc_scans = frame.ac_scans = None  # the views of the file's bytes
    return planes[0] if len(planes) == 1 else Image.merge("YCbCr", planes)


def _dc(lib: ctypes.CDLL, frame: jpeg_dc._Frame) -> bool:
    """Decode the recorded DC scans into the components' grids; False: a restart marker lost (libjpeg's)."""
    assert frame.dc_scans is not None
    for scan in frame.dc_scans:
        members = [frame.components[i] for i in scan.components]
        grids = [m.dc for m in members if m.dc is not None]
        assert len(grids) == len(members)  # made by the walk at each member's first DC scan
        if scan.interleaved:
            across, down = frame.mcus
            h, v = [m.h for m in members], [m.v for m in members]
        else:
            (across, down), h, v = frame.blocks(members[0]), [1], [1]
        luts = [_lut(t) for t in scan.tables]
        count = len(members)
        entropy = np.frombuffer(scan.entropy, np.uint8)
        rc = lib.decode_dc_scan(
            entropy.ctypes.data, len(entropy), count,
            (ctypes.c_int32 * count)(*h), (ctypes.c_int32 * count)(*v),
            (ctypes.c_void_p * count)(*[g.ctypes.data for g in grids]),
            (ctypes.c_int64 * count)(*[g.shape[1] for g in grids]),
            (ctypes.c_void_p * count)(*[t.ctypes.data for t in luts]),
            across, down, scan.restart, scan.ah, scan.al,
        )  # fmt: skip
        _check(rc, "a DC scan")
        if rc == _LOST_RESTART:
            return False
    return True


def _check(rc: int, what: str) -> None:
    """Raise for a C decoder's error result (a lost restart marker is the caller's to handle)."""
    if rc == _BAD_CODE:
        raise jpeg_dc.JpegDataError(f"bad Huffman code in {what}")
    if rc == _TRUNCATED:
        raise jpeg_dc.JpegDataError(f"image file is truncated: {what} ends early")


def _component(lib: ctypes.CDLL, frame: jpeg_dc._Frame, index: int, n: int) -> np.ndarray | None:
    """Decode one component's AC scans into its plane at IDCT size ``n`` (uint8), or None: libjpeg's route."""
    c = frame.components[index]
    assert c.dc is not None and frame.ac_scans is not None
    blocks_w, blocks_h = frame.blocks(c)
    blocks = blocks_w * blocks_h
    sums = np.zeros((blocks, n * n), np.uint16)
    nonzero = np.zeros(blocks, np.uint64)
    negative = np.zeros(blocks, np.uint64)
    quant = c.quant_table
    w = weights(quant, n) if quant else np.zeros((64, n * n), np.int64)
    for scan in frame.ac_scans:
        if scan.component != index:
            continue
        lut = _lut(scan.table)
        entropy = np.frombuffer(scan.entropy, np.uint8)
        rc = lib.decode_ac_scan(
            entropy.ctypes.data, len(entropy), blocks, scan.restart, lut.ctypes.data,
            scan.ss, scan.se, scan.ah, scan.al, w.ctypes.data, n * n,
            sums.ctypes.data, nonzero.ctypes.data, negative.ctypes.data,
        )  # fmt: skip
        _check(rc, f"an AC scan of component {c.ident}")
        if rc == _LOST_RESTART:
            return None  # libjpeg resynchronises at the next restart marker, as every viewer does
    del nonzero, negative
    # libjpeg's downsampled size (jdmaster.c): rounded up once, from the image's size, so a plane
    # can be a sample narrower than its full-resolution size scaled would be (37 px at 3/8 in 4:2:2).
    plane_w = -(-frame.width * c.h * n // (frame.h_max * 8))
    plane_h = -(-frame.height * c.v * n // (frame.v_max * 8))
    plane = np.empty((plane_h, plane_w), np.uint8)
    dc = c.dc
    lib.finish_plane(
        sums.ctypes.data, n, blocks_w, dc.ctypes.data, dc.shape[1], c.quant_dc,
        jpeg_dc._RANGE_LIMIT.ctypes.data, plane.ctypes.data, plane_w, plane_h,
    )  # fmt: skip
    return plane


def _upsampled(
    plane: np.ndarray,
    frame: jpeg_dc._Frame,
    c: jpeg_dc._Component,
    n: int,
    eighths: int,
    out: tuple[int, int],
) -> Image.Image:
    """Return a component's plane (IDCT size ``n``) at the output size, upsampled by what its IDCT left."""
    across, down = frame.h_max * eighths // (c.h * n), frame.v_max * eighths // (c.v * n)
    image = Image.fromarray(plane, "L")
    if across > 1 or down > 1:
        # libjpeg's choice (jdsample.c): its triangle filter for 2x across (planes over 2 wide),
        # down or both, which is Pillow's bilinear; any other integral ratio (4:1:1) replicates.
        fancy = (across, down) == (1, 2) or (across == 2 and down in (1, 2) and image.width > 2)
        filter = Image.Resampling.BILINEAR if fancy else Image.Resampling.NEAREST
        image = image.resize((image.width * across, image.height * down), filter)
    if image.size != out:
        if image.width < out[0] or image.height < out[1]:  # not from any sampling libjpeg reads
            image = image.resize(
                (max(out[0], image.width), max(out[1], image.height)), Image.Resampling.BILINEAR
            )
        image = image.crop((0, 0, *out))
    return image
