"""AVIF: the frame decoded by libavif to its YUV planes only, converted to RGB(A) a band at a time.

Pillow's plugin has libavif convert the whole frame to RGB beside the YUV planes and dav1d's
pictures (the planes point into them), then copies that RGB into a bytes object: 8 bytes a pixel
on top of the planes, all at once inside one call. Here the libavif Pillow's ``_avif`` module is
linked against (called through ctypes, as formats/webp.py calls libwebp) decodes the frame with
the plugin's settings, and ``avifImageYUVToRGB`` converts one band-sized view of it
(``avifImageSetViewRect``) at a time: the full-size RGB never exists, and the peak is the file,
the YUV planes (1.5 bytes a pixel for 8-bit 4:2:0, twice that above 8 bits) and one band. The
pixels are the plugin's: the same library converts them with the same settings, and each view
reaches two rows (one chroma row) past its band, so the chroma upsampling at a band's edges sees
the rows a whole conversion sees.

The struct layouts below are libavif 1.3's and 1.4's (avif.h: avifImage, avifDecoder and
avifRGBImage are unchanged from 1.2.1 to 1.4.2). Another version, or no such library, takes
the plugin's route (``_plugin_bands``: libavif's whole RGB cut into bands).
"""

from __future__ import annotations

import ctypes
from collections.abc import Iterator
from functools import cache
from typing import Any

from PIL import AvifImagePlugin, Image

from . import Signature, bound_library, buffer_bands, release_free_memory

#: libavif versions whose struct layouts below were checked against their avif.h.
_VERIFIED = ("1.3.", "1.4.")
_OK = 0
_STRICT_PIXI_REQUIRED, _STRICT_CLAP_VALID = 1 << 0, 1 << 1
_RGB_FORMAT = {"RGB": 0, "RGBA": 1, "L": 7}  # AVIF_RGB_FORMAT_RGB, _RGBA, _GRAY
#: Rows each converted view reaches past its band, above and below: one chroma row of 4:2:0,
#: all a bilinear upsampling of chroma reads (an even number: a 4:2:0 view starts on an even row).
_MARGIN = 2


class _Image(ctypes.Structure):
    """The start of ``avifImage`` (read only: libavif allocates it)."""

    _fields_ = [
        ("width", ctypes.c_uint32),
        ("height", ctypes.c_uint32),
        ("depth", ctypes.c_uint32),
        ("yuvFormat", ctypes.c_int),
        ("yuvRange", ctypes.c_int),
        ("yuvChromaSamplePosition", ctypes.c_int),
        ("yuvPlanes", ctypes.c_void_p * 3),
        ("yuvRowBytes", ctypes.c_uint32 * 3),
        ("imageOwnsYUVPlanes", ctypes.c_int),
        ("alphaPlane", ctypes.c_void_p),
    ]


class _ImageTiming(ctypes.Structure):
    _fields_ = [
        ("timescale", ctypes.c_uint64),
        ("pts", ctypes.c_double),
        ("ptsInTimescales", ctypes.c_uint64),
        ("duration", ctypes.c_double),
        ("durationInTimescales", ctypes.c_uint64),
    ]


class _Decoder(ctypes.Structure):
    """``avifDecoder`` up to its diagnostics (libavif allocates it; fields past these are not touched)."""

    _fields_ = [
        ("codecChoice", ctypes.c_int),
        ("maxThreads", ctypes.c_int),
        ("requestedSource", ctypes.c_int),
        ("allowProgressive", ctypes.c_int),
        ("allowIncremental", ctypes.c_int),
        ("ignoreExif", ctypes.c_int),
        ("ignoreXMP", ctypes.c_int),
        ("imageSizeLimit", ctypes.c_uint32),
        ("imageDimensionLimit", ctypes.c_uint32),
        ("imageCountLimit", ctypes.c_uint32),
        ("strictFlags", ctypes.c_uint32),
        ("image", ctypes.POINTER(_Image)),
        ("imageIndex", ctypes.c_int),
        ("imageCount", ctypes.c_int),
        ("progressiveState", ctypes.c_int),
        ("imageTiming", _ImageTiming),
        ("timescale", ctypes.c_uint64),
        ("duration", ctypes.c_double),
        ("durationInTimescales", ctypes.c_uint64),
        ("repetitionCount", ctypes.c_int),
        ("alphaPresent", ctypes.c_int),
        ("ioStats", ctypes.c_size_t * 2),
        ("diag", ctypes.c_char * 256),
    ]


