"""Resampling: luma with the recipe's filter, chroma by area averaging, each size from the one before."""

from __future__ import annotations

from PIL import Image

# Box-reduce by an integer factor before the final resample, leaving a ratio of at least this
# (Pillow's reducing_gap). 1.0 is the fastest; on the two benchmark PNGs it costs 3-8 dB against
# a plain resample of the full image, and they stay above 41 dB.
REDUCING_GAP = 1.0


def integer_reduce(
    im: Image.Image, size: tuple[int, int], box: tuple[float, float, float, float] | None
) -> tuple[Image.Image, tuple[float, float, float, float] | None]:
    """Return the image box-averaged by the integer factor that keeps ``REDUCING_GAP``, and its box."""
    area = box or (0, 0, *im.size)
    factor = int(min((area[2] - area[0]) / size[0], (area[3] - area[1]) / size[1]) / REDUCING_GAP)
    if factor < 2 or box not in (None, (0, 0, *im.size)):
        return im, box
    return im.reduce(factor), (0, 0, im.width / factor, im.height / factor)


def resample_ycc(
    im: Image.Image,
    size: tuple[int, int],
    resample: Image.Resampling,
    box: tuple[float, float, float, float] | None = None,
    reducing_gap: float | None = None,
) -> Image.Image:
    """Return a YCbCr image resampled to ``size``: luma with ``resample``, chroma by area averaging.

    Both outputs (JPEG and lossy WebP) store chroma at half resolution, and the eye barely
    sees chroma detail, so a windowed-sinc filter is spent on luma only: a third of the work.
    """
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
    return source.resize(size, resample)
