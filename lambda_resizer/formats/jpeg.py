"""JPEG: decode already shrunk by libjpeg's DCT scaling, straight into YCbCr."""

from __future__ import annotations

from PIL import Image, ImageFile, features

# Only libjpeg-turbo (and libjpeg >= 7) decode at 3/8 scale; Pillow's wheels ship libjpeg-turbo.
_DCT_3_8 = bool(features.check_feature("libjpeg_turbo"))
_RGB_IDS = [ord("R"), ord("G"), ord("B")]  # JPEG component ids that libjpeg reads as RGB storage


def dct_scale(width: int, height: int, size: tuple[int, int]) -> int:
    """Return the eighths libjpeg decodes a ``width`` x ``height`` JPEG at to cover ``size``: 1, 2, 3, 4 or 8.

    :param width: stored width of the JPEG.
    :param height: stored height.
    :param size: the smallest size the decoded image must cover (stored orientation).
    """
    steps = (1, 2, 3, 4) if _DCT_3_8 else (1, 2, 4)
    fits = [n for n in steps if width * n >= size[0] * 8 and height * n >= size[1] * 8]
    return fits[0] if fits else 8


def shrink_on_load(im: Image.Image, size: tuple[int, int]) -> tuple[float, float, float, float] | None:
    """Make libjpeg decode at the smallest DCT scale that still covers ``size``; return the source box.

    Pillow's ``draft`` offers the scales 1/2, 1/4 and 1/8. libjpeg-turbo also decodes at 3/8,
    which for typical 3000-4000 px photos and a 1024 px target leaves a 1.2-1.5x resample
    instead of 1.6-2x: about 25% less decode work and half the resampling. 3/8 is set up the
    way ``draft`` sets up the others, through Pillow's decoder arguments (private, hence the
    fallback to plain ``draft`` if they ever change shape).

    :param im: an opened JPEG, not yet loaded.
    :param size: the smallest size the decoded image must cover.
    :return: the source area in decoded pixels, for ``resize(box=...)``, or None (full size).
    """
    width, height = im.size
    # Decoding straight to YCbCr skips libjpeg's colour conversion and our later one. Only for
    # files stored as YCbCr: libjpeg cannot convert RGB-stored ones (an Adobe transform of 0, or
    # component ids 'R', 'G', 'B') to YCbCr, and fails on them.
    stored_rgb = im.info.get("adobe_transform") == 0 or [c[0] for c in getattr(im, "layer", [])] == _RGB_IDS
    mode = "YCbCr" if im.mode == "RGB" and not stored_rgb else None
    scale = dct_scale(width, height, size)
    if scale == 3 and isinstance(im, ImageFile.ImageFile) and len(im.tile) == 1 and not im.decoderconfig:
        try:
            tile = im.tile[0]
            rawmode = mode or tile.args[0]  # type: ignore[index]  # private: a TypeError falls back
            scaled = (-(-width * 3 // 8), -(-height * 3 // 8))  # libjpeg rounds up
            im.tile = [ImageFile._Tile(tile.codec_name, (0, 0, *scaled), tile.offset, (rawmode, ""))]
            im._size = scaled
            if mode:
                im._mode = mode
            im.decoderconfig = (3, 0)  # libjpeg picks 3/8 for a requested 1/3
            return (0, 0, width * 3 / 8, height * 3 / 8)
        except (AttributeError, TypeError, ValueError, IndexError):
            pass
    request = (max(1, width * scale // 8), max(1, height * scale // 8)) if scale < 8 else None
    drafted = im.draft(mode, request)  # Pillow picks the scale 1/8, 1/4 or 1/2 that gives `request`
    return drafted[1] if drafted is not None and scale < 8 else None
