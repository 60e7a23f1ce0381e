"""Resize core of the image Lambda: upload bytes in, sRGB variants and facts about the image out.

Pure: no AWS, no environment variables, nothing from ``image_etl`` (this package is deployed
alone). The speed comes from never touching the full-size image more than once:

1. JPEG sources are decoded already shrunk (libjpeg DCT scaling, ``draft``) to the smallest
   scale that still covers the largest variant; other formats are box-reduced by an integer
   factor (``reducing_gap``) before the final resample.
2. Everything else (orientation, 16-bit and CMYK conversion, ICC to sRGB, alpha) happens on
   that largest variant, and every smaller variant is resampled from the previous one.
3. Quality signals and the perceptual hash use a 256 px image.
"""

from __future__ import annotations

import hashlib
import io
import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import PIL
import pillow_heif
from PIL import Image, ImageCms, UnidentifiedImageError

from .phash import phash
from .quality import blur_score, brightness

pillow_heif.register_heif_opener()

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
)
SIGNAL_EDGE = 256  # longest edge of the image that brightness, blur_score and phash are measured on

# Integer box-reduce before the final resample only when the remaining ratio stays >= this gap
# (Pillow's reducing_gap): 2.0 keeps the result within ~0.1 dB of a plain resample.
_REDUCING_GAP = 2.0
_WHITE = (255, 255, 255)
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
# MPO files are opened by the JPEG plugin, which has no separate "MPO" opener.
_OPENERS = tuple(fmt for fmt in ACCEPTED_FORMATS if fmt != "MPO")
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
_BMFF_IMAGE_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1", b"avif", b"avis"}


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
            raise ValueError(f"formats must be a non-empty subset of {sorted(OUTPUT_FORMATS)}, got {self.formats!r}")
        if not (1 <= self.jpeg_quality <= 100 and 1 <= self.webp_quality <= 100):
            raise ValueError("jpeg_quality and webp_quality must be between 1 and 100")
        if self.filter not in FILTERS:
            raise ValueError(f"filter must be one of {sorted(FILTERS)}, got {self.filter!r}")
        if self.max_pixels < 1:
            raise ValueError(f"max_pixels must be positive, got {self.max_pixels}")

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
    # Integer round-half-up so every caller (and the benchmark's baseline) gets the same size.
    scaled = lambda side: max(1, (2 * side * edge + longest) // (2 * longest))  # noqa: E731
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
    with _open(data) as im:
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
    source_format = "JPEG" if im.format == "MPO" else str(im.format)
    source_mode = im.mode
    # MPO's extra images are previews or depth maps, not frames of an animation.
    frame_count = 1 if im.format == "MPO" else int(getattr(im, "n_frames", 1))
    orientation, applied_by_decoder = _orientation(im)
    icc = im.info.get("icc_profile") or None
    swap = orientation in (5, 6, 7, 8) and not applied_by_decoder
    width, height = (im.height, im.width) if swap else im.size

    targets = {name: fit(width, height, edge) for name, edge in recipe.sizes}
    largest = max(targets.values(), key=lambda size: size[0] * size[1])
    resample = FILTERS[recipe.filter]

    base = _decode_shrunk(im, largest[::-1] if swap else largest, resample)
    if not applied_by_decoder and orientation in _TRANSPOSE:
        base = base.transpose(_TRANSPOSE[orientation])
    base = _to_srgb(base, icc)

    # Each size is resampled from the smallest already-made image that covers it.
    made: list[Image.Image] = [base]
    images: dict[str, Image.Image] = {}
    for name, size in sorted(targets.items(), key=lambda item: -item[1][0] * item[1][1]):
        images[name] = _resample_from(made, size, resample)
        made.append(images[name])
    flat = {name: _flatten(img) for name, img in images.items()}

    variants = tuple(
        Variant(
            name=name,
            width=images[name].width,
            height=images[name].height,
            encoded={fmt: _encode(images[name], flat[name], fmt, recipe) for fmt in recipe.formats},
        )
        for name, _ in recipe.sizes
    )

    signal = _flatten(_resample_from(made, fit(width, height, SIGNAL_EDGE), resample))
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


def _open(data: bytes) -> Image.Image:
    """Return the lazily opened image (header parsed, pixels not decoded).

    :param data: the upload's bytes.
    :return: a Pillow image of an accepted format.
    :raises ImageRejected: not_an_image, unsupported_format, truncated, corrupt, too_many_pixels.
    """
    try:
        return Image.open(io.BytesIO(data), formats=_OPENERS)
    except Image.DecompressionBombError as exc:
        raise _too_many_pixels(exc, None) from exc
    except UnidentifiedImageError:
        pass
    except MemoryError:
        raise
    except Exception as exc:  # a plugin that recognised its signature failed on the header
        raise _decode_error(exc, data) from exc
    accepted = _accepted_signature(data)
    if accepted is not None:
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


def _check_pixels(size: tuple[int, int], max_pixels: int) -> None:
    width, height = size
    if width < 1 or height < 1:
        raise ImageRejected("corrupt", f"the image header says it is {width}x{height} pixels")
    if width * height > max_pixels:
        raise ImageRejected(
            "too_many_pixels",
            f"image is {width}x{height} = {_mp(width * height)} MP, over the {_mp(max_pixels)} MP limit",
        )


def _too_many_pixels(exc: Exception, max_pixels: int | None) -> ImageRejected:
    # Pillow refuses before we see the size; its message carries the pixel count.
    counts = [int(n) for n in re.findall(r"\d+", str(exc))]
    limit = max_pixels if max_pixels is not None else (counts[1] if len(counts) > 1 else None)
    if counts and limit:
        message = f"image has {_mp(counts[0])} MP, over the {_mp(limit)} MP limit"
    else:
        message = f"image has too many pixels to decode safely ({exc})"
    return ImageRejected("too_many_pixels", message)


def _mp(pixels: int) -> str:
    return f"{pixels / 1e6:.0f}" if pixels >= 10_000_000 else f"{pixels / 1e6:.3g}"


def _decode_error(exc: Exception, data: bytes) -> ImageRejected:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, Image.DecompressionBombWarning):  # only when warnings are turned into errors
        return _too_many_pixels(exc, None)
    if isinstance(exc, EOFError) or "truncated" in text.lower() or _is_incomplete(data):
        return ImageRejected("truncated", f"the image data ends early: {text}")
    return ImageRejected("corrupt", f"the image cannot be decoded: {text}")


