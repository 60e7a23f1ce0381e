"""Shrink-on-load decoding: the first frame, decoded as small as the largest variant allows.

JPEGs are DCT-scaled while decoding (`formats.jpeg`); other formats are box-reduced by an integer
factor first. What is left is one resample to the largest variant.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import numpy as np
from PIL import Image

from .colour import flatten
from .formats import avif, bmp, heif, jpeg, jpeg_dc, jpeg_scaled, png, tiff, webp, webp_lossless
from .resample import REDUCING_GAP, integer_reduce, resample_ycc, resize

_ORIENTATION_TAG = 0x0112
TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def exif_orientation(im: Image.Image) -> tuple[int, bool]:
    """Return (EXIF orientation 1..8, whether the decoder already applied it).

    A TIFF is made to decode as stored (``tiff.as_stored``), whole or in bands, so that its
    orientation is applied once, by the caller, like a JPEG's.
    """
    if im.format == "TIFF":
        return tiff.as_stored(im), False
    # pillow-heif lets libheif rotate the pixels and resets the EXIF tag, keeping the original.
    original = im.info.get("original_orientation")
    if im.format == "HEIF" and isinstance(original, int) and 1 <= original <= 8:
        return original, True
    try:
        value = im.getexif().get(_ORIENTATION_TAG, 1)
    except Exception:  # unreadable EXIF must not cost us the picture
        return 1, False
    return (value, False) if isinstance(value, int) and 1 <= value <= 8 else (1, False)


class LibraryRouteNeeded(Exception):
    """Our decoder declined a damaged file its library recovers from (a lost JPEG restart marker).

    The library's route holds what ours avoids (libjpeg: every DCT coefficient), more than the
    header's estimate: the caller checks that memory first (``estimate_memory(...,
    library_route=True)``), then decodes again with the library allowed.
    """


def decode_shrunk(
    im: Image.Image,
    size: tuple[int, int],
    resample: Image.Resampling,
    *,
    keep_alpha: bool,
    data: bytes = b"",
    library_fallback: bool = True,
) -> Image.Image:
    """Return the first frame decoded and resampled to ``size``.

    :param im: the opened, not yet decoded source.
    :param size: target size in the source's stored (not EXIF-rotated) orientation.
    :param resample: Pillow filter for the final resample (of luma, for colour images).
    :param keep_alpha: keep transparency (WebP output); else flatten it onto white first.
        Compositing onto a flat background commutes with premultiplied resampling, so this
        gives the JPEG variants the same pixels as flattening each variant would.
    :param data: the file's bytes, for formats decoded a band at a time (TIFF, BMP).
    :param library_fallback: let libjpeg decode a damaged file our JPEG routes decline; False:
        raise :class:`LibraryRouteNeeded` instead.
    :return: an image of exactly ``size``; mode YCbCr for colour without alpha, else one of
        L, LA, RGBA, CMYK, I, F.
    """
    eighths = jpeg.dct_scale(*im.size, size) if im.format in ("JPEG", "MPO") else 8
    if data and eighths == 1 and jpeg_dc.applies(im):
        # Progressive at 1/8 scale: from the DC scans alone (libjpeg would hold every coefficient).
        eighth = jpeg_dc.decode_eighth(data)
        if eighth is not None:
            return _resampled(eighth, size, resample, (0.0, 0.0, im.width / 8, im.height / 8))
        if not library_fallback:
            raise LibraryRouteNeeded("a restart marker is lost: libjpeg's route resynchronises")
    if data and jpeg_scaled.applies(im, eighths):
        # Progressive at 1/4, 3/8 or 1/2: each scan summed into the reduced IDCT (no coefficient array).
        reduced = jpeg_scaled.decode_scaled(data, eighths)
        if reduced is not None:
            area = (0.0, 0.0, im.width * eighths / 8, im.height * eighths / 8)
            return _resampled(reduced, size, resample, area)
        if not library_fallback:
            raise LibraryRouteNeeded("a restart marker is lost or the progression is bogus: libjpeg's route")
    box = jpeg.shrink_on_load(im, size) if im.format in ("JPEG", "MPO") else None
    factor = 0 if box is not None or im.format in ("JPEG", "MPO") else reduce_factor(im.size, size)
    scaled = _webp_scaled(im, data, factor) if im.format == "WEBP" else None
    if scaled is not None:
        im, factor = resampleable(scaled, keep_alpha=keep_alpha), 0
    elif factor >= 2:
        # Converted, flattened and box-reduced a band at a time: no full-size copy in another mode.
        width, height = im.size
        rows = band_rows(im, factor)
        bands = band_decoder(im, data, rows) or _loaded_bands(im, rows)
        im = reduce_bands(
            bands, (width, height), factor, lambda band: resampleable(band, keep_alpha=keep_alpha)
        )
        box = (0, 0, width / factor, height / factor)
    if factor < 2 and scaled is None:
        im.load()
        im = resampleable(im, keep_alpha=keep_alpha)
        if im.mode == "RGB":
            im, box = integer_reduce(im, size, box)
    if im.mode == "RGB":
        im = im.convert("YCbCr")
    return _resampled(im, size, resample, box)


def _resampled(
    im: Image.Image,
    size: tuple[int, int],
    resample: Image.Resampling,
    box: tuple[float, float, float, float] | None,
) -> Image.Image:
    """Return the decoded ``box`` of ``im`` resampled to ``size`` (YCbCr: luma and chroma apart)."""
    if im.size == size and box in (None, (0, 0, *size)):
        return im
    if im.mode == "YCbCr":
        return resample_ycc(im, size, resample, box, REDUCING_GAP)
    return resize(im, size, resample, box, REDUCING_GAP)


def _webp_scaled(im: Image.Image, data: bytes, factor: int) -> Image.Image | None:
    """Return a still WebP decoded by libwebp at 1/``factor`` of its size (full size below 2), or None."""
    if not data or getattr(im, "n_frames", 1) != 1:
        return None
    if factor >= 2 and webp_lossless.applies(im, data):
        return None  # a band at a time (band_decoder): libwebp would hold the whole ARGB image
    width, height = im.size
    size = (width // factor, height // factor) if factor >= 2 else (width, height)
    return webp.decode_scaled(im, data, size)


#: Decoded bytes of one band (Pillow stores every pixel in 1 or 4 bytes): small next to the image.
BAND_BYTES = 8 * 2**20
#: Lossless WebP's (formats.webp_lossless): its row decoder costs nothing a band, and a band is held
#: about three times while converted and reduced (24 MP: 8 MB bands peaked at 91 MB, 2 MB at 74).
LOSSLESS_WEBP_BAND_BYTES = 2 * 2**20


def reduce_factor(source: tuple[int, int], size: tuple[int, int]) -> int:
    """Return the integer box-reduction that leaves at least ``REDUCING_GAP`` for the final resample."""
    return int(min(source[0] / size[0], source[1] / size[1]) / REDUCING_GAP)


def band_unit(im: Image.Image) -> int:
    """Return the rows a band's height must be a multiple of for this file (its strips or tiles)."""
    return (tiff.band_unit(im) or 1) if im.format == "TIFF" else 1


