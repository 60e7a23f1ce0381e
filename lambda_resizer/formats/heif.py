"""HEIF (HEIC): the frame libheif decodes handed on a band at a time, without Pillow's full-size copy.

pillow-heif's plugin copies libheif's decoded RGB (3 bytes a pixel) into a Pillow image (4 more);
reading libheif's buffer a band of rows at a time leaves libheif's own decode as the peak. libheif
decodes the whole frame (HEVC has no partial decode; a grid is assembled whole too), so that peak
stays: the YUV planes, libde265's picture buffers and the RGB output.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from PIL import Image

from . import buffer_bands


def bands(im: Image.Image, data: bytes, rows: int) -> Iterator[Image.Image] | None:
    """Return the primary image as bands of ``rows`` rows, top to bottom; None if not possible.

    Decoded as pillow-heif's plugin decodes it (8-bit, libheif applying the rotation and mirroring),
    so the pixels are the plugin's.

    :param im: the opened HEIF (pillow-heif's plugin), not loaded.
    :param data: the file's bytes.
    :param rows: band height.
    """
    if im.format != "HEIF" or im.mode not in ("RGB", "RGBA", "L"):
        return None
    import pillow_heif  # loaded already: it opened ``im``

    heif_file = pillow_heif.HeifFile(data, convert_hdr_to_8bit=True, hdr_to_16bit=True, remove_stride=False)
    primary = heif_file[heif_file.primary_index]
    if (primary.size, primary.mode) != (im.size, im.mode):
        return None

    def decode() -> tuple[Any, int]:
        return primary.data, primary.stride

    return buffer_bands(decode, im.mode, im.size, rows)
