"""What the resize core is asked for and what it answers: the recipe, the variants, facts about an image."""

from __future__ import annotations

from dataclasses import dataclass

import PIL
from PIL import Image

OUTPUT_FORMATS: dict[str, tuple[str, str]] = {"jpeg": ("image/jpeg", "jpg"), "webp": ("image/webp", "webp")}
FILTERS: dict[str, Image.Resampling] = {
    "lanczos": Image.Resampling.LANCZOS,
    "bicubic": Image.Resampling.BICUBIC,
    "hamming": Image.Resampling.HAMMING,
    "bilinear": Image.Resampling.BILINEAR,
    "box": Image.Resampling.BOX,
}
PILLOW_PIXEL_LIMIT = 2 * int(Image.MAX_IMAGE_PIXELS or 0) or 10**12  # where Pillow raises, not warns


@dataclass(frozen=True)
class Recipe:
    """How to make variants: sizes (name, longest edge), output formats and encoder settings.

    The deployed function builds its recipe from its environment (`lambda_resizer.config`); these
    defaults serve callers that build one themselves (`process_image`, the tests, the benchmark).
    They are the one source of these values: `image_etl.resource_shapes` (the deployed function's
    environment) takes its formats, JPEG quality and pixel cap from `DEFAULT_RECIPE`, and
    tests/lambda_resizer/test_config.py checks the function's environment gives this recipe back.
    """

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
        if not 1 <= self.max_pixels <= PILLOW_PIXEL_LIMIT:
            # Above this Pillow itself refuses to decode (its decompression-bomb error).
            raise ValueError(f"max_pixels must be between 1 and {PILLOW_PIXEL_LIMIT}, got {self.max_pixels}")

    @property
    def largest_edge(self) -> int:
        """Return the longest edge of the largest variant."""
        return max(edge for _, edge in self.sizes)

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
    blur_score: float  # Laplacian variance / gradient energy of the 256 px image; higher = sharper


@dataclass(frozen=True)
class ResizeResult:
    """What one upload became: facts about the source and its variants."""

    info: ImageInfo
    variants: tuple[Variant, ...]  # in recipe order, always one per recipe size


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
