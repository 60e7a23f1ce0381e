"""WebP: stills decoded by libwebp already scaled down, the way libjpeg's DCT scaling works for JPEG.

Pillow decodes every WebP through libwebp's animation decoder: two full RGBA canvases, a bytes
copy of one and then the image (16 bytes a pixel; 24 MP needed 400 MB). libwebp itself can
scale while decoding (``WebPDecoderOptions.use_scaling``): a lossy still then never exists at full
size (lossless ones keep one 32-bit ARGB plane inside libwebp). The library is the one Pillow's
``_webp`` module is linked against, called through ctypes; anything unexpected (no such library,
an animation, an ABI mismatch) returns None and Pillow's own path decodes the image. Image data
libwebp cannot decode after reading its header raises: Pillow's decoder is freed by then.
"""

from __future__ import annotations

import ctypes
from functools import cache

from PIL import Image, WebPImagePlugin

from . import Signature, bound_library, release_free_memory

_ABI_VERSION = 0x0209  # WEBP_DECODER_ABI_VERSION of libwebp 1.x
_MODE_RGB, _MODE_RGBA = 0, 1
#: libwebp's VP8StatusCode values a decode can end with, for messages.
_STATUS = {1: "out of memory", 3: "bitstream error", 4: "unsupported feature", 7: "not enough data"}


class _Features(ctypes.Structure):
    _fields_ = [
        ("width", ctypes.c_int),
        ("height", ctypes.c_int),
        ("has_alpha", ctypes.c_int),
        ("has_animation", ctypes.c_int),
        ("format", ctypes.c_int),
        ("pad", ctypes.c_uint32 * 5),
    ]


class _RGBABuffer(ctypes.Structure):
    _fields_ = [("rgba", ctypes.c_void_p), ("stride", ctypes.c_int), ("size", ctypes.c_size_t)]


class _YUVABuffer(ctypes.Structure):
    _fields_ = [
        *((name, ctypes.c_void_p) for name in ("y", "u", "v", "a")),
        *((name, ctypes.c_int) for name in ("y_stride", "u_stride", "v_stride", "a_stride")),
        *((name, ctypes.c_size_t) for name in ("y_size", "u_size", "v_size", "a_size")),
    ]


class _Buffers(ctypes.Union):
    _fields_ = [("RGBA", _RGBABuffer), ("YUVA", _YUVABuffer)]


class _DecBuffer(ctypes.Structure):
    _fields_ = [
        ("colorspace", ctypes.c_int),
        ("width", ctypes.c_int),
        ("height", ctypes.c_int),
        ("is_external_memory", ctypes.c_int),
        ("u", _Buffers),
        ("pad", ctypes.c_uint32 * 4),
        ("private_memory", ctypes.c_void_p),
    ]


_OPTION_NAMES = (
    "bypass_filtering", "no_fancy_upsampling", "use_cropping", "crop_left", "crop_top", "crop_width",
    "crop_height", "use_scaling", "scaled_width", "scaled_height", "use_threads", "dithering_strength",
    "flip", "alpha_dithering_strength",
)  # fmt: skip


class _Options(ctypes.Structure):
    _fields_ = [*((name, ctypes.c_int) for name in _OPTION_NAMES), ("pad", ctypes.c_uint32 * 5)]


class _Config(ctypes.Structure):
    _fields_ = [("input", _Features), ("output", _DecBuffer), ("options", _Options)]


@cache
def _libwebp() -> ctypes.CDLL | None:
    """Return the libwebp already loaded by Pillow's ``_webp`` module, or None."""
    config, features, i = ctypes.POINTER(_Config), ctypes.POINTER(_Features), ctypes.c_int
    functions: list[Signature] = [
        ("WebPInitDecoderConfigInternal", i, [config, i]),
        ("WebPGetFeaturesInternal", i, [ctypes.c_char_p, ctypes.c_size_t, features, i]),
        ("WebPDecode", i, [ctypes.c_char_p, ctypes.c_size_t, config]),
    ]
    return bound_library("PIL._webp", "libwebp", functions, skip=("libwebpdemux", "libwebpmux"))


def decode_scaled(im: Image.Image, data: bytes, size: tuple[int, int]) -> Image.Image | None:
    """Return the first (only) frame of a still WebP decoded straight to ``size``, or None.

    Once libwebp has read the header and will decode, Pillow's decoder of ``im`` is freed: it
    holds a copy of the whole file (``WebPAnimDecoder`` copies what it is given), which would
    otherwise sit beside the caller's bytes for the whole decode. libwebp reads the caller's
    bytes in place (ctypes passes the pointer), so they are the only copy while it decodes.

    :param im: the file opened by Pillow, not loaded: its pixels can no longer be loaded after a
        decode here (``im.load()`` fails), only its header facts (size, mode, info) remain.
    :param data: the file's bytes.
    :param size: the output size (libwebp averages the source pixels each output pixel covers).
    :return: an RGB or RGBA (the file has alpha) image of ``size``, or None when libwebp cannot be
        used for this file (``im`` then untouched, for Pillow's own path).
    :raises OSError: libwebp read the header but cannot decode the image data.
    """
    alpha = im.mode == "RGBA"
    lib = _libwebp()
    if lib is None:
        return None
    config = _Config()
    if not lib.WebPInitDecoderConfigInternal(ctypes.byref(config), _ABI_VERSION):
        return None
    if lib.WebPGetFeaturesInternal(data, len(data), ctypes.byref(config.input), _ABI_VERSION) != 0:
        return None
    if config.input.has_animation:
        return None
    width, height = size
    channels = 4 if alpha else 3
    stride = width * channels
    pixels = ctypes.create_string_buffer(stride * height)
    if size != (config.input.width, config.input.height):
        config.options.use_scaling = 1
        config.options.scaled_width, config.options.scaled_height = width, height
    config.output.colorspace = _MODE_RGBA if alpha else _MODE_RGB
    config.output.is_external_memory = 1
    config.output.u.RGBA.rgba = ctypes.cast(pixels, ctypes.c_void_p)
    config.output.u.RGBA.stride = stride
    config.output.u.RGBA.size = len(pixels)
    if isinstance(im, WebPImagePlugin.WebPImageFile) and hasattr(im, "_decoder"):
        del im._decoder  # Pillow's copy of the file (and its canvases): freed before the decode
        release_free_memory()
    status = lib.WebPDecode(data, len(data), ctypes.byref(config))
    if status != 0:
        reason = _STATUS.get(status, f"status {status}")
        raise OSError(f"libwebp cannot decode the WebP image data ({reason})")
    mode = "RGBA" if alpha else "RGB"
    # Pillow's hints name bytes; any buffer works, and the decoded one is shared, not copied.
    return Image.frombuffer(mode, size, pixels, "raw", mode, 0, 1)  # type: ignore[arg-type]