def _accepted_signature(data: bytes) -> str | None:
    """Return the name of the accepted format whose signature starts ``data``, if any."""
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "TIFF"
    if data[:2] == b"BM" and len(data) >= 6:
        return "BMP"
    if data[4:8] == b"ftyp" and data[8:12] in _BMFF_IMAGE_BRANDS:
        return "AVIF" if data[8:12] in (b"avif", b"avis") else "HEIF"
    return None


def _is_incomplete(data: bytes) -> bool:
    """Return True when the file's own structure shows that bytes are missing at the end."""
    tail = data.rstrip(b"\x00")
    fmt = _accepted_signature(data)
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


def _decode_shrunk(im: Image.Image, size: tuple[int, int], resample: Image.Resampling) -> Image.Image:
    """Return the first frame decoded and resampled to ``size``, in a mode Pillow resamples well.

    :param im: the opened, not yet decoded source.
    :param size: target size in the source's stored (not EXIF-rotated) orientation.
    :param resample: Pillow filter for the final resample.
    :return: an image of exactly ``size``, mode one of L, LA, RGB, RGBA, CMYK, I, F.
    """
    box = None
    if im.format in ("JPEG", "MPO") and size != im.size:
        drafted = im.draft(None, size)  # DCT scaling by 1/2, 1/4 or 1/8 while decoding
        if drafted is not None:
            box = drafted[1]
    im.load()
    im = _resampleable(im)
    if im.size == size and box in (None, (0, 0, *size)):
        return im
    return im.resize(size, resample, box=box, reducing_gap=_REDUCING_GAP)


def _resampleable(im: Image.Image) -> Image.Image:
    """Return the image in a mode whose resampling is correct (not nearest) and supports reduce()."""
    mode = im.mode
    has_key = "transparency" in im.info
    if mode in ("P", "PA"):
        return im.convert("RGBA" if has_key or mode == "PA" else "RGB")
    if mode == "1":
        return im.convert("L")
    if mode in ("L", "RGB") and has_key:  # a PNG colour key becomes real alpha
        return im.convert(mode + "A" if mode == "L" else "RGBA")
    if mode in ("La", "RGBa"):
        return im.convert(mode[:-1] + "A")
    if mode.startswith("I;16"):
        return im.convert("I")
    if mode in ("L", "LA", "RGB", "RGBA", "CMYK", "I", "F"):
        return im
    return im.convert("RGBA" if "A" in mode else "RGB")


