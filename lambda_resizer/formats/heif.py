"""HEIF (HEIC): the primary image decoded by libheif to its YCbCr planes only, converted a band at a time.

pillow-heif's plugin has libheif convert the whole image to RGB (libde265's picture, libheif's
YCbCr planes and the RGB output at once) and then copies it into a Pillow image. Here the libheif
pillow-heif bundles (called through ctypes; its C API is opaque handles and functions) decodes
the primary image as the plugin does (same context settings, libheif applying the rotation,
mirroring and crop) but to its own YCbCr planes, and each band is converted to RGB(A) in numpy
the way libheif's colour conversion does it (``yuv2rgb.cc``: nearest-neighbour chroma, the
matrix and range of the decoded image's NCLX), so the full-size RGB never exists: the peak is the
file, the planes (1.5 bytes a pixel for 8-bit 4:2:0, twice that above 8 bits) and one band.

Another libheif, an NCLX matrix libheif converts specially (identity, YCgCo, ...), or premultiplied
alpha take the plugin's route (``_plugin_bands``: libheif's whole RGB cut into bands).
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable, Iterator
from functools import cache
from typing import Any

import numpy as np
from PIL import Image

from . import Signature, bound_library, buffer_bands, release_free_memory

#: libheif versions whose ``heif_decoding_options`` layout (version 10 of the struct) is below.
_VERIFIED = ("1.23.",)
_COLORSPACE_YCBCR, _COLORSPACE_MONOCHROME, _UNDEFINED = 0, 2, 99
_CHROMA_MONOCHROME, _CHROMA_420, _CHROMA_422, _CHROMA_444 = 0, 1, 2, 3
_YCBCR_CHROMAS = (_CHROMA_420, _CHROMA_422, _CHROMA_444)
_Y, _CB, _CR, _ALPHA = 0, 1, 2, 6
_COLOR_PROFILE_DOES_NOT_EXIST = 10  # heif_error_Color_profile_does_not_exist (heif_error.h)
#: Kr, Kb of the NCLX matrix coefficients libheif converts with a linear matrix (nclx.cc
#: ``get_Kr_Kb``; 10, BT.2020 constant luminance, is converted as 9 there too). Others (2,
#: unspecified, and 3) get libheif's BT.601 defaults; 0, 8, 11, 12, 13, 14, 16 are not handled here.
_KR_KB = {1: (0.2126, 0.0722), 4: (0.30, 0.11), 5: (0.299, 0.114), 6: (0.299, 0.114),
          7: (0.212, 0.087), 9: (0.2627, 0.0593), 10: (0.2627, 0.0593)}  # fmt: skip
_DEFAULT_MATRICES = (2, 3)
#: Pixels converted at once inside a band: numpy's temporaries stay small next to the band.
_CHUNK_PIXELS = 1 << 18


class _Error(ctypes.Structure):
    _fields_ = [("code", ctypes.c_int), ("subcode", ctypes.c_int), ("message", ctypes.c_char_p)]


class _ConversionOptions(ctypes.Structure):
    _fields_ = [
        ("version", ctypes.c_uint8),
        ("preferred_chroma_downsampling_algorithm", ctypes.c_int),
        ("preferred_chroma_upsampling_algorithm", ctypes.c_int),
        ("only_use_preferred_chroma_algorithm", ctypes.c_uint8),
    ]


class _DecodingOptions(ctypes.Structure):
    """``heif_decoding_options`` up to version 10 (libheif allocates it; later fields are appended)."""

    _fields_ = [
        ("version", ctypes.c_uint8),
        ("ignore_transformations", ctypes.c_uint8),
        ("start_progress", ctypes.c_void_p),
        ("on_progress", ctypes.c_void_p),
        ("end_progress", ctypes.c_void_p),
        ("progress_user_data", ctypes.c_void_p),
        ("convert_hdr_to_8bit", ctypes.c_uint8),
        ("strict_decoding", ctypes.c_uint8),
        ("decoder_id", ctypes.c_char_p),
        ("color_conversion_options", _ConversionOptions),
        ("cancel_decoding", ctypes.c_void_p),
        ("color_conversion_options_ext", ctypes.c_void_p),
        ("ignore_sequence_editlist", ctypes.c_int),
        ("output_image_nclx_profile", ctypes.c_void_p),
        ("num_library_threads", ctypes.c_int),
        ("num_codec_threads", ctypes.c_int),
        ("autocorrect_broken_input", ctypes.c_uint8),
        ("output_image_nclx_profile_passthrough", ctypes.c_uint8),
    ]


class _Nclx(ctypes.Structure):
    _fields_ = [
        ("version", ctypes.c_uint8),
        ("color_primaries", ctypes.c_int),
        ("transfer_characteristics", ctypes.c_int),
        ("matrix_coefficients", ctypes.c_int),
        ("full_range_flag", ctypes.c_uint8),
    ]


@cache
def _libheif() -> ctypes.CDLL | None:
    """Return the libheif pillow-heif loaded, if it is a version checked here; else None."""
    p, handle_p, size_t = ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p), ctypes.c_size_t
    options = ctypes.POINTER(_DecodingOptions)
    functions: list[Signature] = [
        ("heif_context_alloc", p, []),
        ("heif_context_free", None, [p]),
        ("heif_context_read_from_memory_without_copy", _Error, [p, ctypes.c_char_p, size_t, p]),
        ("heif_context_set_max_decoding_threads", None, [p, ctypes.c_int]),
        ("heif_context_get_primary_image_handle", _Error, [p, handle_p]),
        ("heif_image_handle_release", None, [p]),
        ("heif_image_handle_get_width", ctypes.c_int, [p]),
        ("heif_image_handle_get_height", ctypes.c_int, [p]),
        ("heif_image_handle_has_alpha_channel", ctypes.c_int, [p]),
        ("heif_image_handle_is_premultiplied_alpha", ctypes.c_int, [p]),
        ("heif_decoding_options_alloc", options, []),
        ("heif_decoding_options_free", None, [options]),
        ("heif_decode_image", _Error, [p, handle_p, ctypes.c_int, ctypes.c_int, options]),
        ("heif_image_release", None, [p]),
        ("heif_image_get_colorspace", ctypes.c_int, [p]),
        ("heif_image_get_chroma_format", ctypes.c_int, [p]),
        ("heif_image_get_width", ctypes.c_int, [p, ctypes.c_int]),
        ("heif_image_get_height", ctypes.c_int, [p, ctypes.c_int]),
        ("heif_image_get_bits_per_pixel_range", ctypes.c_int, [p, ctypes.c_int]),
        ("heif_image_has_channel", ctypes.c_int, [p, ctypes.c_int]),
        ("heif_image_get_plane_readonly2", p, [p, ctypes.c_int, ctypes.POINTER(size_t)]),
        ("heif_image_get_nclx_color_profile", _Error, [p, ctypes.POINTER(ctypes.POINTER(_Nclx))]),
        ("heif_nclx_color_profile_free", None, [ctypes.POINTER(_Nclx)]),
    ]
    return bound_library("pillow_heif", "libheif", functions, version=("heif_get_version", _VERIFIED))


def _check(error: _Error, doing: str) -> None:
    """Raise OSError with libheif's message when ``error`` is not heif_error_Ok."""
    if error.code != 0:
        message = " ".join((error.message or b"").decode(errors="replace").split())  # one line
        raise OSError(f"libheif cannot {doing}: {message}")


