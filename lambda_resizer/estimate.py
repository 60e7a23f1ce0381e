"""The memory estimate: the peak a decode will need, predicted from the header alone.

The handler reads only the header (a ranged GET), asks :func:`estimate_memory`, and compares it
with what its function has left, before the body is read: an image that would not fit goes to
the large-image tier instead of being attempted and killed.

The model is per decoding path (``MODELS``): resident bytes per pixel at the decode scale, plus a
fixed cost (the format's library and its buffers). Its numbers were measured with
``bench/resize.py --memory`` (VmHWM of a fresh process, bench/RESULTS.md) on synthetic photos of
every format and mode at 6, 24 and 90 MP, and rounded up so the estimate is never below the
measured peak and at most about 25% above it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import BinaryIO

from PIL import Image, TiffImagePlugin

from . import decoding
from .formats import avif, heif, jpeg, jpeg_dc, jpeg_scaled, png, tiff, webp_lossless
from .recipe import Recipe, fit
from .sniffing import load_plugin, sniff

_MB = 2**20


@dataclass(frozen=True)
class Header:
    """What the header says about the first frame, as far as memory is concerned."""

    format: str  # Pillow's name: JPEG, PNG, GIF, TIFF, BMP, WEBP, HEIF, AVIF
    mode: str  # the mode Pillow decodes the first frame in
    width: int  # stored (not EXIF-rotated)
    height: int
    bits: int = 8  # bits per sample in the file
    frames: int = 1
    progressive: bool = False  # progressive JPEG, interlaced PNG
    banded: bool = False  # decodable a band at a time: striped or tiled TIFF, uncompressed BMP
    lossless: bool = False  # WebP: VP8L keeps the whole image as 32-bit ARGB while decoding
    samples: float = 3.0  # JPEG, HEIF, AVIF: samples per pixel over all components (1.5 for 4:2:0)
    unit: int = 1  # banded TIFF: rows of one strip or row of tiles (a band is a multiple of it)
    whole: bool = False  # PNG: decoded whole by libspng (moderate sizes), then handed on in bands
    rows: bool = False  # TIFF: uncompressed single strip, read a band of rows at a time like BMP
    inflate: bool = False  # TIFF: one Deflate strip, inflated a band of rows at a time (formats.tiff)
    dc: bool = False  # progressive JPEG that is decoded from its DC scans when at 1/8 (formats.jpeg_dc)

    @property
    def pixels(self) -> int:
        return self.width * self.height


@dataclass(frozen=True)
class MemoryEstimate:
    """The predicted peak of one image's processing, above what the process held before."""

    peak_mb: float  # the source bytes, the decode at its scale and the variants being made
    decoded_mb: float  # the first frame as 8-bit samples at the decode scale (for comparisons)
    scale: float  # linear decode scale: 3/8 for a JPEG decoded at 3/8, 1.0 for a full decode
    path: str  # the decoding path (a key of ``MODELS``)
    header: Header

    def describe(self) -> str:
        """Return the image in a few words for messages: "90 MP progressive JPEG"."""
        h = self.header
        kind = "progressive JPEG" if h.progressive and h.format == "JPEG" else h.format
        mp = h.pixels / 1e6
        return f"{mp:.0f} MP {kind}" if mp >= 10 else f"{mp:.2g} MP {kind}"


@dataclass(frozen=True)
class Model:
    """Resident memory of one decoding path: bytes per decoded pixel, plus a fixed cost in MB."""

    per_pixel: float  # bytes per pixel of the frame as decoded (at the decode scale)
    fixed_mb: float  # the format's library loaded, its buffers, Python objects
    source_copies: float = 1.0  # copies of the file bytes held at the peak (the caller's included)
    open_copies: float = 0.0  # copies held for a moment while the header is read, before the decode
    band_copies: int = 2  # banded paths: a band as cropped or decoded, and converted
    per_plane_byte: float = 0.0  # HEIF, AVIF decoded to YUV planes: bytes per byte of the planes
    # The fixed cost is the decode's own, freed before the variants are made: the peak is the
    # larger of it and the variants' working memory, not their sum.
    fixed_then_working: bool = False