# --- colour ----------------------------------------------------------------------------------

_SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
# 512 colours spanning the RGB cube, to recognise profiles that are sRGB in all but name.
_PROBE = Image.frombytes(
    "RGB", (512, 1), bytes(c for r in range(8) for g in range(8) for b in range(8) for c in (r * 36, g * 36, b * 36))
)


def _to_srgb(im: Image.Image, icc: bytes | None) -> Image.Image:
    """Return the image as 8-bit sRGB: ``RGB``, or ``RGBA`` when it has real transparency.

    :param im: small image in L, LA, RGB, RGBA, CMYK, I or F mode.
    :param icc: the source's embedded ICC profile, if any.
    :return: a new image with empty ``info``: variants carry no EXIF, XMP or ICC. The pixels are
        sRGB, which is what viewers assume for untagged images, so no profile is needed.
    """
    alpha = None
    if im.mode in ("LA", "RGBA"):
        alpha = im.getchannel("A")
        if alpha.getextrema()[0] == 255:
            alpha = None
        im = im.convert(im.mode[:-1])
    if im.mode in ("I", "F"):
        im = _to_8bit(im)
    transform = _srgb_transform(icc, im.mode) if icc else None
    if transform is not None:
        im = ImageCms.applyTransform(im, transform)
    elif im.mode != "RGB":
        im = im.convert("RGB")
    else:
        im = im.copy()  # the caller's info must not leak into the variants
    if alpha is not None:
        im.putalpha(alpha)
    im.info = {}
    return im


def _to_8bit(im: Image.Image) -> Image.Image:
    """Return an ``L`` image from a 32-bit integer or float image, scaled by its likely range."""
    pixels = np.asarray(im, dtype=np.float64)
    top = float(pixels.max()) if pixels.size else 0.0
    # 16-bit sources arrive as I; float sources are usually 0..1.
    if im.mode == "F" and top <= 1.0:
        pixels = pixels * 255.0
    elif top > 255.0:
        pixels = pixels / 257.0
    return Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8), "L")


@lru_cache(maxsize=16)
def _srgb_transform(icc: bytes, mode: str) -> ImageCms.ImageCmsTransform | None:
    """Return a transform from the embedded profile to sRGB, or None when none is needed or possible."""
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        transform = ImageCms.buildTransform(profile, _SRGB, mode, "RGB")
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return None  # a broken or mismatched profile: the pixels are still usable as they are
    if mode == "RGB":
        probe = np.asarray(ImageCms.applyTransform(_PROBE, transform), dtype=np.int16)
        if np.abs(probe - np.asarray(_PROBE, dtype=np.int16)).max() <= 1:
            return None  # already sRGB (e.g. "sRGB IEC61966-2.1"): skipping it is exact and cheaper
    return transform


def _flatten(im: Image.Image) -> Image.Image:
    """Return an RGB image: RGBA is composited onto white, RGB is returned as is."""
    if im.mode != "RGBA":
        return im
    white = Image.new("RGB", im.size, _WHITE)
    white.paste(im, mask=im.getchannel("A"))
    return white


# --- resampling and encoding -----------------------------------------------------------------


def _resample_from(made: list[Image.Image], size: tuple[int, int], resample: Image.Resampling) -> Image.Image:
    """Return an image of ``size`` resampled from the smallest image in ``made`` that covers it."""
    covering = [img for img in made if img.width >= size[0] and img.height >= size[1]]
    source = min(covering, key=lambda img: img.width * img.height) if covering else made[0]
    return source if source.size == size else source.resize(size, resample)


def _webp_method(im: Image.Image) -> int:
    # Method 4 costs ~3x method 0 for ~15% fewer bytes: spend it where the pixels are few.
    pixels = im.width * im.height
    return 0 if pixels > 400_000 else 2 if pixels > 100_000 else 4


def _encode(im: Image.Image, flat: Image.Image, fmt: str, recipe: Recipe) -> bytes:
    out = io.BytesIO()
    if fmt == "jpeg":
        flat.save(out, "JPEG", quality=recipe.jpeg_quality)
    else:
        im.save(out, "WEBP", quality=recipe.webp_quality, method=_webp_method(im))
    return out.getvalue()
