"""Resize core of the image Lambda: upload bytes in, sRGB variants and facts about the image out.

Pure: no AWS, no environment variables, nothing from ``image_etl`` (this package is deployed
alone). Decoding is most of the cost, so the full-size image is never materialised when it
can be avoided and never touched twice:

1. ``sniffing``: the signature picks the one Pillow plugin that parses the header; bad bytes are
   rejected with a code before any pixel is decoded.
2. ``decoding`` and ``formats``: JPEGs are decoded already shrunk by libjpeg's DCT scaling,
   straight into YCbCr; other formats are box-reduced by an integer factor first.
3. ``resample``: the one remaining resample to the largest variant filters luma with the recipe's
   filter and averages chroma, which both output codecs store at half resolution anyway.
4. ``colour``: orientation, 16-bit and CMYK conversion and ICC-to-sRGB happen on that largest
   variant; each smaller variant is resampled from the one before, then ``encoding``.
5. Quality signals and the perceptual hash are measured on the 256 px image.

``estimate`` predicts the peak memory of all this from the header alone, before the body is read.
"""

from __future__ import annotations

import hashlib

from PIL import Image

from .colour import to_rgb, to_working
from .decoding import TRANSPOSE, LibraryRouteNeeded, decode_shrunk, exif_orientation, png_banded
from .encoding import encode
from .formats import png, tiff
from .phash import phash
from .quality import blur_score, brightness
from .recipe import (
    DEFAULT_RECIPE,
    FILTERS,
    OUTPUT_FORMATS,
    ImageInfo,
    Recipe,
    ResizeResult,
    Variant,
    content_type,
    extension,
    fit,
)
from .resample import resample_from
from .sniffing import (
    MAX_JPEG_SCANS,
    REJECT_CODES,
    ImageRejected,
    check_jpeg_scans,
    check_pixels,
    decode_error,
    open_image,
    too_many_pixels,
)

__all__ = [
    "DEFAULT_RECIPE",
    "FILTERS",
    "MAX_JPEG_SCANS",
    "OUTPUT_FORMATS",
    "REJECT_CODES",
    "ImageInfo",
    "ImageRejected",
    "LibraryRouteNeeded",
    "Recipe",
    "ResizeResult",
    "Variant",
    "content_type",
    "extension",
    "fit",
    "process_image",
]

SIGNAL_EDGE = 256  # longest edge of the image that brightness, blur_score and phash are measured on


def process_image(
    data: bytes, recipe: Recipe = DEFAULT_RECIPE, *, library_fallback: bool = True
) -> ResizeResult:
    """Return the variants of an uploaded image and facts about it.

    :param data: the uploaded file's bytes.
    :param recipe: sizes, formats and encoder settings.
    :param library_fallback: let a library decode a damaged file our decoders decline (at its
        memory); False: raise :class:`LibraryRouteNeeded`, for a caller with a memory budget.
    :return: the source's :class:`ImageInfo` and one :class:`Variant` per recipe size.
    :raises ImageRejected: when the bytes can never become variants (see ``REJECT_CODES``).
    """
    if not data:
        raise ImageRejected("empty", "the upload is empty (0 bytes)")
    with open_image(data, recipe.max_pixels) as im:
        check_pixels(im.size, recipe.max_pixels)
        if im.format in ("JPEG", "MPO") and im.info.get("progressive"):
            check_jpeg_scans(data)  # only progressive decoding makes a pass over every pixel per scan
        try:
            return _process(im, data, recipe, library_fallback)
        except (ImageRejected, LibraryRouteNeeded):
            raise
        except MemoryError:
            raise
        except Image.DecompressionBombError as exc:  # a later frame or tile larger than the header
            raise too_many_pixels(exc, recipe.max_pixels) from exc
        except Exception as exc:
            raise decode_error(exc, data) from exc


def _process(im: Image.Image, data: bytes, recipe: Recipe, library_fallback: bool = True) -> ResizeResult:
    """Return the result for an opened image whose header passed the pixel cap (see process_image)."""
    source_format = "JPEG" if im.format == "MPO" else str(im.format)
    source_mode = im.mode
    # MPO's extra images are previews or depth maps, not frames of an animation.
    if im.format == "TIFF":
        frame_count = tiff.page_count(data)  # Pillow's n_frames is quadratic in the page count
    else:
        frame_count = 1 if im.format == "MPO" else int(getattr(im, "n_frames", 1))
    if im.format == "PNG":
        if png_banded(im) and not png.metadata_after_pixels(data):
            im.info.setdefault("exif", b"")  # none after the pixels either: no decode to look for it
        else:
            im.load()  # a PNG's EXIF may come after its pixels, and Pillow reads it only by decoding
    orientation, applied_by_decoder = exif_orientation(im)
    icc = im.info.get("icc_profile") or None
    swap = orientation in (5, 6, 7, 8) and not applied_by_decoder
    width, height = (im.height, im.width) if swap else im.size

    targets = {name: fit(width, height, edge) for name, edge in recipe.sizes}
    largest = max(targets.values(), key=lambda size: size[0] * size[1])
    resample = FILTERS[recipe.filter]

    keep_alpha = "webp" in recipe.formats  # JPEG has no alpha: flatten onto white right away
    shrunk_size = largest[::-1] if swap else largest
    base = decode_shrunk(
        im, shrunk_size, resample, keep_alpha=keep_alpha, data=data, library_fallback=library_fallback
    )
    if base is not im:
        im.close()  # frees the decoded pixels now rather than when the caller's `with` ends
    if not applied_by_decoder and orientation in TRANSPOSE:
        base = base.transpose(TRANSPOSE[orientation])
    base = to_working(base, icc, source_mode)

    # Each size is resampled from the smallest already-made image that covers it.
    made: list[Image.Image] = [base]
    images: dict[str, Image.Image] = {}
    for name, size in sorted(targets.items(), key=lambda item: -item[1][0] * item[1][1]):
        images[name] = resample_from(made, size, resample)
        made.append(images[name])
    variants = tuple(
        Variant(
            name=name,
            width=images[name].width,
            height=images[name].height,
            encoded={fmt: encode(images[name], fmt, recipe) for fmt in recipe.formats},
        )
        for name, _ in recipe.sizes
    )

    signal = to_rgb(resample_from(made, fit(width, height, SIGNAL_EDGE), resample))
    grey = signal.convert("L")
    info = ImageInfo(
        width=width,
        height=height,
        format=source_format,
        mode=source_mode,
        bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        phash=phash(signal),
        frame_count=frame_count,
        exif_orientation=orientation,
        brightness=brightness(grey),
        blur_score=blur_score(signal),
    )
    return ResizeResult(info=info, variants=variants)