class _RGBImage(ctypes.Structure):
    _fields_ = [
        ("width", ctypes.c_uint32),
        ("height", ctypes.c_uint32),
        ("depth", ctypes.c_uint32),
        ("format", ctypes.c_int),
        ("chromaUpsampling", ctypes.c_int),
        ("chromaDownsampling", ctypes.c_int),
        ("avoidLibYUV", ctypes.c_int),
        ("ignoreAlpha", ctypes.c_int),
        ("alphaPremultiplied", ctypes.c_int),
        ("isFloat", ctypes.c_int),
        ("maxThreads", ctypes.c_int),
        ("pixels", ctypes.c_void_p),
        ("rowBytes", ctypes.c_uint32),
    ]


class _CropRect(ctypes.Structure):
    _fields_ = [(name, ctypes.c_uint32) for name in ("x", "y", "width", "height")]


@cache
def _libavif() -> ctypes.CDLL | None:
    """Return the libavif Pillow's ``_avif`` module loaded, if it is a version checked here; else None."""
    decoder, image, i = ctypes.POINTER(_Decoder), ctypes.POINTER(_Image), ctypes.c_int
    functions: list[Signature] = [
        ("avifDecoderCreate", decoder, []),
        ("avifDecoderDestroy", None, [decoder]),
        ("avifDecoderSetIOMemory", i, [decoder, ctypes.c_char_p, ctypes.c_size_t]),
        ("avifDecoderParse", i, [decoder]),
        ("avifDecoderNthImage", i, [decoder, ctypes.c_uint32]),
        ("avifCodecChoiceFromName", i, [ctypes.c_char_p]),
        ("avifResultToString", ctypes.c_char_p, [i]),
        ("avifImageCreateEmpty", image, []),
        ("avifImageDestroy", None, [image]),
        ("avifImageSetViewRect", i, [image, image, ctypes.POINTER(_CropRect)]),
        ("avifRGBImageSetDefaults", None, [ctypes.POINTER(_RGBImage), image]),
        ("avifImageYUVToRGB", i, [image, ctypes.POINTER(_RGBImage)]),
    ]
    return bound_library("PIL._avif", "libavif", functions, version=("avifVersion", _VERIFIED))


class _Decoded:
    """A libavif decoder and the bytes it reads in place; destroyed once, when closed or collected."""

    def __init__(self, lib: ctypes.CDLL, data: bytes) -> None:
        self.lib, self.data = lib, data  # libavif reads ``data`` in place: it must outlive the decoder
        self.decoder = lib.avifDecoderCreate()
        if not self.decoder:
            raise MemoryError("libavif cannot allocate a decoder")

    def check(self, result: int, doing: str) -> None:
        """Raise OSError naming libavif's reason when ``result`` is not AVIF_RESULT_OK."""
        if result != _OK:
            reason = self.lib.avifResultToString(result).decode(errors="replace")
            detail = " ".join(self.decoder.contents.diag.decode(errors="replace").split())  # one line
            raise OSError(f"libavif cannot {doing}: {reason}" + (f" ({detail})" if detail else ""))

    def close(self) -> None:
        if self.decoder:
            self.lib.avifDecoderDestroy(self.decoder)
            self.decoder = None

    __del__ = close


def planar() -> bool:
    """Return whether AVIFs are decoded to their planes here (libavif can be called), not by the plugin."""
    return _libavif() is not None


