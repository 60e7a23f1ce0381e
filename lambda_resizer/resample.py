"""Resampling: SIMD where fast_image_resize reads the mode, else Pillow; each size from the one before.

Pillow's convolution is scalar (about 0.5 ns a tap on these machines) and was the largest share of
the core's time. fast_image_resize (Rust, the `cykooz-resizer` wheel) runs the same convolution
with AVX2/SSE4.1/NEON on Pillow's own pixel memory, 4-6x faster, with Pillow's filter shapes and
box geometry (its output is within 1 level of Pillow's; `tests/lambda_resizer/test_resample.py`).
It reads Pillow's image struct through `Image.getim()`, so its use is checked once per process
against Pillow on a small image; where the wheel is missing (there are no Linux aarch64 wheels)
or that check fails, Pillow resamples, luma with the recipe's filter and chroma by area average.
"""

from __future__ import annotations

import ctypes
import logging
from functools import cache
from typing import Any

import numpy as np
import PIL
from PIL import Image

try:
    from cykooz_resizer import CropBox, FilterType, ResizeAlg, ResizeOptions
    from cykooz_resizer.rust_lib import PilImageWrapper, RustResizer
except ImportError:  # pragma: no cover - a dependency where it has wheels; Pillow is the fallback
    RustResizer = None

logger = logging.getLogger(__name__)

# Box-reduce by an integer factor before the final resample, leaving a ratio of at least this
# (Pillow's reducing_gap). 1.0 is the fastest; on the two benchmark PNGs it costs 3-8 dB against
# a plain resample of the full image, and they stay above 41 dB.
REDUCING_GAP = 1.0

#: Modes fast_image_resize reads from Pillow's memory as they are (4-byte pixels or 1-byte L).
#: RGBA is resampled premultiplied, as Pillow does; LA, I;16, I, F and CMYK stay with Pillow.
SIMD_MODES = frozenset({"L", "RGB", "YCbCr", "RGBA"})

#: Pillow's filters as fast_image_resize names them (Pillow's BICUBIC is Catmull-Rom, a = -0.5).
_SIMD_FILTERS: dict[Image.Resampling, str] = {
    Image.Resampling.LANCZOS: "lanczos3",
    Image.Resampling.BICUBIC: "catmull_rom",
    Image.Resampling.BILINEAR: "bilinear",
    Image.Resampling.BOX: "box",
}


def integer_reduce(
    im: Image.Image, size: tuple[int, int], box: tuple[float, float, float, float] | None
) -> tuple[Image.Image, tuple[float, float, float, float] | None]:
    """Return the image box-averaged by the integer factor that keeps ``REDUCING_GAP``, and its box."""
    area = box or (0, 0, *im.size)
    factor = int(min((area[2] - area[0]) / size[0], (area[3] - area[1]) / size[1]) / REDUCING_GAP)
    if factor < 2 or box not in (None, (0, 0, *im.size)):
        return im, box
    return im.reduce(factor), (0, 0, im.width / factor, im.height / factor)


def resize(
    im: Image.Image,
    size: tuple[int, int],
    resample: Image.Resampling,
    box: tuple[float, float, float, float] | None = None,
    reducing_gap: float | None = None,
) -> Image.Image:
    """Return the ``box`` of ``im`` (all of it by default) resampled to ``size``, as ``Image.resize`` would.

    SIMD where :func:`simd_usable` says so for this mode and filter, else Pillow. With
    ``reducing_gap``, an integer box reduction comes first, as in Pillow.
    """
    area = box or (0.0, 0.0, float(im.width), float(im.height))
    outside = area[0] < 0 or area[1] < 0 or area[2] > im.width or area[3] > im.height
    # Downscaling only: enlarging, fast_image_resize runs the vertical pass first and clips its
    # overshoot elsewhere than Pillow (up to 20 levels apart); empty boxes and sizes are Pillow's
    # to refuse or fill. The core never enlarges.
    shrinks = 0 < size[0] <= area[2] - area[0] and 0 < size[1] <= area[3] - area[1]
    if outside or not shrinks or not simd_usable(im.mode, resample):
        return im.resize(size, resample, box=box, reducing_gap=reducing_gap)
    if reducing_gap is not None:
        factor_x = int((area[2] - area[0]) / size[0] / reducing_gap) or 1
        factor_y = int((area[3] - area[1]) / size[1] / reducing_gap) or 1
        if factor_x > 1 or factor_y > 1:
            if area[0] or area[1]:  # Pillow reduces a margin around the box, on its own grid
                return im.resize(size, resample, box=box, reducing_gap=reducing_gap)
            im = im.reduce((factor_x, factor_y))
            area = (area[0] / factor_x, area[1] / factor_y, area[2] / factor_x, area[3] / factor_y)
    return _simd_resize(im, size, resample, area)


