"""Sniffing and rejection: which accepted format the bytes are, and why bytes can never become variants.

Only the plugin the signature points to parses the header (less parsing of hostile bytes, and the
AVIF, TIFF and HEIF libraries load only when an upload needs them). Every rejection has a code
(``REJECT_CODES``) and a one-line sentence saying what is wrong.
"""

from __future__ import annotations

import importlib
import io
import re

from PIL import Image, UnidentifiedImageError

from .formats import webp_lossless

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
#: Pillow formats the resizer opens: every opener :func:`sniff` names, and MPO (multi-picture
#: JPEGs, which the JPEG plugin opens). Tools that choose files (the CLI) take their extensions
#: from here through :func:`accepted_extensions`, so they cannot drift from what is read.
ACCEPTED_FORMATS: tuple[str, ...] = ("JPEG", "MPO", "PNG", "GIF", "WEBP", "TIFF", "BMP", "AVIF", "HEIF")
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


class ImageRejected(ValueError):
    """The bytes can never become variants: retrying will not help."""

    def __init__(self, code: str, message: str) -> None:
        if code not in REJECT_CODES:
            raise ValueError(f"unknown reject code {code!r}")
        super().__init__(message)
        self.code = code
        self.message = message


def open_image(data: bytes, max_pixels: int) -> Image.Image:
    """Return the lazily opened image (header parsed, pixels not decoded).

    :param data: the upload's bytes.
    :param max_pixels: the recipe's cap, for the message when Pillow refuses the size itself.
    :return: a Pillow image of an accepted format.
    :raises ImageRejected: not_an_image, unsupported_format, truncated, corrupt, too_many_pixels.
    """
    sniffed = sniff(data)
    try:
        # Only the plugin(s) the signature points to: less header parsing of hostile bytes, and
        # the AVIF, TIFF and HEIF libraries are loaded only when an upload needs them.
        if sniffed is not None:
            for opener in sniffed[1]:
                load_plugin(opener)
            # Lossless stills without Pillow's two copies of the file (formats.webp_lossless).
            still = webp_lossless.open_still(data) if sniffed[1] == ("WEBP",) else None
            return still or Image.open(io.BytesIO(data), formats=sniffed[1])
    except Image.DecompressionBombError as exc:
        check_pixels(_header_size(data, sniffed[1] if sniffed else ()), max_pixels)
        raise too_many_pixels(exc, max_pixels) from exc
    except UnidentifiedImageError:
        pass
    except MemoryError:
        raise
    except Exception as exc:  # a plugin that recognised its signature failed on the header
        raise decode_error(exc, data) from exc
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


def accepted_extensions() -> frozenset[str]:
    """Return the file extensions (lower case, with the dot) Pillow registers for the accepted formats.

    That is every name Pillow itself would save or recognise them under: ``.apng`` is PNG, ``.jfif``
    JPEG, ``.heic``/``.hif`` HEIF (once pillow-heif registers it). It loads every Pillow plugin,
    which is fine for a tool choosing files and never done on the resize path.
    """
    for name in ACCEPTED_FORMATS:
        load_plugin(name)
    return frozenset(ext for ext, name in Image.registered_extensions().items() if name in ACCEPTED_FORMATS)


def load_plugin(opener: str) -> None:
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


def check_jpeg_scans(data: bytes) -> None:
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


def check_pixels(size: tuple[int, int], max_pixels: int) -> None:
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


def too_many_pixels(exc: Exception, max_pixels: int | None) -> ImageRejected:
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


def decode_error(exc: Exception, data: bytes) -> ImageRejected:
    """Return the rejection for an exception raised while reading or processing the image."""
    text = str(exc) or type(exc).__name__
    if isinstance(exc, Image.DecompressionBombWarning):  # only when warnings are turned into errors
        return too_many_pixels(exc, None)
    if isinstance(exc, EOFError) or "truncated" in text.lower() or _is_incomplete(data):
        return ImageRejected("truncated", f"the image data ends early: {text}")
    return ImageRejected("corrupt", f"the image cannot be decoded: {text}")


def sniff(data: bytes) -> tuple[str, tuple[str, ...]] | None:
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
    sniffed = sniff(data)
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