class _Decoded:
    """libheif's context, primary handle and decoded image; released once, when closed or collected."""

    def __init__(self, lib: ctypes.CDLL, data: bytes) -> None:
        self.lib, self.data = lib, data  # libheif reads ``data`` in place: it must outlive the context
        self.context: int | None = lib.heif_context_alloc()
        self.handle = ctypes.c_void_p()
        self.image = ctypes.c_void_p()
        if not self.context:
            raise MemoryError("libheif cannot allocate a context")

    def close(self) -> None:
        if self.image:
            self.lib.heif_image_release(self.image)
            self.image = ctypes.c_void_p()
        if self.handle:
            self.lib.heif_image_handle_release(self.handle)
            self.handle = ctypes.c_void_p()
        if self.context:
            self.lib.heif_context_free(self.context)
            self.context = None

    __del__ = close

    def plane(self, channel: int, bits: int) -> np.ndarray:
        """Return a decoded plane as a read-only array over libheif's memory (uint16 above 8 bits)."""
        lib, image = self.lib, self.image
        stride = ctypes.c_size_t()
        pointer = lib.heif_image_get_plane_readonly2(image, channel, ctypes.byref(stride))
        width, height = lib.heif_image_get_width(image, channel), lib.heif_image_get_height(image, channel)
        if not pointer or width <= 0 or height <= 0:
            raise OSError(f"libheif decoded no plane {channel}")
        size = 1 if bits == 8 else 2
        buffer = (ctypes.c_uint8 * (stride.value * (height - 1) + width * size)).from_address(pointer)
        dtype = np.uint8 if size == 1 else np.dtype("<u2")
        array = np.ndarray((height, width), dtype, buffer, 0, (stride.value, size))
        array.flags.writeable = False
        return array