def _simd_resize(
    im: Image.Image,
    size: tuple[int, int],
    resample: Image.Resampling,
    area: tuple[float, float, float, float],
) -> Image.Image:
    """Return ``area`` of ``im`` resampled to ``size`` by fast_image_resize, in a new image of its mode."""
    im.load()
    options = ResizeOptions(
        resize_alg=ResizeAlg.convolution(FilterType[_SIMD_FILTERS[resample]]),
        use_alpha=im.mode == "RGBA",  # premultiplied, as Pillow resamples RGBA; the rest has no alpha
    )
    if area != (0, 0, im.width, im.height):
        options.crop_box = CropBox(area[0], area[1], area[2] - area[0], area[3] - area[1])
    out = Image.new(im.mode, size)
    # The library reads both images' memory with the GIL released and holds the Python images,
    # not their cores: these references keep the pixels alive even if another thread closes one.
    cores = (im.im, out.im)
    # A resizer keeps its largest buffer for the next call: a new one each time frees it at once
    # (and threads never share one).
    RustResizer().resize_pil(PilImageWrapper(im), PilImageWrapper(out), options.rust_options)
    del cores
    out.info = im.info.copy()
    return out


def simd_usable(mode: str, resample: Image.Resampling) -> bool:
    """Return whether this mode and filter are resampled by fast_image_resize in this process."""
    return mode in SIMD_MODES and resample in _SIMD_FILTERS and simd_checked()


@cache
def simd_checked() -> bool:
    """Return whether fast_image_resize is installed and gives Pillow's pixels here (checked once)."""
    if RustResizer is None:
        logger.info("cykooz-resizer is not installed: Pillow resamples (scalar)")
        return False
    try:
        # The struct is checked from Python first: a layout the library misreads would crash the
        # process inside it (a bad pointer), not raise or differ.
        failed = _layout_mismatch() or _simd_mismatch()
    except Exception as exc:  # an ABI it cannot read raises, not only differs
        failed = f"{type(exc).__name__}: {exc}"
    if failed:
        logger.warning("fast_image_resize disagrees with Pillow here (%s): Pillow resamples", failed)
    return not failed


class _ImagingMemory(ctypes.Structure):
    """The head of Pillow's ImagingMemoryInstance (Imaging.h, Pillow >= 12) as fast_image_resize reads it."""

    _fields_ = [
        ("mode", ctypes.c_int),
        ("type", ctypes.c_int),
        ("depth", ctypes.c_int),
        ("bands", ctypes.c_int),
        ("xsize", ctypes.c_int),
        ("ysize", ctypes.c_int),
        ("palette", ctypes.c_void_p),
        ("image8", ctypes.c_void_p),  # rows of 1-byte pixels (L)
        ("image32", ctypes.c_void_p),  # rows of 4-byte pixels (RGB, YCbCr, RGBA)
    ]