#: Lossless WebP's sub-images (predictor, cross-colour and entropy images, one 32-bit value per
#: 2^bits x 2^bits block) and Huffman tables, per pixel of the image: libwebp's encoder uses 3-5
#: bits: 0.02-0.08 measured on its output of a photo at every quality and method (bench/RESULTS.md).
_LOSSLESS_SUBIMAGE_BYTES = 0.1

#: The DC route's bytes per restart interval of a scan (formats.jpeg_dc): its start and, byte-aligned,
#: at least a byte of data (measured: 10000 x 10000 grey, an interval a block, 5.0 bytes each).
_BYTES_PER_RESTART_INTERVAL = 5

#: Measured with `bench/resize.py --memory` (see the module docstring); bytes per pixel are of the
#: frame at the decode scale: for JPEG, the DCT-scaled image; for banded paths, 0 (only bands and
#: the reduced image are ever resident, counted apart).
MODELS: dict[str, Model] = {
    # JPEG's peak comes while the variants are made: with the SIMD resampler's code, faulted in at
    # its first use in the process (3 MB, lambda_resizer.resample), resident by then.
    "jpeg": Model(per_pixel=5.0, fixed_mb=5.0),
    "jpeg_progressive": Model(per_pixel=5.0, fixed_mb=5.0),  # plus 2 bytes per DCT coefficient
    # progressive at 1/8 from its DC scans (formats.jpeg_dc): one chunk of the scan's bit windows and
    # lookups and a piece's masks, over before the 1/8 image is resampled; plus 4 bytes per block
    # and 5 per restart interval (measured 11 to 100 MP: 11-12 MB fixed, 1.0-1.2 of the peak)
    "jpeg_dc": Model(per_pixel=0.0, fixed_mb=14.0, fixed_then_working=True),
    # progressive at 1/4, 3/8 or 1/2, each scan summed into the reduced IDCT (formats.jpeg_scaled):
    # the planes and the merged image, as libjpeg's output; plus each block's DC (2 bytes) and the
    # largest component's sums and masks (2 n^2 + 16 bytes a block), one component at a time
    "jpeg_scaled": Model(per_pixel=5.0, fixed_mb=5.0),
    "png": Model(per_pixel=1.0, fixed_mb=2.0),  # times Pillow's bytes per pixel of the mode
    # a band mapped, inflated, re-wrapped as stored blocks, converted; the map's pages released
    "png_bands": Model(per_pixel=0.0, fixed_mb=4.0),
    "png_whole": Model(per_pixel=1.0, fixed_mb=4.0),  # libspng's whole array, then bands of it
    "gif": Model(per_pixel=1.0, fixed_mb=2.0),
    "tiff": Model(per_pixel=1.0, fixed_mb=4.0),
    "tiff_bands": Model(per_pixel=0.0, fixed_mb=10.0, band_copies=3),  # + the band's own small file
    "tiff_rows": Model(per_pixel=0.0, fixed_mb=2.0),  # one uncompressed strip read as rows, as BMP
    # one Deflate strip inflated a band at a time (its rows, Pillow's band, converted: see below)
    "tiff_inflate": Model(per_pixel=0.0, fixed_mb=2.0),
    "bmp": Model(per_pixel=1.0, fixed_mb=2.0),
    "bmp_bands": Model(per_pixel=0.0, fixed_mb=2.0),
    # libwebp decoding a still, scaled: lossy keeps a few macroblock rows (and the alpha plane,
    # 1 byte a pixel), lossless one 32-bit ARGB plane. Pillow's open copies the file twice (one
    # copy is its decoder's, freed before libwebp decodes from the caller's bytes).
    "webp": Model(per_pixel=0.0, fixed_mb=12.0, open_copies=3.0),
    "webp_alpha": Model(per_pixel=1.0, fixed_mb=12.0, open_copies=3.0),
    "webp_lossless": Model(per_pixel=4.1, fixed_mb=0.0, open_copies=3.0),
    # lossless stills a band at a time (formats.webp_lossless), opened without Pillow's copies: its
    # ring of coded pixels (4 bytes each, at most 2^20), the transforms' sub-images and Huffman
    # tables (per pixel: measured below), a band held about three times, the reduced image
    "webp_lossless_bands": Model(per_pixel=0.0, fixed_mb=4.0, band_copies=3),
    "webp_animated": Model(per_pixel=16.0, fixed_mb=6.0, source_copies=3.0),  # Pillow's path
    # Decoded by their library to the YUV planes only, converted a band at a time (formats.heif,
    # formats.avif); per byte of the planes (at their bit depth, alpha included). HEIF: libde265's
    # picture and libheif's copy of it, plus libde265's per-block data (per pixel, whatever the
    # chroma or depth), while decoding: freed before the bands are made, so that is the peak.
    # AVIF: dav1d's picture, which the planes point into, kept while the bands are converted (a
    # band in RGB(A), its Pillow copy and the reduced image: counted apart).
    "heif": Model(per_pixel=2.15, per_plane_byte=1.3, fixed_mb=14.0),
    "avif": Model(per_pixel=0.0, per_plane_byte=1.45, fixed_mb=5.0),
    # Where the library cannot be called directly: decoded whole to RGB by the plugin's call, then
    # cut into bands from its buffer. HEIF: libde265's picture, libheif's YUV planes and RGB
    # output. AVIF: the YUV planes and dav1d's pictures, libavif's RGB and Pillow's bytes copy of
    # it, at once inside one call. Bytes per pixel.
    "heif_rgb": Model(per_pixel=5.6, fixed_mb=16.0, source_copies=2.0),
    "avif_rgb": Model(per_pixel=8.4, fixed_mb=4.0, source_copies=2.0),
    # small enough not to be reduced: decoded whole by the plugins, with Pillow's copy of the frame
    "heif_whole": Model(per_pixel=7.5, fixed_mb=16.0, source_copies=2.0),
    "avif_whole": Model(per_pixel=9.1, fixed_mb=12.0, source_copies=2.0),
}
#: Bytes per pixel of one band converted from YUV planes: the converted rows (RGB, RGBA, L) and
#: Pillow's copy of them (RGB is repacked to 4 bytes; RGBA and L are shared), flattened for RGBA.
_PLANAR_BAND_BYTES = {"L": 1.0, "RGB": 7.0, "RGBA": 9.5}
#: Samples per pixel of the planes of HEVC's chroma_format_idc 0..3 (4:0:0, 4:2:0, 4:2:2, 4:4:4).
_CHROMA_SAMPLES = (1.0, 1.5, 2.0, 3.0)
#: Bytes Pillow stores per pixel in each mode (RGB and YCbCr are padded to 4).
_STORED_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16B": 2, "I;16L": 2, "LA": 4, "PA": 4}
#: The variants being made (YCbCr or RGBA at the largest size, split planes, encoders): bytes per
#: pixel of the largest variant.
_WORKING_PER_PIXEL = 8
_PNG_SAMPLE_BYTES = {"L": 1, "P": 1, "I;16": 1, "RGB": 3, "RGBA": 4}  # per 8 bits of depth


