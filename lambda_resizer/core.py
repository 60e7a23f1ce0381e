"""Resize core of the image Lambda: upload bytes in, sRGB variants and facts about the image out.

Pure: no AWS, no environment variables, nothing from ``image_etl`` (this package is deployed
alone). Decoding is most of the cost, so the full-size image is never materialised when it
can be avoided and never touched twice:

1. JPEGs are decoded already shrunk by libjpeg's DCT scaling (1/8, 1/4, 3/8 or 1/2: the
   smallest that still covers the largest variant), straight into YCbCr. Other formats are
   box-reduced by an integer factor first.
2. The one remaining resample to the largest variant filters luma with the recipe's filter
   and averages chroma, which both output codecs store at half resolution anyway.
3. Orientation, 16-bit and CMYK conversion and ICC-to-sRGB happen on that largest variant;
   each smaller variant is resampled from the one before.
4. Quality signals and the perceptual hash are measured on the 256 px image.
"""

from __future__ import annotations

import hashlib
import importlib
import io
import re
import struct
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import PIL
from PIL import Image, ImageCms, ImageFile, UnidentifiedImageError, features

from .phash import phash
from .quality import blur_score, brightness

# Pillow's names for the inputs we accept; MPO is a JPEG with extra MP-format images.
ACCEPTED_FORMATS: tuple[str, ...] = ("JPEG", "MPO", "PNG", "WEBP", "GIF", "TIFF", "BMP", "HEIF", "AVIF")
OUTPUT_FORMATS: dict[str, tuple[str, str]] = {"jpeg": ("image/jpeg", "jpg"), "webp": ("image/webp", "webp")}
FILTERS: dict[str, Image.Resampling] = {
    "lanczos": Image.Resampling.LANCZOS,
    "bicubic": Image.Resampling.BICUBIC,
    "hamming": Image.Resampling.HAMMING,
    "bilinear": Image.Resampling.BILINEAR,
    "box": Image.Resampling.BOX,
}
REJECT_CODES: tuple[str, ...] = (
    "empty",
    "not_an_image",
    "unsupported_format",
    "truncated",
    "corrupt",
    "too_many_pixels",
    "too_many_scans",
)
# Each scan of a progressive JPEG is a pass over every pixel; encoders write about 10. A 0.3 MB
# file repeating its last scan 300 times took 18 s to decode at 64 MP (libjpeg has no limit).
MAX_JPEG_SCANS = 100
SIGNAL_EDGE = 256  # longest edge of the image that brightness, blur_score and phash are measured on

# Box-reduce by an integer factor before the final resample, leaving a ratio of at least this
# (Pillow's reducing_gap). 1.0 is the fastest; on the two benchmark PNGs it costs 3-8 dB against
# a plain resample of the full image, and they stay above 41 dB.
_REDUCING_GAP = 1.0
_WHITE = (255, 255, 255)
_PILLOW_PIXEL_LIMIT = 2 * int(Image.MAX_IMAGE_PIXELS or 0) or 10**12  # where Pillow raises, not warns
# Only libjpeg-turbo (and libjpeg >= 7) decode at 3/8 scale; Pillow's wheels ship libjpeg-turbo.
_DCT_3_8 = bool(features.check_feature("libjpeg_turbo"))
_RGB_IDS = [ord("R"), ord("G"), ord("B")]  # JPEG component ids that libjpeg reads as RGB storage
_ORIENTATION_TAG = 0x0112
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
# Formats Pillow can name from a real signature although we do not accept them.
_NAMEABLE_FORMATS = (
    "PSD", "ICO", "CUR", "ICNS", "JPEG2000", "DDS", "EPS", "QOI", "BLP", "SGI", "SUN", "FITS", "XPM",
    "XBM", "FLI", "DCX",
)  # fmt: skip
_FOREIGN_SIGNATURES = (
    (b"%PDF-", "PDF"),
    (b"\xff\x0a", "JPEG XL"),
    (b"\x00\x00\x00\x0cJXL \r\n\x87\n", "JPEG XL"),
    (b"<svg", "SVG"),
)
_PLUGINS = {"WEBP": "PIL.WebPImagePlugin", "TIFF": "PIL.TiffImagePlugin", "AVIF": "PIL.AvifImagePlugin"}
_BMFF_IMAGE_BRANDS = {
    b"heic",
    b"heix",
    b"heim",
    b"heis",
    b"hevc",
    b"hevx",
    b"mif1",
    b"msf1",
    b"avif",
    b"avis",
}