def planar() -> bool:
    """Return whether HEICs are decoded to their planes here (libheif can be called), not by the plugin."""
    return _libheif() is not None


def bands(im: Image.Image, data: bytes, rows: int) -> Iterator[Image.Image] | None:
    """Return the primary image as bands of ``rows`` rows, top to bottom; None if not possible.

    Decoded as pillow-heif's plugin decodes it (libheif applying the rotation and mirroring,
    scaled to 8 bits), so the pixels are the plugin's. Before the decode, pillow-heif's copy of
    the file held by ``im`` is dropped: ``im`` keeps its header facts but can no longer be loaded.

    :param im: the opened HEIF (pillow-heif's plugin), not loaded.
    :param data: the file's bytes.
    :param rows: band height.
    :raises OSError: libheif cannot decode the image data.
    """
    if im.format != "HEIF" or im.mode not in ("RGB", "RGBA", "L"):
        return None
    lib = _libheif()
    if lib is None or not isinstance(data, bytes):
        return _plugin_bands(im, data, rows)
    from pillow_heif import options  # loaded already: it opened ``im``

    decoded = _Decoded(lib, data)
    context = decoded.context
    _check(lib.heif_context_read_from_memory_without_copy(context, data, len(data), None), "read the file")
    lib.heif_context_set_max_decoding_threads(context, options.DECODE_THREADS)
    _check(lib.heif_context_get_primary_image_handle(context, ctypes.byref(decoded.handle)), "find the image")
    handle = decoded.handle
    size = (lib.heif_image_handle_get_width(handle), lib.heif_image_handle_get_height(handle))
    alpha = bool(lib.heif_image_handle_has_alpha_channel(handle))
    if (
        size != im.size
        or alpha != (im.mode == "RGBA")
        or lib.heif_image_handle_is_premultiplied_alpha(handle)
        or options.DISABLE_SECURITY_LIMITS
    ):
        decoded.close()
        return _plugin_bands(im, data, rows)
    settings = lib.heif_decoding_options_alloc()
    if not settings or settings.contents.version < 10:  # an older struct: its fields are not these
        lib.heif_decoding_options_free(settings)
        decoded.close()
        return _plugin_bands(im, data, rows)
    if getattr(im, "_heif_file", None) is not None:
        im._heif_file = None  # type: ignore[attr-defined]  # the plugin's file copy, freed before the decode
        release_free_memory()
    # The planes as decoded (colorspace and chroma undefined), tagged with their own NCLX instead of
    # converted to sRGB's: nothing is converted inside libheif. The decoder is the plugin's.
    settings.contents.output_image_nclx_profile_passthrough = 1
    preferred = options.PREFERRED_DECODER.get("HEIF", "")
    settings.contents.decoder_id = preferred.encode() if preferred else None
    try:
        error = lib.heif_decode_image(handle, ctypes.byref(decoded.image), _UNDEFINED, _UNDEFINED, settings)
    finally:
        lib.heif_decoding_options_free(settings)
    _check(error, "decode the HEIF image data")
    convert = _converter(decoded, im.mode, size)
    if convert is None:
        decoded.close()
        fallback = _plugin_bands(im, data, rows)
        if fallback is None:  # and ``im`` can no longer load itself: its copy of the file is gone
            raise OSError(
                f"pillow-heif decodes the primary image as other than its header's {size} {im.mode}"
            )
        return fallback
    return _converted_bands(decoded, convert, im.mode, size, rows)


#: Converts rows [top, top + count) of the decoded planes into a (count, width, channels) uint8 array.
_Convert = Callable[[int, int], np.ndarray]