def read_header(fp: BinaryIO) -> Header:
    """Return what the header of an image file says, reading only as much of ``fp`` as the header needs.

    :param fp: a seekable binary file positioned at the start (a ranged S3 reader in the handler).
    :raises ValueError: (or OSError, SyntaxError) when the header is not one the core reads; the full
        decode then names the problem.
    """
    head = fp.read(64)
    fp.seek(0)
    sniffed = sniff(head)
    if sniffed is None:
        raise ValueError("not an accepted image format")
    if sniffed[0] == "WebP":
        return _webp_header(fp)
    if sniffed[0] in ("HEIF", "AVIF"):
        return _bmff_header(fp, sniffed[0])
    for opener in sniffed[1]:
        load_plugin(opener)
    im = Image.open(fp, formats=sniffed[1])
    fmt = "JPEG" if im.format == "MPO" else str(im.format)
    tiff.as_stored(im)  # a TIFF is decoded as stored (the core turns the small image): its size
    width, height = im.size
    if fmt == "JPEG":
        progressive = bool(im.info.get("progressive") or im.info.get("progression"))
        dc = jpeg_dc.applies(im) and jpeg_dc.huffman_progressive(fp)
        samples = jpeg_dc.sampled(im)
        return Header(fmt, im.mode, width, height, progressive=progressive, samples=samples, dc=dc)
    if fmt == "PNG":
        rawmode = im.tile[0].args if im.tile else ""
        bits = 16 if "16" in str(rawmode) else 8
        frames, interlaced = int(getattr(im, "n_frames", 1)), bool(im.info.get("interlace"))
        banded = frames == 1 and not interlaced and im.mode in png.MAPPED and decoding.png_banded(im)
        keyed = "transparency" in im.info
        whole = decoding.png_whole(im) and png.spng_usable(im.mode, rawmode, keyed=keyed, frames=frames)
        return Header(
            fmt, im.mode, width, height, bits=bits, frames=frames, progressive=interlaced,
            banded=banded or whole, whole=whole,
        )  # fmt: skip
    if fmt == "TIFF" and isinstance(im, TiffImagePlugin.TiffImageFile):
        bits = max(im.tag_v2.get(258, (8,)) or (8,))
        unit = tiff.band_unit(im)
        return Header(
            fmt, im.mode, width, height, bits=int(bits), banded=unit is not None, unit=unit or 1,
            rows=tiff.raw_rows(im), inflate=tiff.inflated_rows(im),
        )  # fmt: skip
    if fmt == "BMP":
        banded = len(im.tile) == 1 and im.tile[0].codec_name == "raw"
        return Header(fmt, im.mode, width, height, banded=banded)
    return Header(fmt, im.mode, width, height)