@dataclass(frozen=True)
class Recipe:
    """How to make variants: sizes (name, longest edge), output formats and encoder settings."""

    sizes: tuple[tuple[str, int], ...] = (("large", 1024), ("medium", 512), ("small", 256), ("thumb", 128))
    formats: tuple[str, ...] = ("jpeg",)  # any of "jpeg", "webp"; the first is the primary format
    jpeg_quality: int = 85
    webp_quality: int = 80
    filter: str = "lanczos"  # name of the resampling filter, recorded in each record
    max_pixels: int = 100_000_000  # decompression-bomb cap, checked from the header before decoding

    def __post_init__(self) -> None:
        names = [name for name, _ in self.sizes]
        if not self.sizes or len(set(names)) != len(names):
            raise ValueError(f"sizes must be non-empty with unique names, got {self.sizes!r}")
        if any(not isinstance(edge, int) or edge < 1 for _, edge in self.sizes):
            raise ValueError(f"every size needs a positive integer edge, got {self.sizes!r}")
        if not self.formats or any(fmt not in OUTPUT_FORMATS for fmt in self.formats):
            raise ValueError(
                f"formats must be a non-empty subset of {sorted(OUTPUT_FORMATS)}, got {self.formats!r}"
            )
        if not (1 <= self.jpeg_quality <= 100 and 1 <= self.webp_quality <= 100):
            raise ValueError("jpeg_quality and webp_quality must be between 1 and 100")
        if self.filter not in FILTERS:
            raise ValueError(f"filter must be one of {sorted(FILTERS)}, got {self.filter!r}")
        if not 1 <= self.max_pixels <= _PILLOW_PIXEL_LIMIT:
            # Above this Pillow itself refuses to decode (its decompression-bomb error).
            raise ValueError(f"max_pixels must be between 1 and {_PILLOW_PIXEL_LIMIT}, got {self.max_pixels}")

    def to_record(self) -> dict[str, object]:
        """Return a JSON-able summary of the recipe for the image record's ``recipe`` field.

        :return: sizes (name -> longest edge), filter, quality (JPEG), webp_quality, formats and
            the Pillow version that made the variants.
        """
        return {
            "sizes": {name: edge for name, edge in self.sizes},
            "filter": self.filter,
            "quality": self.jpeg_quality,
            "webp_quality": self.webp_quality,
            "formats": list(self.formats),
            "pillow": PIL.__version__,
        }


DEFAULT_RECIPE = Recipe()


@dataclass(frozen=True)
class Variant:
    """One resized image, encoded once per recipe format."""

    name: str
    width: int
    height: int
    encoded: dict[str, bytes]  # format ("jpeg"/"webp") -> file bytes, one per recipe format


@dataclass(frozen=True)
class ImageInfo:
    """Facts about the source image and cheap quality signals."""

    width: int  # of the source, after EXIF orientation is applied
    height: int
    format: str  # Pillow's format name of the source ("JPEG" also for MPO files)
    mode: str  # source mode as decoded, e.g. "RGB", "CMYK", "I;16", "P", "LA", "1"
    bytes: int  # len(source data)
    sha256: str  # hex of the source bytes
    phash: str  # 64-bit perceptual hash, 16 lowercase hex chars
    frame_count: int  # 1 for stills
    exif_orientation: int  # 1..8 (1 when absent)
    brightness: float  # mean luma 0..1 of the 256 px image
    blur_score: float  # variance of the Laplacian of the 256 px grey image; higher = sharper


@dataclass(frozen=True)
class ResizeResult:
    """What one upload became: facts about the source and its variants."""

    info: ImageInfo
    variants: tuple[Variant, ...]  # in recipe order, always one per recipe size


class ImageRejected(ValueError):
    """The bytes can never become variants: retrying will not help."""

    def __init__(self, code: str, message: str) -> None:
        if code not in REJECT_CODES:
            raise ValueError(f"unknown reject code {code!r}")
        super().__init__(message)
        self.code = code
        self.message = message