def _converter(decoded: _Decoded, mode: str, size: tuple[int, int]) -> _Convert | None:
    """Return the band conversion libheif would apply to this decoded image, or None (not handled here)."""
    lib, image = decoded.lib, decoded.image
    colorspace, chroma = lib.heif_image_get_colorspace(image), lib.heif_image_get_chroma_format(image)
    bits = lib.heif_image_get_bits_per_pixel_range(image, _Y)
    decoded_size = (lib.heif_image_get_width(image, _Y), lib.heif_image_get_height(image, _Y))
    if not 8 <= bits <= 14 or decoded_size != size:
        return None
    alpha = None
    if mode == "RGBA":
        has_alpha = lib.heif_image_has_channel(image, _ALPHA)
        if not has_alpha or lib.heif_image_get_bits_per_pixel_range(image, _ALPHA) != bits:
            return None
        alpha = decoded.plane(_ALPHA, bits)
        if alpha.shape != size[::-1]:
            raise OSError(f"libheif decoded an alpha plane of {alpha.shape} for {size}")
    luma = decoded.plane(_Y, bits)
    shift = bits - 8  # libheif's convert_hdr_to_8bit (hdr_sdr.cc Op_to_sdr_planes): no rounding

    def to_8bit(plane: np.ndarray) -> np.ndarray:
        return plane.astype(np.int32) >> shift if shift else plane.astype(np.int32)

    if colorspace == _COLORSPACE_MONOCHROME and chroma == _CHROMA_MONOCHROME and mode == "L":
        return lambda top, count: to_8bit(luma[top : top + count]).astype(np.uint8)[..., None]
    if mode == "L" or colorspace != _COLORSPACE_YCBCR or chroma not in _YCBCR_CHROMAS:
        return None
    nclx = ctypes.POINTER(_Nclx)()
    error = lib.heif_image_get_nclx_color_profile(image, ctypes.byref(nclx))
    if error.code == _COLOR_PROFILE_DOES_NOT_EXIST:
        # libheif answers this for the "undefined" profile (2/2/2, full range: no colr box and a
        # stream without colour values) and converts such an image with its defaults: BT.601 full range.
        matrix, full_range = 2, True
    else:
        _check(error, "read the colour profile")
        try:
            matrix, full_range = nclx.contents.matrix_coefficients, bool(nclx.contents.full_range_flag)
        finally:
            lib.heif_nclx_color_profile_free(nclx)
    if matrix not in _KR_KB and matrix not in _DEFAULT_MATRICES:
        return None
    coefficients = _coefficients(matrix)
    cb, cr = decoded.plane(_CB, bits), decoded.plane(_CR, bits)
    shift_x = 1 if chroma in (_CHROMA_420, _CHROMA_422) else 0
    shift_y = 1 if chroma == _CHROMA_420 else 0
    subsampled = (-(-size[1] >> shift_y), -(-size[0] >> shift_x))  # rows, columns (rounded up)
    if any(have < need for plane in (cb, cr) for have, need in zip(plane.shape, subsampled, strict=True)):
        raise OSError(f"libheif decoded chroma planes of {cb.shape} and {cr.shape} for {size}, short")
    # libheif's cheapest pipeline (colorconversion.cc, Dijkstra over the ops' costs): full-range
    # 4:2:0 goes through Op_YCbCr420_to_RGB24/32 (integer; above 8 bits after Op_to_sdr_planes),
    # everything else through Op_YCbCr_to_RGB (float, at the planes' depth, then Op_to_sdr_planes).
    integer = chroma == _CHROMA_420 and full_range
    r_cr, g_cb, g_cr, b_cb = (_lround(256 * c) for c in coefficients)  # its 8-bit fixed point
    width = size[0]

    def convert(top: int, count: int) -> np.ndarray:
        out = np.empty((count, width, len(mode)), np.uint8)
        step = max(2, (_CHUNK_PIXELS // width) & ~1)
        columns = np.arange(width) >> shift_x  # nearest-neighbour chroma, as libheif's ops read it
        for start in range(top, top + count, step):
            end = min(top + count, start + step)
            first, last = start >> shift_y, ((end - 1) >> shift_y) + 1
            rows = (np.arange(start, end) >> shift_y) - first
            rgb = out[start - top : end - top]
            if integer:
                y = to_8bit(luma[start:end])
                u, v = to_8bit(cb[first:last]) - 128, to_8bit(cr[first:last]) - 128
                offsets = ((r_cr * v + 128) >> 8, (g_cb * u + g_cr * v + 128) >> 8, (b_cb * u + 128) >> 8)
                for channel, offset in enumerate(offsets):
                    rgb[..., channel] = np.clip(y + offset[rows][:, columns], 0, 255)
            else:  # at the planes' depth, then scaled to 8 bits (the cheaper pipeline found first)
                half = 1 << (bits - 1)
                u, v = (plane[first:last].astype(np.int32)[rows][:, columns] - half for plane in (cb, cr))
                _float_rgb(rgb, luma[start:end], u, v, coefficients, full_range, bits)
            if alpha is not None:
                rgb[..., 3] = to_8bit(alpha[start:end])
        return out

    return convert


def _coefficients(matrix: int) -> tuple[np.float32, np.float32, np.float32, np.float32]:
    """Return libheif's YCbCr->RGB coefficients (r_cr, g_cb, g_cr, b_cb) in its float32 arithmetic."""
    if matrix not in _KR_KB:  # YCbCr_to_RGB_coefficients::defaults()
        return np.float32(1.402), np.float32(-0.344136), np.float32(-0.714136), np.float32(1.772)
    kr, kb = (np.float32(k) for k in _KR_KB[matrix])
    one, two = np.float32(1), np.float32(2)
    return (
        two * (-kr + one),
        two * kb * (-kb + one) / (kb + kr - one),
        two * kr * (-kr + one) / (kb + kr - one),
        two * (-kb + one),
    )


def _lround(value: np.float32) -> int:
    """C's ``std::lround``: to nearest, halves away from zero."""
    magnitude = int(np.floor(abs(float(value)) + 0.5))
    return magnitude if value >= 0 else -magnitude


def _float_rgb(
    out: np.ndarray,
    y: np.ndarray,
    u: np.ndarray,
    v: np.ndarray,
    coefficients: tuple[np.float32, np.float32, np.float32, np.float32],
    full_range: bool,
    bits: int,
) -> None:
    """Write Op_YCbCr_to_RGB's RGB of these ``bits``-bit samples (chroma upsampled, less half its range)
    into ``out``, scaled to 8 bits as Op_to_sdr_planes does."""
    r_cr, g_cb, g_cr, b_cb = coefficients
    luma, cb, cr = y.astype(np.float32), u.astype(np.float32), v.astype(np.float32)
    if not full_range:
        luma = (luma - np.float32(16 << (bits - 8))) * np.float32(1.1689)
        cb *= np.float32(1.1429)
        cr *= np.float32(1.1429)
    top = (1 << bits) - 1
    for channel, value in enumerate((luma + r_cr * cr, luma + g_cb * cb + g_cr * cr, luma + b_cb * cb)):
        # clip_f_u16: (int32_t)(x + 0.5f), truncated toward zero, then clipped
        out[..., channel] = np.clip((value + np.float32(0.5)).astype(np.int32), 0, top) >> (bits - 8)


def _converted_bands(
    decoded: _Decoded, convert: _Convert, mode: str, size: tuple[int, int], rows: int
) -> Iterator[Image.Image]:
    """Yield the bands, each converted from the planes; libheif's image is released after the last."""
    width, height = size
    try:
        for top in range(0, height, rows):
            count = min(rows, height - top)
            pixels = convert(top, count)
            yield Image.frombuffer(mode, (width, count), pixels.reshape(count, -1), "raw", mode, 0, 1)
            del pixels
    finally:
        decoded.close()


def _plugin_bands(im: Image.Image, data: bytes, rows: int) -> Iterator[Image.Image] | None:
    """Return the primary image cut into bands from the RGB pillow-heif gets from libheif.

    pillow-heif's plugin copies libheif's decoded RGB (3 bytes a pixel) into a Pillow image (4 more);
    reading libheif's buffer a band of rows at a time leaves libheif's own decode as the peak: the
    YCbCr planes, libde265's picture buffers and the RGB output. Taken when libheif cannot be
    called directly or converts this image in a way not reproduced here.
    """
    import pillow_heif  # loaded already: it opened ``im``

    heif_file = pillow_heif.HeifFile(data, convert_hdr_to_8bit=True, hdr_to_16bit=True, remove_stride=False)
    primary = heif_file[heif_file.primary_index]
    if (primary.size, primary.mode) != (im.size, im.mode):
        return None

    def decode() -> tuple[Any, int]:
        return primary.data, primary.stride

    return buffer_bands(decode, im.mode, im.size, rows)
