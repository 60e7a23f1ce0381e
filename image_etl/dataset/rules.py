"""The dataset's rules and their defaults: one place for the thresholds every build and check reads."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

STATUS_PROCESSED = "processed"
STATUS_FAILED = "failed"
SPLITS: tuple[str, ...] = ("train", "val", "test")
FLAGS: tuple[str, ...] = (
    "tiny",
    "extreme_aspect",
    "too_dark",
    "too_bright",
    "blurry",
    "label_conflict",
    "failed",
)
#: Source formats whose pixels are what the camera or editor produced (no lossy compression): the
#: keeper of a duplicate group prefers them over a lossy copy of the same size. WebP, AVIF and HEIF
#: can be either and are counted lossy (the record does not say which); GIF's palette is lossy.
LOSSLESS_FORMATS: frozenset[str] = frozenset({"PNG", "BMP", "TIFF"})
#: Bumped when what a build derives from the same records changes (new columns, another rule), so a
#: table built before is rebuilt in full once instead of mixing rows of two rule sets.
RULES_REVISION = 2
#: First upload day (a table partition, and Dagster's first daily partition); earlier uploads are
#: filed under it (clamped), not lost.
FIRST_DAY = "2024-01-01"


@dataclass(frozen=True)
class QualityThresholds:
    """When an image gets a quality flag; every bound is strict."""

    #: tiny: the shorter side is below this many pixels.
    min_side: int = 64
    #: extreme_aspect: longer side / shorter side above this.
    max_aspect: float = 4.0
    #: too_dark / too_bright: mean luma (0..1) of the 256 px variant outside these bounds.
    dark_below: float = 0.1
    bright_above: float = 0.9
    #: blurry: the resizer's blur score (Laplacian variance over gradient energy on the 256 px image,
    #: resolution- and contrast-independent) below this. Calibrated on the 11 real photos of the
    #: bench corpus: sharp they score 2.21-3.29 (none flagged); a Gaussian blur crosses 1.0 at
    #: sigma 0.63-0.97 px of the 256 px image, i.e. 0.25-0.38% of the longest side.
    blurry_below: float = 1.0


@dataclass(frozen=True)
class SplitRatios:
    """Fractions of duplicate groups that go to train, val and test."""

    train: float = 0.8
    val: float = 0.1
    test: float = 0.1

    def __post_init__(self) -> None:
        parts = (self.train, self.val, self.test)
        if any(p < 0 for p in parts) or abs(sum(parts) - 1.0) > 1e-9:
            raise ValueError(f"split ratios must be >= 0 and sum to 1, got {parts}")


@dataclass(frozen=True)
class ManifestConfig:
    """Rules of a manifest build."""

    #: Images whose pHashes differ in at most this many of 64 bits are near duplicates. Re-encoding
    #: and resizing move a pHash by 0-4 bits while unrelated pictures sit ~32 apart (see the tests).
    near_dup_distance: int = 6
    thresholds: QualityThresholds = field(default_factory=QualityThresholds)
    ratios: SplitRatios = field(default_factory=SplitRatios)

    def fingerprint(self) -> str:
        """Return a short hash of these rules: a table built under other rules is rebuilt in full."""
        rules = {"revision": RULES_REVISION, **asdict(self)}
        return hashlib.sha256(json.dumps(rules, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class RetentionPolicy:
    """Which manifest versions the retention job keeps; every other snapshot is expired and the data
    files no kept snapshot references are deleted.

    Always kept as well: the current snapshot, the ``published`` version, and versions newer than it
    (a build whose checks are still running).
    """

    #: Every published version built within this many days.
    keep_days: int = 30
    #: The newest this many published versions, however old.
    keep_last: int = 10
    #: Files younger than this are never deleted: they may belong to a commit still in flight.
    min_file_age_s: float = 3600.0

    def __post_init__(self) -> None:
        if self.keep_days < 0 or self.keep_last < 1 or self.min_file_age_s < 0:
            raise ValueError(
                f"retention needs keep_days >= 0, keep_last >= 1 and min_file_age_s >= 0, got {self}"
            )