def content_type(fmt: str) -> str:
    """Return the MIME type of an output format.

    :param fmt: ``"jpeg"`` or ``"webp"``.
    :return: e.g. ``"image/jpeg"``.
    """
    return OUTPUT_FORMATS[fmt][0]


def extension(fmt: str) -> str:
    """Return the file extension (no dot) of an output format.

    :param fmt: ``"jpeg"`` or ``"webp"``.
    :return: ``"jpg"`` or ``"webp"``.
    """
    return OUTPUT_FORMATS[fmt][1]


def fit(width: int, height: int, edge: int) -> tuple[int, int]:
    """Return the size of an image scaled so its longest side is ``edge``, never upscaled.

    :param width: source width in pixels.
    :param height: source height in pixels.
    :param edge: longest edge of the target.
    :return: (width, height), aspect kept, rounded half up, no side below 1 px.
    """
    longest = max(width, height)
    if longest <= edge:
        return width, height

    def scaled(side: int) -> int:
        # Integer round-half-up: every caller (and the benchmark's baseline) gets the same size.
        return max(1, (2 * side * edge + longest) // (2 * longest))

    return scaled(width), scaled(height)


def process_image(data: bytes, recipe: Recipe = DEFAULT_RECIPE) -> ResizeResult:
    """Return the variants of an uploaded image and facts about it.

    :param data: the uploaded file's bytes.
    :param recipe: sizes, formats and encoder settings.
    :return: the source's :class:`ImageInfo` and one :class:`Variant` per recipe size.
    :raises ImageRejected: when the bytes can never become variants (see ``REJECT_CODES``).
    """
    if not data:
        raise ImageRejected("empty", "the upload is empty (0 bytes)")
    _check_jpeg_scans(data)
    with _open(data, recipe.max_pixels) as im:
        _check_pixels(im.size, recipe.max_pixels)
        try:
            return _process(im, data, recipe)
        except ImageRejected:
            raise
        except MemoryError:
            raise
        except Image.DecompressionBombError as exc:  # a later frame or tile larger than the header
            raise _too_many_pixels(exc, recipe.max_pixels) from exc
        except Exception as exc:
            raise _decode_error(exc, data) from exc


def _process(im: Image.Image, data: bytes, recipe: Recipe) -> ResizeResult:
    """Return the result for an opened image whose header passed the pixel cap (see process_image)."""
    source_format = "JPEG" if im.format == "MPO" else str(im.format)
    source_mode = im.mode
    # MPO's extra images are previews or depth maps, not frames of an animation.
    if im.format == "TIFF":
        frame_count = _tiff_page_count(data)  # Pillow's n_frames is quadratic in the page count
    else:
        frame_count = 1 if im.format == "MPO" else int(getattr(im, "n_frames", 1))
    if im.format not in ("JPEG", "MPO"):
        im.load()  # only JPEG decodes faster later; and a PNG's EXIF may come after its pixels
    orientation, applied_by_decoder = _orientation(im)
    icc = im.info.get("icc_profile") or None
    swap = orientation in (5, 6, 7, 8) and not applied_by_decoder
    width, height = (im.height, im.width) if swap else im.size

    targets = {name: fit(width, height, edge) for name, edge in recipe.sizes}
    largest = max(targets.values(), key=lambda size: size[0] * size[1])
    resample = FILTERS[recipe.filter]

    keep_alpha = "webp" in recipe.formats  # JPEG has no alpha: flatten onto white right away
    base = _decode_shrunk(im, largest[::-1] if swap else largest, resample, keep_alpha=keep_alpha)
    if base is not im:
        im.close()  # frees the decoded pixels now rather than when the caller's `with` ends
    if not applied_by_decoder and orientation in _TRANSPOSE:
        base = base.transpose(_TRANSPOSE[orientation])
    base = _to_working(base, icc, source_mode)

    # Each size is resampled from the smallest already-made image that covers it.
    made: list[Image.Image] = [base]
    images: dict[str, Image.Image] = {}
    for name, size in sorted(targets.items(), key=lambda item: -item[1][0] * item[1][1]):
        images[name] = _resample_from(made, size, resample)
        made.append(images[name])
    variants = tuple(
        Variant(
            name=name,
            width=images[name].width,
            height=images[name].height,
            encoded={fmt: _encode(images[name], fmt, recipe) for fmt in recipe.formats},
        )
        for name, _ in recipe.sizes
    )

    signal = _to_rgb(_resample_from(made, fit(width, height, SIGNAL_EDGE), resample))
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
        blur_score=blur_score(grey),
    )
    return ResizeResult(info=info, variants=variants)


