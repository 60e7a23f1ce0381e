"""The dataset manifest as plain pandas/numpy: records in, one row per source image out.

No Dagster and no AWS here, so every rule (duplicate groups, quality flags, splits) is testable
alone and the benchmark measures exactly what the asset runs. Hot paths are vectorized over
uint64/bool arrays: a 1M-record build must fit in a minute on one core.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations, pairwise
from math import comb
from typing import Any

import numpy as np
import pandas as pd

STATUS_PROCESSED = "processed"
STATUS_FAILED = "failed"
SPLITS: tuple[str, ...] = ("train", "val", "test")
FLAGS: tuple[str, ...] = ("tiny", "extreme_aspect", "too_dark", "too_bright", "blurry", "failed")

#: Scalar record attributes kept in the daily record files, in this order.
RECORD_COLUMNS: tuple[str, ...] = (
    "image_id",
    "status",
    "error",
    "error_code",
    "source_bucket",
    "source_key",
    "source_etag",
    "source_bytes",
    "original_filename",
    "label",
    "width",
    "height",
    "format",
    "mode",
    "sha256",
    "phash",
    "frame_count",
    "exif_orientation",
    "brightness",
    "blur_score",
    "uploaded_at",
    "processed_at",
    "processed_shard",
)
_NUMERIC = {"source_bytes", "width", "height", "frame_count", "exif_orientation", "brightness", "blur_score"}
VARIANT_PREFIX = "variant_"


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
    #: blurry: variance of the Laplacian on the 256 px grey variant below this (a generated test
    #: picture scores ~175 sharp and ~17 after a Gaussian blur of radius 3; photos score higher).
    blurry_below: float = 50.0


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


# ---------------------------------------------------------------- records


def records_frame(records: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Return records (plain dicts, as ``lambda_resizer.records.from_item`` makes them) as a flat frame.

    :param records: image records.
    :return: one row per record: :data:`RECORD_COLUMNS`, then ``variant_<name>_key``, ``_width``,
        ``_height`` for every variant name seen.
    """
    rows: list[dict[str, Any]] = []
    for record in records:
        row = {name: record.get(name) for name in RECORD_COLUMNS}
        for name, variant in (record.get("variants") or {}).items():
            if isinstance(variant, Mapping) and "key" in variant:
                row[f"{VARIANT_PREFIX}{name}_key"] = variant.get("key")
                row[f"{VARIANT_PREFIX}{name}_width"] = variant.get("width")
                row[f"{VARIANT_PREFIX}{name}_height"] = variant.get("height")
        rows.append(row)
    frame = pd.DataFrame(rows, columns=list(RECORD_COLUMNS) if not rows else None)
    return normalize_records(frame)


def normalize_records(frame: pd.DataFrame) -> pd.DataFrame:
    """Return ``frame`` with every record column present and typed (strings, floats), so days concat."""
    frame = frame.copy()
    for name in RECORD_COLUMNS:
        if name not in frame.columns:
            frame[name] = None
    for name in frame.columns:
        numeric = name in _NUMERIC or (
            name.startswith(VARIANT_PREFIX) and name.endswith(("_width", "_height"))
        )
        frame[name] = pd.to_numeric(frame[name]).astype("float64") if numeric else frame[name].astype("str")
    ordered = list(RECORD_COLUMNS) + sorted(c for c in frame.columns if c not in RECORD_COLUMNS)
    return frame[ordered].reset_index(drop=True)


def latest_per_image(records: pd.DataFrame) -> pd.DataFrame:
    """Return one row per ``image_id``: the record processed last (a re-upload may sit in two days).

    Rows keep their order; only the (rare) repeated ids are sorted, as a full sort of 1M string
    rows costs seconds.
    """
    repeated = records["image_id"].duplicated(keep=False).to_numpy()
    if not repeated.any():
        return records.reset_index(drop=True)
    candidates = records.loc[repeated, ["image_id", "processed_at"]]
    latest = candidates.sort_values(["image_id", "processed_at"], kind="stable").drop_duplicates(
        "image_id", keep="last"
    )
    keep = ~repeated
    keep[records.index.get_indexer(latest.index)] = True
    return records[keep].reset_index(drop=True)