def estimate_memory(
    header: Header, recipe: Recipe, *, source_bytes: int, library_route: bool = False
) -> MemoryEstimate:
    """Return the peak memory processing the image will need, beyond what the process already holds.

    :param header: from :func:`read_header`.
    :param recipe: the sizes decide the decode scale (JPEG) and the band reduction (others).
    :param source_bytes: the file's size: its bytes are held while it decodes.
    :param library_route: the memory of libjpeg's route for a file our JPEG decoders declined
        (``decoding.LibraryRouteNeeded``: a damaged file) rather than of the route its header picks.
    """
    largest = max((fit(header.width, header.height, edge) for _, edge in recipe.sizes), key=_area)
    working = _area(largest) * _WORKING_PER_PIXEL
    decoded_8bit: float = header.pixels * _channels(header.mode)
    scale = 1.0
    if header.format == "JPEG":
        eighths = jpeg.dct_scale(header.width, header.height, largest)
        scale = eighths / 8
        scaled = -(-header.width * eighths // 8) * -(-header.height * eighths // 8)
        decoded_8bit = scaled * _channels(header.mode)
        path = "jpeg_progressive" if header.progressive else "jpeg"
        ours = header.progressive and header.dc and not library_route
        if ours and eighths == 1:
            path = "jpeg_dc"
        elif ours and eighths in jpeg_scaled.EIGHTHS and jpeg_scaled.available():
            path = "jpeg_scaled"
        model = MODELS[path]
        decode = scaled * model.per_pixel
        if path == "jpeg_progressive":  # libjpeg keeps every DCT coefficient of every scan
            decode += jpeg_dc.coefficient_bytes(header.pixels, header.samples)
        elif path == "jpeg_scaled":
            if header.mode == "L":  # one plane, nothing merged: 2 bytes a pixel, not 5
                decode = scaled * 2.0
            blocks = -(-header.width // 8) * -(-header.height // 8)  # the fullest component's
            decode += 2 * header.pixels * header.samples / 64 + blocks * (2 * eighths**2 + 16)
        elif path == "jpeg_dc":  # each block's DC value and difference (16 bits each)
            decode += 2 * 2 * header.pixels * header.samples / 64
            # Each restart interval's start and its data's last byte. A DRI may set or change the
            # interval between any two scans, after the header read here, so the count is taken
            # at its worst: an interval a block of the largest component (no scan has more).
            largest_blocks = -(-header.width // 8) * -(-header.height // 8)
            decode += _BYTES_PER_RESTART_INTERVAL * largest_blocks
    elif header.format == "WEBP":
        factor = decoding.reduce_factor((header.width, header.height), largest)
        if header.frames > 1:
            path = "webp_animated"
        elif header.lossless and factor >= 2 and webp_lossless.available():
            path = "webp_lossless_bands"
        else:
            path = "webp_lossless" if header.lossless else "webp_alpha" if header.mode == "RGBA" else "webp"
        model = MODELS[path]
        decode = header.pixels * model.per_pixel
        if path == "webp_lossless_bands":  # decoded at full size, a band at a time, as PNG's bands
            width = header.width
            rows = decoding.band_rows_for(width, factor, 1, decoding.LOSSLESS_WEBP_BAND_BYTES)
            bands = rows * width * 4 * (model.band_copies + (2 if rows % factor else 0))
            ring = min(header.pixels, webp_lossless.RING_PIXELS) * 4
            decode = ring + header.pixels * _LOSSLESS_SUBIMAGE_BYTES + bands + header.pixels / factor**2 * 4
        elif header.frames == 1:  # libwebp's scaled output, then converted for resampling
            scale = 1 / max(1, factor)
            decoded_8bit = decoded_8bit * scale**2
            decode += 2 * 4 * header.pixels * scale**2
    elif header.format in ("HEIF", "AVIF"):
        factor = decoding.reduce_factor((header.width, header.height), largest)
        planar = (heif.planar() if header.format == "HEIF" else avif.planar()) and factor >= 2
        path = header.format.lower() + ("" if planar else "_rgb" if factor >= 2 else "_whole")
        model = MODELS[path]
        sample_bytes = 2 if header.bits > 8 else 1
        if planar:
            alpha = 1 if header.mode == "RGBA" else 0
            planes = header.pixels * (header.samples + alpha) * sample_bytes
            decode = planes * model.per_plane_byte + header.pixels * model.per_pixel
            if header.format == "AVIF":  # the planes stay while one band is converted and reduced
                band = decoding.BAND_BYTES / 4 * _PLANAR_BAND_BYTES[header.mode]
                decode += band + header.pixels / factor**2 * _STORED_BYTES.get(header.mode, 4)
        else:
            decode = header.pixels * model.per_pixel * sample_bytes
    else:
        factor = decoding.reduce_factor((header.width, header.height), largest)
        banded = header.banded and factor >= 2
        kind = "_whole" if header.whole else "_rows" if header.rows else "_bands"
        kind = "_inflate" if header.inflate else kind
        path = header.format.lower() + (kind if banded else "")
        model = MODELS.get(path, MODELS["png"])
        stored = _STORED_BYTES.get(header.mode, 4)
        decode = 0.0 if banded else header.pixels * stored * model.per_pixel
        if path == "png_whole":  # libspng's array: 8-bit samples, palettes expanded to RGB
            decode = header.pixels * {"L": 1, "RGBA": 4}.get(header.mode, 3) * model.per_pixel
        if factor >= 2:
            rows = decoding.band_rows_for(header.width, factor, header.unit if banded else 1)
            if path == "png_bands":  # the mapped band, its inflated and stored-block copies, converted
                per_row_pixel = stored + 2 * _PNG_SAMPLE_BYTES.get(header.mode, 4) * header.bits // 8 + 12
            elif path == "tiff_inflate":  # the inflated 8-bit samples, Pillow's band and its conversion
                per_row_pixel = _channels(header.mode) + 2 * stored
            else:  # bands that leave rows over for the next one are joined with them: two copies more
                per_row_pixel = (model.band_copies + (2 if rows % factor else 0)) * 4
            after = per_row_pixel * rows * header.width + header.pixels / factor**2 * 4
        else:
            after = header.pixels * 4  # converted at full size: the image is barely larger
        if header.format == "TIFF" and not banded and (header.inflate or not header.banded):
            # One compressed strip decoded whole (not reduced, or not Deflate): libtiff inflates all
            # of it beside the image and frees it before the bands are converted; whichever is
            # larger is the peak (measured: 7.0 bytes a pixel).
            after = max(after, header.pixels * _channels(header.mode) * header.bits / 8)
        decode += after
    held = max(source_bytes * model.source_copies + decode, source_bytes * model.open_copies)
    fixed = model.fixed_mb * _MB
    peak = held + (max(working, fixed) if model.fixed_then_working else working + fixed)
    return MemoryEstimate(
        peak_mb=peak / _MB, decoded_mb=decoded_8bit / _MB, scale=scale, path=path, header=header
    )


def _area(size: tuple[int, int]) -> int:
    return size[0] * size[1]


def _channels(mode: str) -> int:
    """Return the 8-bit samples per pixel a mode stands for: 1 (grey, palette), 2, 3 or 4."""
    if mode in ("1", "L", "P", "I", "F") or mode.startswith("I;16"):
        return 1
    if mode in ("LA", "PA"):
        return 2
    return 4 if mode in ("RGBA", "CMYK") else 3


def _webp_header(fp: BinaryIO) -> Header:
    """Return the header of a WebP file from its RIFF chunks (Pillow's plugin reads the whole file)."""
    data = fp.read(64 * 1024)
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise ValueError("not a WebP file")
    position, alpha, frames, lossless, size = 12, False, 1, False, None
    while position + 8 <= len(data):
        kind, length = data[position : position + 4], struct.unpack_from("<I", data, position + 4)[0]
        body = data[position + 8 : position + 8 + length]
        if kind == b"VP8X" and len(body) >= 10:
            flags = body[0]
            alpha, frames = bool(flags & 0x10), 2 if flags & 0x02 else 1
            size = (int.from_bytes(body[4:7], "little") + 1, int.from_bytes(body[7:10], "little") + 1)
        elif kind == b"VP8L" and len(body) >= 5:
            bits = int.from_bytes(body[1:5], "little")
            lossless = True
            size = size or ((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
            alpha = alpha or bool(bits >> 28 & 1)
            break
        elif kind == b"VP8 " and len(body) >= 10:
            size = size or (
                struct.unpack_from("<H", body, 6)[0] & 0x3FFF,
                struct.unpack_from("<H", body, 8)[0] & 0x3FFF,
            )
            break
        elif kind in (b"ANIM", b"ANMF"):
            frames = max(frames, 2)
            if kind == b"ANMF":
                break
        position += 8 + length + (length & 1)
    if size is None:
        raise ValueError("WebP header without an image chunk in its first 64 KiB")
    mode = "RGBA" if alpha else "RGB"
    return Header("WEBP", mode, *size, frames=frames, lossless=lossless)


def _bmff_header(fp: BinaryIO, fmt: str) -> Header:
    """Return the header of a HEIF or AVIF file: the largest ``ispe`` (the primary image or its grid),
    bits from ``pixi`` and the codec configuration (``hvcC``, ``av1C``, which also give the chroma
    subsampling), alpha from an ``auxC`` alpha item."""
    data = fp.read(256 * 1024)
    sizes: list[tuple[int, int]] = []
    chroma: list[float] = []  # samples per pixel of each coded item's planes (hvcC, av1C)
    bits = 8
    alpha = b"auxid:1" in data or b"cicp:systems:auxiliary:alpha" in data

    def walk(start: int, end: int) -> None:
        nonlocal bits
        position = start
        while position + 8 <= end:
            length = int.from_bytes(data[position : position + 4], "big")
            kind = data[position + 4 : position + 8]
            header = 8
            if length == 1:
                length, header = int.from_bytes(data[position + 8 : position + 16], "big"), 16
            elif length == 0:
                length = end - position
            if length < header:
                return
            body = position + header
            if kind == b"meta":
                walk(body + 4, min(end, position + length))
            elif kind in (b"iprp", b"ipco"):
                walk(body, min(end, position + length))
            elif kind == b"ispe" and body + 12 <= len(data):
                sizes.append(struct.unpack_from(">II", data, body + 4))
            elif kind == b"pixi" and body + 5 <= len(data):
                channels = data[body + 4]
                bits = max([bits, *data[body + 5 : body + 5 + channels]])
            elif kind == b"hvcC" and body + 18 <= len(data):  # chroma_format_idc, bit depths
                chroma.append(_CHROMA_SAMPLES[data[body + 16] & 3])
                bits = max(bits, (data[body + 17] & 7) + 8)
            elif kind == b"av1C" and body + 3 <= len(data):  # high_bitdepth, twelve_bit, mono, subsampling
                flags = data[body + 2]
                mono, x, y = flags >> 4 & 1, flags >> 3 & 1, flags >> 2 & 1
                chroma.append(1.0 if mono else 1 + 2 / ((1 + x) * (1 + y)))
                bits = max(bits, 12 if flags & 0x60 == 0x60 else 10 if flags & 0x40 else 8)
            position += length

    walk(0, len(data))
    if not sizes:
        raise ValueError(f"{fmt} header without an image size (ispe) in its first 256 KiB")
    width, height = max(sizes, key=_area)
    # The colour item's planes: the most samples any coded item has (an alpha item is monochrome).
    samples = max(chroma, default=3.0)
    mode = "RGBA" if alpha else "L" if samples == 1.0 else "RGB"
    return Header(fmt, mode, width, height, bits=bits, samples=samples)