# --- opening and rejecting -------------------------------------------------------------------


def _open(data: bytes, max_pixels: int) -> Image.Image:
    """Return the lazily opened image (header parsed, pixels not decoded).

    :param data: the upload's bytes.
    :param max_pixels: the recipe's cap, for the message when Pillow refuses the size itself.
    :return: a Pillow image of an accepted format.
    :raises ImageRejected: not_an_image, unsupported_format, truncated, corrupt, too_many_pixels.
    """
    sniffed = _sniff(data)
    try:
        # Only the plugin(s) the signature points to: less header parsing of hostile bytes, and
        # the AVIF, TIFF and HEIF libraries are loaded only when an upload needs them.
        if sniffed is not None:
            for opener in sniffed[1]:
                _load_plugin(opener)
            return Image.open(io.BytesIO(data), formats=sniffed[1])
    except Image.DecompressionBombError as exc:
        _check_pixels(_header_size(data, sniffed[1] if sniffed else ()), max_pixels)
        raise _too_many_pixels(exc, max_pixels) from exc
    except UnidentifiedImageError:
        pass
    except MemoryError:
        raise
    except Exception as exc:  # a plugin that recognised its signature failed on the header
        raise _decode_error(exc, data) from exc
    if sniffed is not None:
        accepted = sniffed[0]
        if _is_incomplete(data):
            raise ImageRejected("truncated", f"the {accepted} file ends before its header is complete")
        raise ImageRejected("corrupt", f"the file starts like {accepted} but its header cannot be read")
    foreign = _foreign_format(data)
    if foreign is not None:
        raise ImageRejected(
            "unsupported_format",
            f"{foreign} images are not supported; send JPEG, PNG, WebP, GIF, TIFF, BMP, HEIC or AVIF",
        )
    raise ImageRejected("not_an_image", "the upload is not an image file: no known image format matches it")


def _load_plugin(opener: str) -> None:
    """Import the plugin that opens ``opener`` files unless Pillow already has it.

    Without this Pillow imports every plugin it has; and pillow-heif (3 MB of memory, a slower
    cold start) is only needed for HEIC uploads.
    """
    if opener in Image.OPEN:
        return
    if opener == "HEIF":
        importlib.import_module("pillow_heif").register_heif_opener()
    elif opener in _PLUGINS:
        importlib.import_module(_PLUGINS[opener])


def _check_jpeg_scans(data: bytes) -> None:
    """Raise ImageRejected for a JPEG with more scans than ``MAX_JPEG_SCANS``, before decoding.

    Start-of-scan markers cannot occur inside entropy-coded data (0xFF is stuffed there), so
    counting them counts scans; an embedded EXIF thumbnail adds a few, far below the cap.
    """
    if data.startswith(b"\xff\xd8\xff") and (scans := data.count(b"\xff\xda")) > MAX_JPEG_SCANS:
        raise ImageRejected(
            "too_many_scans",
            f"the JPEG has {scans} scans, over the {MAX_JPEG_SCANS} allowed: encoders write about 10, "
            "and each one is a pass over every pixel",
        )


def _check_pixels(size: tuple[int, int], max_pixels: int) -> None:
    """Return nothing for a plausible header size; raise ImageRejected for 0 px or over the cap."""
    width, height = size
    if width < 1 or height < 1:
        raise ImageRejected("corrupt", f"the image header says it is {width}x{height} pixels")
    if width * height > max_pixels:
        raise ImageRejected(
            "too_many_pixels",
            f"image is {width}x{height} = {_mp(width * height)} MP, over the {_mp(max_pixels)} MP limit",
        )


def _header_size(data: bytes, openers: tuple[str, ...]) -> tuple[int, int]:
    """Return the size in the header, read by the plugin itself, without Pillow's bomb check."""
    for opener in openers:
        try:
            factory, accept = Image.OPEN[opener]
            if accept is None or accept(data[:16]):
                return factory(io.BytesIO(data), "").size
        except Exception:  # any failure just means we fall back to Pillow's own message
            continue
    return (1, 1)