def _layout_mismatch() -> str:
    """Return how Pillow's image struct differs from the layout fast_image_resize reads, or ''."""
    version = str(PIL.__version__)  # what the library itself reads to pick a layout
    if int(version.split(".")[0]) < 12:  # there it reads an older layout
        return f"Pillow {version}"
    prototype = ctypes.PYFUNCTYPE(ctypes.c_void_p, ctypes.py_object, ctypes.c_char_p)
    get_pointer = prototype(("PyCapsule_GetPointer", ctypes.pythonapi))  # not the shared one's types
    for mode, value in (("L", 201), ("YCbCr", (11, 22, 33)), ("RGBA", (44, 55, 66, 77))):
        canary = Image.new(mode, (37, 5))
        canary.putpixel((1, 2), value)
        head = _ImagingMemory.from_address(get_pointer(canary.getim(), b"Pillow Imaging"))
        rows = head.image8 if mode == "L" else head.image32
        if (head.xsize, head.ysize, head.bands) != (37, 5, len(canary.getbands())) or not rows:
            return f"{mode}: Pillow's image struct is not the layout the library reads"
        # Only now are its pointers followed: the third row, its second pixel.
        row = ctypes.cast(rows, ctypes.POINTER(ctypes.c_void_p))[2]
        size = 1 if mode == "L" else 4
        pixel = bytes((ctypes.c_uint8 * size).from_address(row + size))
        expected = bytes([value]) if isinstance(value, int) else bytes(value)
        if pixel[: len(expected)] != expected:
            return f"{mode}: a pixel read through Pillow's row pointers is {pixel!r}, not {expected!r}"
    return ""


def _simd_mismatch() -> str:
    """Return what differs between fast_image_resize and Pillow on a small test image, or ''."""
    ramp = np.add.outer(np.arange(45), np.arange(67))
    texture = (np.multiply.outer(np.arange(45), 7919 * np.ones(67, int)) + np.arange(67) * 104729) % 251
    pixels = np.dstack([ramp, 255 - ramp, texture, ramp // 2 + 100]).astype(np.uint8)
    samples = {
        "L": Image.fromarray(np.ascontiguousarray(pixels[..., 2])),
        "YCbCr": Image.fromarray(np.ascontiguousarray(pixels[..., :3]), "RGB").convert("YCbCr"),
        "RGBA": Image.fromarray(pixels, "RGBA"),
    }
    box = (1.5, 0.25, 60.75, 44.0)  # a fractional box: the geometry is checked too
    for mode, sample in samples.items():
        ours = _simd_resize(sample, (23, 17), Image.Resampling.LANCZOS, box)
        theirs = sample.resize((23, 17), Image.Resampling.LANCZOS, box=box)
        # Rounding differs by a level or two (more where alpha is low); a misread layout by far more.
        largest, mean = _errors(ours, theirs)
        if largest > 4 or mean > 0.5:
            return f"{mode}: largest difference {largest}, mean {mean:.2f}"
    return ""


def _errors(a: Image.Image, b: Image.Image) -> tuple[int, float]:
    """Return the largest and the mean absolute difference of two images' samples."""
    difference: Any = np.abs(np.asarray(a, dtype=np.int16) - np.asarray(b, dtype=np.int16))
    return int(difference.max()), float(difference.mean())


def resample_ycc(
    im: Image.Image,
    size: tuple[int, int],
    resample: Image.Resampling,
    box: tuple[float, float, float, float] | None = None,
    reducing_gap: float | None = None,
) -> Image.Image:
    """Return a YCbCr image resampled to ``size``.

    With SIMD, all three planes in one pass with ``resample`` (cheaper than Pillow's luma alone).
    Without, luma with ``resample`` and chroma by area averaging: both outputs (JPEG and lossy
    WebP) store chroma at half resolution and the eye barely sees chroma detail, so Pillow's
    windowed sinc is spent on luma only, a third of the work.
    """
    if simd_usable("YCbCr", resample):
        return resize(im, size, resample, box, reducing_gap)
    y, cb, cr = im.split()
    if box is None and ((im.width + 1) // 2, (im.height + 1) // 2) == size:
        cb, cr = cb.reduce(2), cr.reduce(2)
    else:
        cb, cr = (c.resize(size, Image.Resampling.BOX, box=box) for c in (cb, cr))
    return Image.merge("YCbCr", (y.resize(size, resample, box=box, reducing_gap=reducing_gap), cb, cr))


def resample_from(made: list[Image.Image], size: tuple[int, int], resample: Image.Resampling) -> Image.Image:
    """Return an image of ``size`` resampled from the smallest image in ``made`` that covers it."""
    covering = [img for img in made if img.width >= size[0] and img.height >= size[1]]
    source = min(covering, key=lambda img: img.width * img.height) if covering else made[0]
    if source.size == size:
        return source
    if source.mode == "YCbCr":
        return resample_ycc(source, size, resample)
    return resize(source, size, resample)
