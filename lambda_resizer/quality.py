"""Cheap image quality signals, computed on a small greyscale variant."""

from __future__ import annotations

import numpy as np
from PIL import Image


def brightness(grey: Image.Image) -> float:
    """Return the mean luma of a greyscale image, from 0.0 (black) to 1.0 (white).

    :param grey: an ``L`` image (ITU-R 601 luma, as ``Image.convert("L")`` makes it).
    :return: mean pixel value divided by 255, rounded to 4 decimals.
    """
    pixels = np.asarray(grey, dtype=np.float64)
    return round(float(pixels.mean()) / 255.0, 4) if pixels.size else 0.0


def blur_score(grey: Image.Image) -> float:
    """Return the variance of the 4-neighbour Laplacian of a greyscale image; higher is sharper.

    Only interior pixels are used (no padding), so a flat image scores exactly 0. The value
    depends on the image's scale: compare scores of images made at the same size.

    :param grey: an ``L`` image, normally the 256 px variant.
    :return: variance in squared 8-bit grey levels, rounded to 2 decimals.
    """
    p = np.asarray(grey, dtype=np.float32)
    if p.shape[0] < 3 or p.shape[1] < 3:
        return 0.0
    lap = p[:-2, 1:-1] + p[2:, 1:-1] + p[1:-1, :-2] + p[1:-1, 2:] - 4.0 * p[1:-1, 1:-1]
    return round(float(lap.var(dtype=np.float64)), 2)