def _too_many_pixels(exc: Exception, max_pixels: int | None) -> ImageRejected:
    """Return the rejection for Pillow's own decompression-bomb check, whose message has the counts."""
    counts = [int(n) for n in re.findall(r"\d+", str(exc))]
    if len(counts) < 2:
        return ImageRejected("too_many_pixels", f"image has too many pixels to decode safely ({exc})")
    pixels, pillow_limit = counts[0], counts[1]
    limit = max_pixels if max_pixels is not None and pixels > max_pixels else pillow_limit
    return ImageRejected("too_many_pixels", f"image has {_mp(pixels)} MP, over the {_mp(limit)} MP limit")


def _mp(pixels: int) -> str:
    """Return a pixel count in megapixels for messages: "10000", "120", "0.01"."""
    return f"{pixels / 1e6:.0f}" if pixels >= 10_000_000 else f"{pixels / 1e6:.3g}"


def _decode_error(exc: Exception, data: bytes) -> ImageRejected:
    """Return the rejection for an exception raised while reading or processing the image."""
    text = str(exc) or type(exc).__name__
    if isinstance(exc, Image.DecompressionBombWarning):  # only when warnings are turned into errors
        return _too_many_pixels(exc, None)
    if isinstance(exc, EOFError) or "truncated" in text.lower() or _is_incomplete(data):
        return ImageRejected("truncated", f"the image data ends early: {text}")
    return ImageRejected("corrupt", f"the image cannot be decoded: {text}")


def _sniff(data: bytes) -> tuple[str, tuple[str, ...]] | None:
    """Return (name for messages, Pillow openers to try) if ``data`` starts with an accepted signature."""
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG", ("JPEG",)  # the JPEG plugin also opens MPO files
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG", ("PNG",)
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF", ("GIF",)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP", ("WEBP",)
    if data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "TIFF", ("TIFF",)
    if data[:2] == b"BM" and len(data) >= 6:
        return "BMP", ("BMP",)
    if data[4:8] == b"ftyp" and data[8:12] in _BMFF_IMAGE_BRANDS:
        # "mif1"/"msf1" files may hold HEVC or AV1: the compatible brands tell which to try first.
        brands = data[8 : min(len(data), max(16, int.from_bytes(data[:4], "big")))]
        if b"avif" in brands or b"avis" in brands:
            return "AVIF", ("AVIF", "HEIF")
        return "HEIF", ("HEIF", "AVIF")
    return None


def _is_incomplete(data: bytes) -> bool:
    """Return True when the file's own structure shows that bytes are missing at the end."""
    tail = data.rstrip(b"\x00")
    sniffed = _sniff(data)
    fmt = sniffed[0] if sniffed else None
    if fmt == "JPEG":
        return not tail.endswith(b"\xff\xd9")
    if fmt == "PNG":
        return b"IEND" not in data[-16:]
    if fmt == "GIF":
        return not tail.endswith(b";")
    if fmt == "WebP":
        return int.from_bytes(data[4:8], "little") + 8 > len(data)
    if fmt == "BMP":
        return int.from_bytes(data[2:6], "little") > len(data)
    if fmt in ("AVIF", "HEIF"):
        pos = 0
        while pos + 8 <= len(data):
            size = int.from_bytes(data[pos : pos + 4], "big")
            if size == 1 and pos + 16 <= len(data):
                size = int.from_bytes(data[pos + 8 : pos + 16], "big")
            if size == 0:  # the box runs to the end of the file
                return False
            if size < 8:
                return False
            pos += size
        return pos != len(data)
    return False


def _foreign_format(data: bytes) -> str | None:
    """Return the name of a recognisable image or document format we do not accept."""
    try:
        with Image.open(io.BytesIO(data), formats=_NAMEABLE_FORMATS) as other:
            return str(other.format)
    except Exception:  # anything a header parser throws just means "not that format"
        pass
    head = data[:1024].lstrip()
    for signature, name in _FOREIGN_SIGNATURES:
        if head.startswith(signature) or (name == "SVG" and signature in head):
            return name
    if data[4:8] == b"ftyp":
        return f"ISO media ({data[8:12].decode('latin-1').strip()})"
    return None


