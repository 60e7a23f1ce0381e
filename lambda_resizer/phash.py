"""Perceptual hash, bit for bit the same as ``imagehash.phash``, with numpy only.

The Lambda ships Pillow and numpy; imagehash would add scipy and PyWavelets (~100 MB) for
one 32x32 DCT, so the DCT is a precomputed matrix product instead of ``scipy.fftpack.dct``.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

HASH_SIZE = 8
HIGHFREQ_FACTOR = 4
_IMG_SIZE = HASH_SIZE * HIGHFREQ_FACTOR


def _dct_matrix(n: int) -> np.ndarray:
    """Return the n x n matrix of scipy's unnormalised DCT-II, ``y = M @ x``.

    :param n: length of the transformed axis.
    :return: float64 array ``M[k, j] = 2 cos(pi k (2j + 1) / 2n)``.
    """
    k = np.arange(n, dtype=np.float64)[:, None]
    j = np.arange(n, dtype=np.float64)[None, :]
    return 2.0 * np.cos(np.pi * k * (2.0 * j + 1.0) / (2.0 * n))


# Only the 8 lowest frequencies are kept, so only 8 rows of the 32x32 matrix are needed.
_DCT_LOW = np.ascontiguousarray(_dct_matrix(_IMG_SIZE)[:HASH_SIZE])


def phash(image: Image.Image) -> str:
    """Return the 64-bit perceptual hash of an image as 16 lowercase hex characters.

    Same steps as ``str(imagehash.phash(image))`` (hash_size=8, highfreq_factor=4): grey,
    LANCZOS to 32x32, 2-D DCT-II, the 8x8 lowest frequencies compared with their median.
    The hex string reads the 64 bits row by row, most significant first.

    :param image: any Pillow image; it is converted to ``L`` the way imagehash does it.
    :return: e.g. ``"c3d1b0e8f0f8e0c1"``.
    """
    small = image.convert("L").resize((_IMG_SIZE, _IMG_SIZE), Image.Resampling.LANCZOS)
    pixels = np.asarray(small, dtype=np.float64)
    low = _DCT_LOW @ pixels @ _DCT_LOW.T
    # np.median's mean of the two middle values, without np.median's ~5 MB of lazy imports.
    middle = np.sort(low, axis=None)[31:33]
    bits = (low > (middle[0] + middle[1]) / 2).ravel()
    value = int.from_bytes(np.packbits(bits).tobytes(), "big")
    return f"{value:016x}"


def hamming(a: str, b: str) -> int:
    """Return the number of differing bits between two hex hashes of equal length.

    :param a: hex hash, as returned by :func:`phash`.
    :param b: hex hash of the same length.
    :return: 0 for identical hashes, up to 64 for 16-character hashes.
    """
    if len(a) != len(b):
        raise ValueError(f"hashes differ in length: {len(a)} and {len(b)} hex characters")
    return (int(a, 16) ^ int(b, 16)).bit_count()