def variant_names(frame: pd.DataFrame) -> list[str]:
    """Return the variant names that have a key column, e.g. ``["large", "medium", "small", "thumb"]``."""
    return sorted(
        c[len(VARIANT_PREFIX) : -len("_key")]
        for c in frame.columns
        if c.startswith(VARIANT_PREFIX) and c.endswith("_key")
    )


# ---------------------------------------------------------------- hashes and duplicate groups

_HEX = np.full(256, 255, dtype=np.uint8)
for _i, _c in enumerate(b"0123456789abcdef"):
    _HEX[_c] = _i
for _i, _c in enumerate(b"ABCDEF"):
    _HEX[_c] = 10 + _i


def phash_values(phash: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Return 16-hex-digit pHashes as uint64 values and a mask of the valid ones (no Python loop).

    :param phash: strings like ``"c3d1b0e8f0f8e0c1"``; missing or malformed ones are invalid.
    :return: (values, valid); invalid values are 0.
    """
    raw = np.asarray(phash.to_numpy(dtype=object, na_value=""), dtype="S17")
    nibbles = _HEX[raw.view(np.uint8).reshape(-1, 17)]
    valid = (nibbles[:, :16] < 16).all(axis=1) & (nibbles[:, 16] == 255)
    values = np.zeros(len(raw), dtype=np.uint64)
    for position in range(16):
        values = (values << np.uint64(4)) | nibbles[:, position].astype(np.uint64)
    values[~valid] = 0
    return values, valid


def block_tables(max_distance: int, count: int) -> list[list[tuple[int, int]]]:
    """Return the exact-match tables of a near-duplicate search, each as its blocks ``(shift, width)``.

    Split 64 bits into ``b = max_distance + m`` blocks: two hashes at most ``max_distance`` apart
    differ in at most that many blocks, so (pigeonhole) they agree exactly on at least ``m`` of
    them, i.e. on the union of some ``m``-subset. One table per subset finds every such pair. ``m``
    trades the number of tables (one sort each) against key width (bucket sizes); the cheapest
    estimate for ``count`` hashes wins (1M hashes, distance 6: 84 tables of 21-bit keys).

    :param max_distance: largest Hamming distance that counts as a near duplicate (0..31).
    :param count: number of distinct hashes to search.
    :return: one list of blocks per table; a block is bits ``[shift, shift + width)`` of the hash.
    """
    if not 0 <= max_distance < 32:
        raise ValueError(f"near-duplicate distance must be in 0..31, got {max_distance}")
    if max_distance == 0:
        return []
    best: tuple[float, int] | None = None
    for m in range(1, 64 - max_distance + 1):
        blocks = max_distance + m
        key_bits = 64 * m / blocks
        # Measured on one core: ~60 ns a hash per table (key + sort), ~80 ns a candidate pair.
        pairs = count * count / 2.0 ** (key_bits + 1)
        cost = comb(blocks, m) * (count * 6e-8 + pairs * 8e-8)
        if best is None or cost < best[0]:
            best = (cost, m)
    assert best is not None
    m = best[1]
    edges = np.linspace(0, 64, max_distance + m + 1).round().astype(int)
    spans = [(int(lo), int(hi - lo)) for lo, hi in pairwise(edges)]
    return [[spans[i] for i in subset] for subset in combinations(range(len(spans)), m)]


# Candidate pairs are checked in slices of this many, so memory stays flat whatever the buckets.
_PAIR_CHUNK = 4_000_000


def _runs_pairs(starts: np.ndarray, sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return every (i, j), i < j, of positions inside each run ``[start, start + size)``."""
    offsets = np.repeat(starts, sizes)
    firsts = np.repeat(np.cumsum(sizes) - sizes, sizes)
    positions = offsets + (np.arange(int(sizes.sum()), dtype=np.int64) - firsts)
    later = np.repeat(starts + sizes, sizes) - positions - 1
    a = np.repeat(positions, later)
    b = a + 1 + (np.arange(int(later.sum()), dtype=np.int64) - np.repeat(np.cumsum(later) - later, later))
    return a, b


def _sorted_by_key(
    parts: dict[tuple[int, int], np.ndarray], blocks: list[tuple[int, int]], count: int
) -> tuple[np.ndarray, np.ndarray]:
    """Return (keys sorted, original positions) for one table: its blocks' bits packed into one key."""
    key = np.zeros(count, dtype=np.uint64)
    offset = 0
    for shift, width in blocks:
        key |= parts[(shift, width)] << np.uint64(offset)
        offset += width
    index_bits = max(1, (count - 1).bit_length())
    if offset + index_bits <= 64:
        # Sorting (key, position) packed in one uint64 is ~5x faster than an argsort of the key.
        key <<= np.uint64(index_bits)
        key |= np.arange(count, dtype=np.uint64)
        key.sort()
        return key >> np.uint64(index_bits), (key & np.uint64((1 << index_bits) - 1)).astype(np.int64)
    order = np.argsort(key, kind="stable")
    return key[order], order


def near_duplicate_pairs(hashes: np.ndarray, *, max_distance: int) -> tuple[np.ndarray, np.ndarray]:
    """Return index pairs (i < j) of hashes at most ``max_distance`` bits apart, without comparing all pairs.

    Each table sorts the hashes by one key (see :func:`block_tables`) and checks only the pairs
    inside a bucket of equal keys; a pair found by several tables is reported once.

    :param hashes: distinct uint64 hashes.
    :param max_distance: largest Hamming distance that counts.
    :return: (i, j) int64 arrays into ``hashes``, sorted.
    """
    hashes = np.asarray(hashes, dtype=np.uint64)
    tables = block_tables(max_distance, len(hashes))
    # Each block's bits are cut out once and reused by every table that contains the block.
    parts = {
        span: (hashes >> np.uint64(span[0])) & np.uint64((1 << span[1]) - 1)
        for span in sorted({span for blocks in tables for span in blocks})
    }
    found: list[np.ndarray] = []
    for blocks in tables:
        sorted_keys, order = _sorted_by_key(parts, blocks, len(hashes))
        same = np.flatnonzero(sorted_keys[1:] == sorted_keys[:-1])  # few: positions i with key[i] == key[i+1]
        if not len(same):
            continue
        run_start = same[np.concatenate(([True], np.diff(same) > 1))]
        run_last = same[np.concatenate((np.diff(same) > 1, [True]))] + 1
        starts, sizes = run_start, run_last - run_start + 1
        # Slices of runs with a bounded pair count; one huge run is a slice of its own.
        slice_id = np.cumsum(sizes * (sizes - 1) // 2) // _PAIR_CHUNK
        for chunk in np.split(np.arange(len(starts)), np.flatnonzero(np.diff(slice_id)) + 1):
            a, b = _runs_pairs(starts[chunk], sizes[chunk])
            ia, ib = order[a], order[b]
            close = np.bitwise_count(hashes[ia] ^ hashes[ib]) <= max_distance
            lo, hi = np.minimum(ia[close], ib[close]), np.maximum(ia[close], ib[close])
            found.append(lo.astype(np.uint64) << np.uint64(32) | hi.astype(np.uint64))
    if not found:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    pairs = np.unique(np.concatenate(found))
    return (pairs >> np.uint64(32)).astype(np.int64), (pairs & np.uint64(0xFFFFFFFF)).astype(np.int64)


def connected_components(count: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Return, for each of ``count`` nodes, the smallest node of its component (edges ``a[k] - b[k]``).

    Union-find in vectorized rounds: hook every root onto the smaller root across an edge, then
    jump pointers until each node points at its root; a few rounds suffice for duplicate groups.
    """
    parent = np.arange(count, dtype=np.int64)
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    while len(a):
        ra, rb = parent[a], parent[b]
        differ = ra != rb
        if not differ.any():
            break
        lo, hi = np.minimum(ra[differ], rb[differ]), np.maximum(ra[differ], rb[differ])
        np.minimum.at(parent, hi, lo)
        while True:
            jumped = parent[parent]
            if np.array_equal(jumped, parent):
                break
            parent = jumped
        a, b = a[differ], b[differ]
    return parent


def duplicate_components(frame: pd.DataFrame, *, max_distance: int) -> np.ndarray:
    """Return a component number per row: same sha256, same pHash, or pHashes within ``max_distance``.

    Exact duplicates collapse first (equal pHash values), so the near-duplicate search only sees
    distinct hashes; equal sha256 then joins whatever the hashes did not (identical bytes always
    hash alike, so normally nothing). Rows with neither hash (failed images) stay alone.

    :return: int64 array; rows of one group share a number.
    """
    n = len(frame)
    values, valid = phash_values(frame["phash"])
    codes, uniques = pd.factorize(values[valid])  # only valid hashes: a placeholder could bridge groups
    n_phash = len(uniques)
    if max_distance > 0 and n_phash > 1:
        i, j = near_duplicate_pairs(np.asarray(uniques, dtype=np.uint64), max_distance=max_distance)
        hash_component = connected_components(n_phash, i, j)
    else:
        hash_component = np.arange(n_phash, dtype=np.int64)
    # Node space: distinct pHashes, then one node per row (for rows without a pHash).
    component = n_phash + np.arange(n, dtype=np.int64)
    component[valid] = hash_component[codes]
    sha = frame["sha256"].where(frame["sha256"].str.len() == 64)
    sha_codes, sha_uniques = pd.factorize(sha)
    has_sha = sha_codes >= 0
    if has_sha.any():
        smallest = np.full(len(sha_uniques), np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(smallest, sha_codes[has_sha], component[has_sha])
        apart = np.flatnonzero(has_sha & (component != smallest[np.maximum(sha_codes, 0)]))
        if len(apart):
            roots = connected_components(n_phash + n, component[apart], smallest[sha_codes[apart]])
            component = roots[component]
    return component


# ---------------------------------------------------------------- quality and splits


def quality_flag_matrix(frame: pd.DataFrame, thresholds: QualityThresholds) -> pd.DataFrame:
    """Return one boolean column per flag in :data:`FLAGS` (a signal that is missing raises no flag)."""
    width = frame["width"].to_numpy(dtype="float64", na_value=np.nan)
    height = frame["height"].to_numpy(dtype="float64", na_value=np.nan)
    brightness = frame["brightness"].to_numpy(dtype="float64", na_value=np.nan)
    blur = frame["blur_score"].to_numpy(dtype="float64", na_value=np.nan)
    short, long = np.fmin(width, height), np.fmax(width, height)
    with np.errstate(divide="ignore", invalid="ignore"):
        aspect = long / short
    failed = (frame["status"] == STATUS_FAILED).to_numpy(dtype=bool, na_value=False)
    return pd.DataFrame(
        {
            "tiny": short < thresholds.min_side,
            "extreme_aspect": aspect > thresholds.max_aspect,
            "too_dark": brightness < thresholds.dark_below,
            "too_bright": brightness > thresholds.bright_above,
            "blurry": blur < thresholds.blurry_below,
            "failed": failed,
        },
        index=frame.index,
    )


def flag_lists(matrix: pd.DataFrame) -> pd.Series:
    """Return the flags of each row as a list column (Arrow ``list<string>``), built without a row loop."""
    import pyarrow as pa

    bits = matrix[list(FLAGS)].to_numpy(dtype=bool)
    _, cols = np.nonzero(bits)  # row-major: each row's flags come out in FLAGS order
    offsets = np.concatenate(([0], np.cumsum(bits.sum(axis=1)))).astype(np.int32)
    names = pa.array(np.asarray(FLAGS, dtype=object)[cols], type=pa.string())
    lists = pa.ListArray.from_arrays(pa.array(offsets), names)
    return pd.Series(pd.arrays.ArrowExtensionArray(lists), index=matrix.index, name="quality_flags")


def unit_interval(ids: Sequence[str]) -> np.ndarray:
    """Return a stable number in [0, 1) per id: the first 8 bytes of sha256("split:" + id).

    sha256 (not Python's or pandas' hash) so the value never changes across versions or machines.
    """
    scale = float(2**64)
    return np.fromiter(
        (int.from_bytes(hashlib.sha256(b"split:" + i.encode()).digest()[:8], "big") / scale for i in ids),
        dtype=np.float64,
        count=len(ids),
    )


def split_for(u: np.ndarray, ratios: SplitRatios) -> np.ndarray:
    """Return ``train``/``val``/``test`` for numbers in [0, 1) by cumulative ratio."""
    index = np.searchsorted(np.array([ratios.train, ratios.train + ratios.val]), u, side="right")
    return np.asarray(SPLITS, dtype=object)[index]


def assign_groups_and_splits(
    frame: pd.DataFrame,
    components: np.ndarray,
    ratios: SplitRatios,
    previous_splits: pd.Series | None = None,
) -> tuple[pd.Series, pd.Series]:
    """Return each row's ``dup_group`` and ``split``.

    A group is named after its earliest member (by ``uploaded_at``, then ``image_id``): an image
    that arrives later joins an existing group without renaming it. The group's split comes from a
    stable hash of that name. When ``previous_splits`` (image_id -> split of the last manifest) is
    given, a group that already had members keeps the split of its earliest such member, so a
    rebuild, a backfill or a late record never moves an image; only a new image that bridges two
    groups from different splits moves the later group (one group never spans two splits).
    """
    ids = frame["image_id"].to_numpy(dtype=object)
    earlier = (
        frame["image_id"].map(previous_splits).to_numpy(dtype=object, na_value=None)
        if previous_splits is not None and len(previous_splits)
        else np.full(len(frame), None, dtype=object)
    )
    has_earlier = np.isin(earlier, SPLITS)
    dup_group = ids.copy()
    split = earlier.copy()  # a singleton keeps its own earlier split
    # Only members of multi-image groups need ordering (most images are alone: sort few rows).
    multi = np.flatnonzero(np.bincount(components)[components] > 1)
    if len(multi):
        uploaded = frame["uploaded_at"].to_numpy(dtype=object, na_value="")
        order = multi[np.lexsort((ids[multi], uploaded[multi], components[multi]))]
        sorted_components = components[order]
        first = np.concatenate(([True], sorted_components[1:] != sorted_components[:-1]))
        group_components = sorted_components[first]
        at = np.searchsorted(group_components, components[multi])
        dup_group[multi] = ids[order][first][at]
        group_split = np.full(len(group_components), None, dtype=object)
        kept = order[has_earlier[order]]
        if len(kept):
            kept_components = components[kept]
            kept_first = np.concatenate(([True], kept_components[1:] != kept_components[:-1]))
            group_split[np.searchsorted(group_components, kept_components[kept_first])] = earlier[kept][
                kept_first
            ]
        split[multi] = group_split[at]
    fresh = np.flatnonzero(~np.isin(split, SPLITS))
    if len(fresh):
        split[fresh] = split_for(unit_interval(dup_group[fresh]), ratios)
    return (
        pd.Series(dup_group, index=frame.index, name="dup_group", dtype="str"),
        pd.Series(split, index=frame.index, name="split", dtype="str"),
    )


# ---------------------------------------------------------------- the manifest

#: Manifest columns before the variant keys.
MANIFEST_COLUMNS: tuple[str, ...] = (
    "image_id",
    "label",
    "status",
    "error_code",
    "error",
    "width",
    "height",
    "format",
    "sha256",
    "phash",
    "dup_group",
    "dup_group_size",
    "quality_flags",
    "split",
    "brightness",
    "blur_score",
    "source_bucket",
    "source_key",
    "original_filename",
    "source_bytes",
    "uploaded_at",
    "processed_at",
)


def build_manifest(
    records: pd.DataFrame,
    *,
    config: ManifestConfig | None = None,
    previous_splits: pd.Series | None = None,
) -> pd.DataFrame:
    """Return the manifest: one row per distinct source image (``image_id``), in the records' order.

    :param records: record rows (:func:`records_frame`), possibly several per image (the latest wins).
    :param config: duplicate distance, quality thresholds, split ratios.
    :param previous_splits: image_id -> split of the previous manifest, to keep splits stable.
    :return: :data:`MANIFEST_COLUMNS` then ``variant_<name>`` (the variant's S3 key) per variant.
    """
    config = config or ManifestConfig()
    frame = latest_per_image(normalize_records(records))
    components = duplicate_components(frame, max_distance=config.near_dup_distance)
    dup_group, split = assign_groups_and_splits(frame, components, config.ratios, previous_splits)
    frame["dup_group"] = dup_group
    frame["split"] = split
    frame["dup_group_size"] = frame.groupby("dup_group")["image_id"].transform("size").astype("int64")
    frame["quality_flags"] = flag_lists(quality_flag_matrix(frame, config.thresholds))
    variants = {
        f"{VARIANT_PREFIX}{name}": frame[f"{VARIANT_PREFIX}{name}_key"] for name in variant_names(frame)
    }
    manifest = pd.concat([frame[list(MANIFEST_COLUMNS)], pd.DataFrame(variants, index=frame.index)], axis=1)
    for name in ("width", "height", "source_bytes"):
        manifest[name] = manifest[name].astype("Int64")
    return manifest.reset_index(drop=True)


def to_parquet_bytes(manifest: pd.DataFrame, *, metadata: Mapping[str, str] | None = None) -> bytes:
    """Return the manifest as parquet bytes (zstd), with ``metadata`` in the file's key-value metadata."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(manifest, preserve_index=False)
    # Without pandas' own metadata: it names the Arrow list dtype in a way pandas cannot read back,
    # and the plain Arrow schema (list<string>, int64, string) is what any reader expects.
    table = table.replace_schema_metadata(
        {f"image_etl.{k}".encode(): v.encode() for k, v in (metadata or {}).items()}
    )
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue().to_pybytes()


def content_hash(manifest: pd.DataFrame) -> str:
    """Return a short hash of the manifest's content, for version ids and "nothing changed" checks."""
    return hashlib.sha256(to_parquet_bytes(manifest)).hexdigest()[:12]


def class_balance(manifest: pd.DataFrame) -> pd.DataFrame:
    """Return image counts per label and split (processed images only), with a total column."""
    processed = manifest[manifest["status"] == STATUS_PROCESSED]
    table = pd.crosstab(processed["label"].fillna("(none)"), processed["split"]).reindex(
        columns=list(SPLITS), fill_value=0
    )
    table["total"] = table.sum(axis=1)
    return table.sort_values("total", ascending=False)


def markdown_table(table: pd.DataFrame) -> str:
    """Return a DataFrame (index included) as a GitHub markdown table (pandas' needs tabulate)."""
    header = [str(table.index.name or "")] + [str(c) for c in table.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += [
        "| " + " | ".join([str(i), *(str(v) for v in row)]) + " |"
        for i, row in zip(table.index, table.to_numpy(), strict=True)
    ]
    return "\n".join(lines)


def summary(manifest: pd.DataFrame) -> dict[str, Any]:
    """Return counts a reader checks first: rows, statuses, splits, groups, flags."""
    flags = manifest["quality_flags"].explode().value_counts()
    groups = manifest["dup_group_size"]
    return {
        "rows": len(manifest),
        "processed": int((manifest["status"] == STATUS_PROCESSED).sum()),
        "failed": int((manifest["status"] == STATUS_FAILED).sum()),
        "labels": int(manifest["label"].nunique()),
        "splits": {s: int((manifest["split"] == s).sum()) for s in SPLITS},
        "dup_groups": int(manifest["dup_group"].nunique()),
        "images_in_dup_groups": int((groups > 1).sum()),
        "flags": {f: int(flags.get(f, 0)) for f in FLAGS},
    }


# ---------------------------------------------------------------- consistency (the asset checks' logic)


def split_leaks(manifest: pd.DataFrame) -> dict[str, list[str]]:
    """Return sha256 values and dup_groups that appear in more than one split (empty when clean)."""
    leaks: dict[str, list[str]] = {}
    for column in ("sha256", "dup_group"):
        present = manifest[manifest[column].notna()]
        spread = present.groupby(column)["split"].nunique()
        leaks[column] = sorted(spread[spread > 1].index.astype(str))[:20]
    return leaks


def failed_rate(manifest: pd.DataFrame) -> float:
    """Return the share of images whose record is ``failed`` (0.0 for an empty manifest)."""
    return float((manifest["status"] == STATUS_FAILED).mean()) if len(manifest) else 0.0


def missing_variants(manifest: pd.DataFrame, existing: set[str]) -> pd.DataFrame:
    """Return (image_id, variant, key) of processed images whose variant key is not in ``existing``."""
    processed = manifest[manifest["status"] == STATUS_PROCESSED]
    columns = [c for c in manifest.columns if c.startswith(VARIANT_PREFIX)]
    long = processed.melt(id_vars="image_id", value_vars=columns, var_name="variant", value_name="key")
    long = long[long["key"].notna()]
    absent = long[~long["key"].isin(existing)]
    without_any = processed[processed[columns].isna().all(axis=1)] if columns else processed
    extra = pd.DataFrame({"image_id": without_any["image_id"], "variant": "(none)", "key": None})
    return pd.concat([absent, extra], ignore_index=True)


# ---------------------------------------------------------------- ImageFolder export


def imagefolder_metadata(manifest: pd.DataFrame, *, variant: str, variants_prefix: str) -> dict[str, str]:
    """Return, per split, a Hugging Face ImageFolder ``metadata.jsonl`` pointing at one variant.

    ``file_name`` is the variant's key below the variants prefix (``<image_id>/<variant>.jpg``), so
    copying those objects into ``<dir>/<split>/`` (``DatasetStore.download_imagefolder``)
    gives a folder ``datasets.load_dataset("imagefolder", data_dir=dir)`` reads. Failed images and
    images without that variant are left out.

    :return: split -> JSON lines (one object per image, ``file_name`` first).
    """
    column = f"{VARIANT_PREFIX}{variant}"
    if column not in manifest.columns:
        raise ValueError(f"no variant {variant!r} in this manifest (have {variant_names_of(manifest)})")
    usable = manifest[(manifest["status"] == STATUS_PROCESSED) & manifest[column].notna()]
    out: dict[str, str] = {}
    for split in SPLITS:
        part = usable[usable["split"] == split]
        lines = [
            json.dumps(
                {
                    "file_name": str(key)[len(variants_prefix) :]
                    if str(key).startswith(variants_prefix)
                    else str(key),
                    "label": label if isinstance(label, str) else None,
                    "image_id": image_id,
                    "dup_group": group,
                    "quality_flags": list(flags) if flags is not None else [],
                }
            )
            for key, label, image_id, group, flags in zip(
                part[column],
                part["label"],
                part["image_id"],
                part["dup_group"],
                part["quality_flags"],
                strict=True,
            )
        ]
        out[split] = "".join(line + "\n" for line in lines)
    return out


def variant_names_of(manifest: pd.DataFrame) -> list[str]:
    """Return the variant names of a manifest (its ``variant_<name>`` columns)."""
    return sorted(c[len(VARIANT_PREFIX) :] for c in manifest.columns if c.startswith(VARIANT_PREFIX))