# --- decoding --------------------------------------------------------------------------------


def _tiff_page_count(data: bytes) -> int:
    """Return the number of pages (IFDs) of a TIFF or BigTIFF file, walking the chain once.

    A loop or an offset past the end ends the walk; the first page was already read by Pillow.
    """
    order = "<" if data[:2] == b"II" else ">"
    if data[2:4] in (b"+\x00", b"\x00+"):  # BigTIFF: 8-byte counts and offsets, 20-byte entries
        count_format, next_format, entry_size, first = "Q", "Q", 20, 8
    else:
        count_format, next_format, entry_size, first = "H", "I", 12, 4
    count_size, next_size = struct.calcsize(count_format), struct.calcsize(next_format)
    (offset,) = struct.unpack_from(order + next_format, data, first)
    seen: set[int] = set()
    while offset and offset not in seen and offset + count_size <= len(data):
        seen.add(offset)
        (entries,) = struct.unpack_from(order + count_format, data, offset)
        link = offset + count_size + entries * entry_size
        if link + next_size > len(data):
            break
        (offset,) = struct.unpack_from(order + next_format, data, link)
    return max(1, len(seen))


def _orientation(im: Image.Image) -> tuple[int, bool]:
    """Return (EXIF orientation 1..8, whether the decoder already applied it)."""
    # pillow-heif lets libheif rotate the pixels and resets the EXIF tag, keeping the original.
    original = im.info.get("original_orientation")
    if im.format == "HEIF" and isinstance(original, int) and 1 <= original <= 8:
        return original, True
    try:
        value = im.getexif().get(_ORIENTATION_TAG, 1)
    except Exception:  # unreadable EXIF must not cost us the picture
        return 1, False
    return (value, False) if isinstance(value, int) and 1 <= value <= 8 else (1, False)


def _decode_shrunk(
    im: Image.Image, size: tuple[int, int], resample: Image.Resampling, *, keep_alpha: bool
) -> Image.Image:
    """Return the first frame decoded and resampled to ``size``.

    :param im: the opened, not yet decoded source.
    :param size: target size in the source's stored (not EXIF-rotated) orientation.
    :param resample: Pillow filter for the final resample (of luma, for colour images).
    :param keep_alpha: keep transparency (WebP output); else flatten it onto white first.
        Compositing onto a flat background commutes with premultiplied resampling, so this
        gives the JPEG variants the same pixels as flattening each variant would.
    :return: an image of exactly ``size``; mode YCbCr for colour without alpha, else one of
        L, LA, RGBA, CMYK, I, F.
    """
    box = _jpeg_shrink_on_load(im, size) if im.format in ("JPEG", "MPO") else None
    im.load()
    im = _resampleable(im, keep_alpha=keep_alpha)
    if im.mode == "RGB":
        im, box = _integer_reduce(im, size, box)
        im = im.convert("YCbCr")
    if im.size == size and box in (None, (0, 0, *size)):
        return im
    if im.mode == "YCbCr":
        return _resample_ycc(im, size, resample, box, _REDUCING_GAP)
    return im.resize(size, resample, box=box, reducing_gap=_REDUCING_GAP)


