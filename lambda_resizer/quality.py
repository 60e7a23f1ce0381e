"""Cheap image quality signals, computed on the 256 px signal image."""

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


#: Gradient energy (squared grey levels) that 8-bit rounding and JPEG noise alone make is ~0.3-1:
#: the floor keeps a flat image (nothing but that noise) from scoring as sharp as pixel noise, and a
#: heavy blur on the noise floor well under the threshold (measured: at most 0.51 for a blur of
#: sigma 12 px, 5% of the side). It costs a quarter-contrast photo at most 30% of its score.
GRADIENT_FLOOR = 4.0
#: ITU-R 601 luma weights (what ``Image.convert("L")`` uses), applied in floating point.
_LUMA = np.array([0.299, 0.587, 0.114])


def blur_score(image: Image.Image) -> float:
    """Return how sharp an image is, independent of its resolution and contrast; higher is sharper.

    The score is the variance of the 4-neighbour Laplacian over the mean squared gradient (plus
    :data:`GRADIENT_FLOOR`): second derivatives against first ones, i.e. how fine the finest edges
    are, in the measured image's pixels. Scaling the contrast or the brightness leaves it unchanged
    (the variance of the Laplacian alone moves with contrast squared: a dim sharp photo read as
    blurry), and measured on the 256 px signal image it is the same for the same picture at any
    upload size. A Gaussian blur of sigma ``s`` working pixels brings it down roughly as ``0.7 / s**2``:
    sharp photos score 2.2-3.3, sigma 1 px 0.5-0.93, pixel noise ~4, a flat image 0.

    Only interior pixels are used (no padding), so a flat image scores exactly 0.

    :param image: the 256 px signal image, ``RGB`` (luma is taken in floating point) or ``L``.
    :return: the ratio, rounded to 4 decimals.
    """
    pixels = np.asarray(image, dtype=np.float64)
    p = pixels @ _LUMA if pixels.ndim == 3 else pixels
    if p.shape[0] < 3 or p.shape[1] < 3:
        return 0.0
    lap = p[:-2, 1:-1] + p[2:, 1:-1] + p[1:-1, :-2] + p[1:-1, 2:] - 4.0 * p[1:-1, 1:-1]
    gradient = np.square(np.diff(p, axis=1)).mean() + np.square(np.diff(p, axis=0)).mean()
    return round(float(lap.var(dtype=np.float64) / (gradient + GRADIENT_FLOOR)), 4)