def band_rows(im: Image.Image, factor: int) -> int:
    """Return the height of a band: about ``BAND_BYTES``, a multiple of ``factor`` and of the file's unit."""
    band_bytes = LOSSLESS_WEBP_BAND_BYTES if im.format == "WEBP" else BAND_BYTES
    return band_rows_for(im.size[0], factor, band_unit(im), band_bytes)


def band_rows_for(width: int, factor: int, unit: int, band_bytes: int = BAND_BYTES) -> int:
    """Return the band height for an image ``width`` wide, reduced by ``factor``, strips of ``unit`` rows.

    A multiple of the file's unit (strip or tile height) when it has one, else of ``factor``.
    """
    step = math.lcm(factor, unit)
    if step * width * 4 > band_bytes and unit > 1:
        step = unit  # e.g. 256-row tiles reduced by 10: bands of one tile row, the rest carried
    return max(1, band_bytes // (4 * width * step)) * step


def band_decoder(im: Image.Image, data: bytes, rows: int) -> Iterator[Image.Image] | None:
    """Return the bands straight from the file or its library's buffer where the format allows.

    TIFF strips, tiles, raw and inflated rows, BMP rows and PNG bands are read from the file; HEIF and AVIF
    frames are decoded by their library to YUV planes, converted to RGB a band at a time; lossless
    WebP stills by our row decoder.
    """
    if not data:
        return None
    if im.format == "TIFF":
        return tiff.bands(im, data, rows)
    if im.format == "BMP":
        return bmp.bands(im, data, rows)
    if im.format == "HEIF":
        return heif.bands(im, data, rows)
    if im.format == "AVIF":
        return avif.bands(im, data, rows)
    if im.format == "WEBP":  # lossless stills; the others are decoded scaled by libwebp
        return webp_lossless.bands(im, data, rows)
    if im.format == "PNG" and png_banded(im):  # not when loaded already: its tile is gone
        # Moderate sizes: libspng's whole decode where it reads the file (fastest there, measured);
        # larger ones a band at a time, by libspng where it can (twice Pillow's unfiltering speed).
        if png_whole(im):
            return png.whole_bands(im, data, rows) or png.bands(im, data, rows)
        return png.spng_bands(im, data, rows) or png.bands(im, data, rows)
    return None


#: PNGs up to this many pixels that libspng reads like Pillow are decoded whole by it (fastest);
#: larger ones a band at a time (least memory).
PNG_WHOLE_PIXELS = 16_000_000


def png_whole(im: Image.Image) -> bool:
    """Return whether this PNG is small enough to be decoded whole by libspng."""
    return im.size[0] * im.size[1] <= PNG_WHOLE_PIXELS


#: PNGs whose decoded image would be over this are decoded a band at a time. With ISA-L that is
#: every PNG (its inflate more than pays for handing Pillow the rows); without it, only large ones.
PNG_BAND_BYTES = 0 if png.FAST_INFLATE else 48 * 2**20


def png_banded(im: Image.Image) -> bool:
    """Return whether this PNG is large enough to be decoded a band at a time."""
    stored = {"L": 1, "P": 1, "I;16": 2}.get(im.mode, 4)
    return im.size[0] * im.size[1] * stored > PNG_BAND_BYTES


def _loaded_bands(im: Image.Image, rows: int) -> Iterator[Image.Image]:
    """Yield the decoded image as bands of ``rows`` rows (copies of one band at a time)."""
    im.load()
    for top in range(0, im.height, rows):
        yield im.crop((0, top, im.width, min(im.height, top + rows)))


def reduce_bands(
    bands: Iterator[Image.Image],
    size: tuple[int, int],
    factor: int,
    convert: Callable[[Image.Image], Image.Image],
) -> Image.Image:
    """Return the image the bands make up, each converted and box-reduced by ``factor``.

    Rows left over below a multiple of ``factor`` are carried into the next band, so the boxes
    are those of reducing the whole image (and a band can be one strip or row of tiles, whatever
    the factor).

    :param bands: the image's bands, top to bottom.
    :param size: the whole image's size.
    :param factor: the box reduction (>= 2).
    :param convert: mode conversion applied to each band before reducing it.
    """
    out: Image.Image | None = None
    carry: Image.Image | None = None
    done = 0  # source rows reduced so far
    seen = 0
    for raw in bands:
        seen += raw.height
        band = convert(raw)
        if carry is not None:
            joined = Image.new(band.mode, (band.width, carry.height + band.height))
            joined.paste(carry, (0, 0))
            joined.paste(band, (0, carry.height))
            band = joined
        last = seen >= size[1]
        usable = band.height if last else band.height - band.height % factor
        carry = band.crop((0, usable, band.width, band.height)) if usable < band.height else None
        if usable:
            small = (band if usable == band.height else band.crop((0, 0, band.width, usable))).reduce(factor)
            if out is None:
                out = Image.new(small.mode, (-(-size[0] // factor), -(-size[1] // factor)))
            out.paste(small, (0, done // factor))
            done += usable
        del raw, band  # before the next band is decoded and converted: one band alive at a time
    if out is None or seen != size[1]:
        raise OSError(f"image data ends early: {seen} of {size[1]} rows decoded")
    return out


def resampleable(im: Image.Image, *, keep_alpha: bool) -> Image.Image:
    """Return the image in a mode whose resampling is correct (not nearest) and supports reduce().

    Without ``keep_alpha``, transparency is flattened onto white here, at full size: one
    blend is far cheaper than Pillow's premultiply/resample/unpremultiply of four bands.
    """
    mode = im.mode
    has_key = "transparency" in im.info
    if mode in ("P", "PA"):
        im = im.convert("RGBA" if has_key or mode == "PA" else "RGB")
    elif mode == "1":
        im = im.convert("L")
    elif mode in ("L", "RGB") and has_key:  # a PNG colour key becomes real alpha
        im = im.convert("LA" if mode == "L" else "RGBA")
    elif mode in ("La", "RGBa"):
        im = im.convert(mode[:-1] + "A")
    elif mode.startswith("I;16") and has_key:  # the key is a 16-bit value: compare before scaling
        pixels = np.asarray(im).astype(np.uint32)
        grey = Image.fromarray(((pixels * 255 + 32767) // 65535).astype(np.uint8), "L")
        alpha = Image.fromarray(
            np.where(pixels == int(im.info["transparency"]), 0, 255).astype(np.uint8), "L"
        )
        im = Image.merge("LA", (grey, alpha))
    elif mode.startswith("I;16"):
        im = im.convert("I")
    elif mode not in ("L", "LA", "RGB", "RGBA", "CMYK", "I", "F", "YCbCr"):
        im = im.convert("RGBA" if "A" in mode else "RGB")
    return im if keep_alpha or im.mode not in ("LA", "RGBA") else flatten(im)
