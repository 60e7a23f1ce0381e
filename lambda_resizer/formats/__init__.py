"""Shrink-on-load decoding, one module per source format (as Pillow has one plugin per format)."""

from __future__ import annotations

import ctypes
import importlib
from collections.abc import Callable, Iterator
from functools import cache
from typing import Any, cast

from PIL import Image


def loaded_libraries(fragment: str) -> list[str]:
    """Return the paths of the shared libraries mapped into this process whose file name has ``fragment``.

    The libraries Pillow's and pillow-heif's modules are linked against are the ones to call
    through ctypes (same build, already loaded); they live under mangled names in the wheels.
    """
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if fragment in line}
    except OSError:
        return []
    return sorted(path for path in paths if fragment in path.rsplit("/", 1)[-1] and ".so" in path)


#: A C function's declaration for ctypes: name, result type (None: void), argument types.
Signature = tuple[str, Any, list[Any]]


def bound_library(
    loader: str,
    fragment: str,
    functions: list[Signature],
    *,
    version: tuple[str, tuple[str, ...]] | None = None,
    skip: tuple[str, ...] = (),
) -> ctypes.CDLL | None:
    """Return the shared library a Python module loads, its ``functions`` declared; None if it cannot be used.

    :param loader: the module whose import loads the library into this process (Pillow's ``_webp``).
    :param fragment: what the library's file name contains (``libwebp``).
    :param functions: the functions to declare; a library lacking one is not used.
    :param version: (the function returning its version string, the version prefixes the calls
        were checked against): another version is not used.
    :param skip: file-name prefixes of other libraries with the same fragment (``libwebpdemux``).
    """
    try:
        importlib.import_module(loader)
    except ImportError:
        return None
    for path in loaded_libraries(fragment):
        if path.rsplit("/", 1)[-1].startswith(skip):
            continue
        try:
            lib = ctypes.CDLL(path)
            if version is not None:
                get_version = getattr(lib, version[0])
                get_version.restype, get_version.argtypes = ctypes.c_char_p, []
                if not (get_version() or b"").decode(errors="replace").startswith(version[1]):
                    return None
            for name, restype, argtypes in functions:
                function = getattr(lib, name)
                function.restype, function.argtypes = restype, argtypes
            return lib
        except (OSError, AttributeError):
            continue
    return None


@cache
def _malloc_trim() -> Callable[[int], int] | None:
    """Return glibc's ``malloc_trim``, or None (another C library)."""
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return cast("Callable[[int], int]", trim)


def release_free_memory() -> None:
    """Give the C heap's free pages back to the system.

    A plugin's copy of the file is allocated from the heap, not mapped (glibc raises its mmap
    threshold after Pillow's temporary copies of the file are freed): freed, it would stay
    resident while the library maps its own buffers, and the peak would not drop.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def buffer_bands(
    decode: Callable[[], tuple[Any, int]], mode: str, size: tuple[int, int], rows: int
) -> Iterator[Image.Image]:
    """Yield a frame a library decoded into one buffer of packed rows as bands of ``rows`` rows.

    Each band is copied out of the buffer (``Image.frombuffer`` of the band's rows), so Pillow never
    holds a full-size copy beside the library's; the buffer is released after the last band.

    :param decode: returns (the decoded pixels: any buffer, bytes per row); called on the first band.
    :param mode: the buffer's mode, which is also Pillow's rawmode for it (RGB, RGBA, L).
    :param size: the frame's size.
    :param rows: band height (the last band may be shorter).
    """
    pixels, stride = decode()
    view = memoryview(pixels).cast("B")
    width, height = size
    if stride < width * len(mode) or len(view) < stride * (height - 1) + width * len(mode):
        raise OSError(f"decoded buffer of {len(view)} bytes is short for {width}x{height} {mode}")
    for top in range(0, height, rows):
        count = min(rows, height - top)
        rows_view = view[top * stride : (top + count) * stride]
        # Pillow's hints name bytes; any buffer works (as in formats/webp.py).
        band = Image.frombuffer(mode, (width, count), rows_view, "raw", mode, stride, 1)  # type: ignore[arg-type]
        yield band.copy() if band.readonly else band  # not a view into the buffer that is released
    del view, pixels