def bands(im: Image.Image, data: bytes, rows: int) -> Iterator[Image.Image] | None:
    """Return the first frame as bands of ``rows`` rows, top to bottom; None if not possible.

    Once libavif has parsed the file as Pillow did, Pillow's decoder of ``im`` (its copy of the
    file) is freed: ``im`` keeps its header facts (size, mode, info) but can no longer be loaded.

    :param im: the opened AVIF (Pillow's plugin), not loaded.
    :param data: the file's bytes.
    :param rows: band height.
    :raises OSError: (when the bands are read) libavif cannot decode or convert the image data.
    """
    if not isinstance(im, AvifImagePlugin.AvifImageFile) or im.mode not in ("RGB", "RGBA", "L"):
        return None
    lib = _libavif()
    if lib is None or not isinstance(data, bytes):
        return _plugin_bands(im, data, rows)
    decoded = _Decoded(lib, data)
    decoder = decoded.decoder.contents
    # The settings of Pillow's plugin (src/_avif.c AvifDecoderNew), so libavif decodes alike.
    decoder.maxThreads = AvifImagePlugin._get_default_max_threads()
    decoder.strictFlags &= ~(_STRICT_CLAP_VALID | _STRICT_PIXI_REQUIRED)
    choice = AvifImagePlugin.DECODE_CODEC_CHOICE
    decoder.codecChoice = 0 if choice == "auto" else lib.avifCodecChoiceFromName(choice.encode())
    decoded.check(lib.avifDecoderSetIOMemory(decoded.decoder, data, len(data)), "read the file")
    decoded.check(lib.avifDecoderParse(decoded.decoder), "parse the file")
    image = decoder.image.contents
    if (image.width, image.height) != im.size or decoder.imageCount != getattr(im, "n_frames", 1):
        decoded.close()
        return _plugin_bands(im, data, rows)
    if hasattr(im, "_decoder"):
        del im._decoder  # Pillow's copy of the file, and its parse: freed before the frame is decoded
        release_free_memory()
    return _converted_bands(decoded, im.mode, im.size, rows)


def _converted_bands(decoded: _Decoded, mode: str, size: tuple[int, int], rows: int) -> Iterator[Image.Image]:
    """Yield the first frame's bands, each converted from a view of the YUV planes into its own buffer."""
    lib, width, height = decoded.lib, *size
    channels = len(mode)
    view = lib.avifImageCreateEmpty()
    try:
        decoded.check(lib.avifDecoderNthImage(decoded.decoder, 0), "decode the AVIF image data")
        image = decoded.decoder.contents.image
        if not view:
            raise MemoryError("libavif cannot allocate an image")
        for top in range(0, height, rows):
            count = min(rows, height - top)
            first = max(0, top - _MARGIN) & ~1
            end = min(height, top + count + _MARGIN)
            rect = _CropRect(0, first, width, end - first)
            decoded.check(lib.avifImageSetViewRect(view, image, ctypes.byref(rect)), "cut the image")
            rgb = _RGBImage()
            lib.avifRGBImageSetDefaults(ctypes.byref(rgb), view)  # Pillow's settings but depth, format
            rgb.depth, rgb.format, rgb.rowBytes = 8, _RGB_FORMAT[mode], width * channels
            pixels = bytearray(rgb.rowBytes * rect.height)
            holder = (ctypes.c_uint8 * len(pixels)).from_buffer(pixels)
            rgb.pixels = ctypes.addressof(holder)
            decoded.check(lib.avifImageYUVToRGB(view, ctypes.byref(rgb)), "convert the image to RGB")
            del holder
            start = (top - first) * rgb.rowBytes
            band = memoryview(pixels)[start : start + count * rgb.rowBytes]
            # Pillow's hints name bytes; any buffer works (as in formats/webp.py).
            yield Image.frombuffer(mode, (width, count), band, "raw", mode, 0, 1)  # type: ignore[arg-type]
            del band, pixels
    finally:
        if view:
            lib.avifImageDestroy(view)
        decoded.close()


def _plugin_bands(im: Image.Image, data: bytes, rows: int) -> Iterator[Image.Image] | None:
    """Return the first frame cut into bands from the plugin's RGB from libavif; None if not possible.

    A decoder of our own (the one Pillow's plugin makes, same settings) returns the RGB bytes and is
    dropped, and the bytes are cut into bands: the peak is libavif's conversion (YUV + its RGB +
    the bytes copy). Taken when libavif cannot be called directly.
    """
    if im.mode not in ("RGB", "RGBA"):
        return None
    make = getattr(getattr(AvifImagePlugin, "_avif", None), "AvifDecoder", None)
    if make is None:
        return None
    decoder = make(data, AvifImagePlugin.DECODE_CODEC_CHOICE, AvifImagePlugin._get_default_max_threads())
    if decoder.get_info()[:3] != (im.size, getattr(im, "n_frames", 1), im.mode):
        return None

    def decode() -> tuple[Any, int]:
        nonlocal decoder
        pixels = decoder.get_frame(0)[0]
        decoder = None  # frees the YUV planes and dav1d's pictures before the bands are made
        return pixels, im.size[0] * len(im.mode)

    return buffer_bands(decode, im.mode, im.size, rows)