def _jpeg_shrink_on_load(im: Image.Image, size: tuple[int, int]) -> tuple[float, float, float, float] | None:
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
    fits = [n for n in (1, 2, 3, 4) if width * n >= size[0] * 8 and height * n >= size[1] * 8]
    if fits and fits[0] == 3 and _DCT_3_8 and len(im.tile) == 1 and not im.decoderconfig:
        try:
            tile = im.tile[0]
            rawmode = mode or tile.args[0]
            scaled = (-(-width * 3 // 8), -(-height * 3 // 8))  # libjpeg rounds up
            im.tile = [ImageFile._Tile(tile.codec_name, (0, 0, *scaled), tile.offset, (rawmode, ""))]
            im._size = scaled
            if mode:
                im._mode = mode
            im.decoderconfig = (3, 0)  # libjpeg picks 3/8 for a requested 1/3
            return (0, 0, width * 3 / 8, height * 3 / 8)
        except (AttributeError, TypeError, ValueError, IndexError):
            pass
    request = (max(1, width * fits[0] // 8), max(1, height * fits[0] // 8)) if fits else None
    drafted = im.draft(mode, request)  # Pillow picks the scale 1/8, 1/4 or 1/2 that gives `request`
    return drafted[1] if drafted is not None and fits else None


def _integer_reduce(
    im: Image.Image, size: tuple[int, int], box: tuple[float, float, float, float] | None
) -> tuple[Image.Image, tuple[float, float, float, float] | None]:
    """Return the image box-averaged by the integer factor that keeps ``_REDUCING_GAP``, and its box."""
    area = box or (0, 0, *im.size)
    factor = int(min((area[2] - area[0]) / size[0], (area[3] - area[1]) / size[1]) / _REDUCING_GAP)
    if factor < 2 or box not in (None, (0, 0, *im.size)):
        return im, box
    return im.reduce(factor), (0, 0, im.width / factor, im.height / factor)


def _resample_ycc(
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


def _resampleable(im: Image.Image, *, keep_alpha: bool) -> Image.Image:
    """Return the image in a mode whose resampling is correct (not nearest) and supports reduce().

    Without ``keep_alpha``, transparency is flattened onto white here, at full size: one
    blend is far cheaper than Pillow's premultiply/resample/unpremultiply of four bands.
    """
    mode = im.mode
    has_key = "transparency" in im.info
    if mode in ("P", "PA"):
        im = im.convert("RGBA" if has_key or mode == "PA" else "RGB")
    elif mode == "1":
        im = im.convert("L")
    elif mode in ("L", "RGB") and has_key:  # a PNG colour key becomes real alpha
        im = im.convert("LA" if mode == "L" else "RGBA")
    elif mode in ("La", "RGBa"):
        im = im.convert(mode[:-1] + "A")
    elif mode.startswith("I;16") and has_key:  # the key is a 16-bit value: compare before scaling
        pixels = np.asarray(im).astype(np.uint32)
        grey = Image.fromarray(((pixels * 255 + 32767) // 65535).astype(np.uint8), "L")
        alpha = Image.fromarray(
            np.where(pixels == int(im.info["transparency"]), 0, 255).astype(np.uint8), "L"
        )
        im = Image.merge("LA", (grey, alpha))
    elif mode.startswith("I;16"):
        im = im.convert("I")
    elif mode not in ("L", "LA", "RGB", "RGBA", "CMYK", "I", "F", "YCbCr"):
        im = im.convert("RGBA" if "A" in mode else "RGB")
    return im if keep_alpha or im.mode not in ("LA", "RGBA") else _flatten(im)


# --- colour ----------------------------------------------------------------------------------

_SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
# 512 colours spanning the RGB cube, to recognise profiles that are sRGB in all but name.
_PROBE = Image.frombytes(
    "RGB",
    (512, 1),
    bytes(c for r in range(8) for g in range(8) for b in range(8) for c in (r * 36, g * 36, b * 36)),
)


def _to_working(im: Image.Image, icc: bytes | None, source_mode: str) -> Image.Image:
    """Return the image as 8-bit sRGB in the mode variants are made in: YCbCr, or RGBA with alpha.

    :param im: small image in YCbCr, L, LA, RGBA, CMYK, I or F mode.
    :param icc: the source's embedded ICC profile, if any.
    :param source_mode: the mode the source decodes as (its bit depth decides 16-bit scaling).
    :return: a new image with empty ``info``, so variants carry no EXIF, XMP or ICC. The pixels
        are sRGB, which is what viewers assume for untagged images: no profile is needed.
    """
    alpha = None
    if im.mode in ("LA", "RGBA"):
        alpha = im.getchannel("A")
        if alpha.getextrema()[0] == 255:
            alpha = None
        im = im.convert(im.mode[:-1])
    if im.mode in ("I", "F"):
        im = _to_8bit(im, source_mode)
    transform = _srgb_transform(icc, "RGB" if im.mode == "YCbCr" else im.mode) if icc else None
    if transform is not None:
        im = ImageCms.applyTransform(im.convert("RGB") if im.mode == "YCbCr" else im, transform)
    if alpha is not None:
        im = im.convert("RGB")
        im.putalpha(alpha)
    elif im.mode != "YCbCr":
        im = im.convert("YCbCr")
    im.info = {}  # resize and convert copy info: clearing it here keeps metadata out of every variant
    return im


def _to_8bit(im: Image.Image, source_mode: str) -> Image.Image:
    """Return an ``L`` image from a 32-bit integer or float image.

    16-bit sources are scaled by their declared depth (65535 -> 255), so a dark image stays dark.
    32-bit integers and floats declare no range, so it is read from the pixels with the brightest
    0.1% ignored (a few hot pixels do not change the whole image): floats are 0..1 unless more
    pixels are above 1 (then 0..255), 32-bit integers 16-bit data when more are above 255. NaN
    and infinities are black.
    """
    pixels = np.nan_to_num(np.asarray(im, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    if source_mode.startswith("I;16"):
        return _grey(pixels / 257.0)
    top = float(np.percentile(pixels, 99.9)) if pixels.size else 0.0
    if im.mode == "F" and top <= 1.0:
        pixels = pixels * 255.0
    elif im.mode == "I" and top > 255.0:
        pixels = pixels / 257.0
    return _grey(pixels)


def _grey(pixels: np.ndarray) -> Image.Image:
    """Return 8-bit grey from pixel values on a 0..255 scale (rounded, clipped)."""
    return Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8), "L")


@lru_cache(maxsize=16)
def _srgb_transform(icc: bytes, mode: str) -> ImageCms.ImageCmsTransform | None:
    """Return a transform from the embedded profile to sRGB, or None when none is needed or possible."""
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        # No 1-pixel cache: the transform is shared (lru_cache) and may be applied from threads.
        transform = ImageCms.buildTransform(profile, _SRGB, mode, "RGB", flags=ImageCms.Flags.NOCACHE)
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return None  # a broken or mismatched profile: the pixels are still usable as they are
    if mode == "RGB":
        probe = np.asarray(ImageCms.applyTransform(_PROBE, transform), dtype=np.int16)
        if np.abs(probe - np.asarray(_PROBE, dtype=np.int16)).max() <= 1:
            return None  # already sRGB (e.g. "sRGB IEC61966-2.1"): skipping it is exact and cheaper
    return transform


def _flatten(im: Image.Image) -> Image.Image:
    """Return an LA or RGBA image composited onto white, as L or RGB; other images unchanged."""
    if im.mode not in ("LA", "RGBA"):
        return im
    white = Image.new(im.mode[:-1], im.size, _WHITE[: len(im.mode) - 1])
    white.paste(im, mask=im)  # Pillow masks with the alpha band of an LA/RGBA mask
    return white


def _to_rgb(im: Image.Image) -> Image.Image:
    """Return an RGB image: RGBA is composited onto white, YCbCr converted."""
    return _flatten(im) if im.mode == "RGBA" else im.convert("RGB")


# --- resampling and encoding -----------------------------------------------------------------


def _resample_from(made: list[Image.Image], size: tuple[int, int], resample: Image.Resampling) -> Image.Image:
    """Return an image of ``size`` resampled from the smallest image in ``made`` that covers it."""
    covering = [img for img in made if img.width >= size[0] and img.height >= size[1]]
    source = min(covering, key=lambda img: img.width * img.height) if covering else made[0]
    if source.size == size:
        return source
    if source.mode == "YCbCr":
        return _resample_ycc(source, size, resample)
    return source.resize(size, resample)


def _webp_method(im: Image.Image) -> int:
    """Return libwebp's effort (0-6) for this size: method 4 costs ~3x method 0 for ~15% fewer
    bytes, so it is spent where the pixels are few and WebP stays under 2x the JPEG-only time."""
    pixels = im.width * im.height
    return 0 if pixels > 400_000 else 2 if pixels > 100_000 else 4


def _encode(im: Image.Image, fmt: str, recipe: Recipe) -> bytes:
    """Return the variant encoded; no metadata is passed, and ``im.info`` is empty."""
    out = io.BytesIO()
    if fmt == "jpeg":
        # JPEG stores YCbCr: saving a YCbCr image skips a conversion round trip.
        (im if im.mode == "YCbCr" else _to_rgb(im)).save(out, "JPEG", quality=recipe.jpeg_quality)
    else:
        (im if im.mode == "RGBA" else im.convert("RGB")).save(
            out, "WEBP", quality=recipe.webp_quality, method=_webp_method(im)
        )
    return out.getvalue()
