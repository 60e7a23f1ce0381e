"""Manifest rows: one per distinct source image, with its group, keeper, split, flags and compact keys.

The table holds the manifest columns a reader uses, the ``upload_day`` partition column, and the
compact index (``image_key``, ``phash_key``, ``sha256_key``, ``group_key``, ``uploaded_us``: 8-byte
integer forms of the image id, pHash, sha256, group name and upload time) that a run reads instead of
whole rows. ``dup_group_size`` is not stored: a stored size would make every new copy rewrite the day
of its original; readers derive it (:func:`with_group_sizes`, or a window ``count(*)`` in SQL).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa

from image_etl.dataset import keys
from image_etl.dataset.flags import flag_lists, quality_flag_matrix
from image_etl.dataset.records import VARIANT_PREFIX, variant_names
from image_etl.dataset.rules import SPLITS, QualityThresholds

#: Manifest columns before the variant keys, as readers see them (``dup_group_size`` is derived).
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
    "keep",
    "quality_flags",
    "conflicting_labels",
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
PARTITION_COLUMN = "upload_day"
#: The compact index: what a run reads of every image already in the table.
INDEX_COLUMNS: tuple[str, ...] = ("image_key", "phash_key", "sha256_key", "group_key", "uploaded_us")

_TYPES: dict[str, pa.DataType] = {
    "width": pa.int64(),
    "height": pa.int64(),
    "source_bytes": pa.int64(),
    "brightness": pa.float64(),
    "blur_score": pa.float64(),
    "keep": pa.bool_(),
    "quality_flags": pa.list_(pa.string()),
    "conflicting_labels": pa.list_(pa.string()),
    PARTITION_COLUMN: pa.date32(),
    **dict.fromkeys(INDEX_COLUMNS, pa.int64()),
}
STORED_COLUMNS: tuple[str, ...] = tuple(c for c in MANIFEST_COLUMNS if c != "dup_group_size")


def arrow_schema(variants: Sequence[str]) -> pa.Schema:
    """Return the table's Arrow schema for these variant names (every column nullable).

    :param variants: variant names (``large``, ``medium``, ...): one ``variant_<name>`` key column each.
    """
    names = [
        *STORED_COLUMNS,
        *(f"{VARIANT_PREFIX}{v}" for v in sorted(variants)),
        PARTITION_COLUMN,
        *INDEX_COLUMNS,
    ]
    return pa.schema([pa.field(name, _TYPES.get(name, pa.string())) for name in names])


def manifest_rows(
    records: pd.DataFrame,
    *,
    day: str,
    dup_group: np.ndarray,
    group_key: np.ndarray,
    split: np.ndarray,
    keep: np.ndarray,
    conflicting_labels: Sequence[Sequence[str]],
    thresholds: QualityThresholds,
) -> pd.DataFrame:
    """Return the stored rows of one upload day's images, sorted by image id.

    :param records: normalized records, one per image (the latest), all of upload day ``day``.
    :param day: the partition, ``YYYY-MM-DD``.
    :param dup_group: group name per record (an image id).
    :param group_key: uint64 key of each group name.
    :param split: split code per record (index into :data:`~image_etl.dataset.rules.SPLITS`, -1 none).
    :param keep: whether the record is its group's keeper (:func:`image_etl.dataset.members.keepers`).
    :param conflicting_labels: per record, the competing labels of its group (empty: no conflict).
    :param thresholds: quality-flag bounds.
    """
    frame = records.reset_index(drop=True).copy()
    frame["dup_group"] = pd.Series(dup_group, dtype="object").astype("str")
    frame["split"] = split_names(split)
    frame["keep"] = np.asarray(keep, dtype=bool)
    frame["conflicting_labels"] = pd.Series([list(c) for c in conflicting_labels], dtype="object")
    frame["quality_flags"] = flag_lists(quality_flag_matrix(frame, thresholds))
    phash_key, phash_valid = keys.hex_keys(frame["phash"], length=16)
    sha_key, sha_valid = keys.digest_keys(frame["sha256"], length=64)
    out = {name: frame[name] for name in STORED_COLUMNS}
    for name in variant_names(frame):
        out[f"{VARIANT_PREFIX}{name}"] = frame[f"{VARIANT_PREFIX}{name}_key"]
    out[PARTITION_COLUMN] = pd.Series([dt.date.fromisoformat(day)] * len(frame), dtype="object")
    out["image_key"] = pd.Series(keys.as_signed(keys.image_keys(frame["image_id"])))
    for name, key, valid in (("phash_key", phash_key, phash_valid), ("sha256_key", sha_key, sha_valid)):
        column = pd.array(np.where(valid, keys.as_signed(key), 0), dtype="Int64")
        column[~valid] = pd.NA
        out[name] = pd.Series(column, index=frame.index)
    out["group_key"] = pd.Series(keys.as_signed(np.asarray(group_key, dtype=np.uint64)))
    out["uploaded_us"] = pd.Series(keys.time_keys(frame["uploaded_at"]))
    rows = pd.DataFrame(out)
    for name in ("width", "height", "source_bytes"):
        rows[name] = rows[name].astype("Int64")
    return rows.sort_values("image_id", kind="stable").reset_index(drop=True)


def split_names(codes: np.ndarray) -> np.ndarray:
    """Return split names for split codes (None for -1, no split: a failed image)."""
    codes = np.asarray(codes, dtype=np.int64)
    names = np.asarray([*SPLITS, None], dtype=object)
    return names[np.where(codes >= 0, codes, len(SPLITS))]


def to_arrow(rows: pd.DataFrame, schema: pa.Schema) -> pa.Table:
    """Return rows as an Arrow table of exactly ``schema`` (absent variant columns become nulls).

    :param rows: stored rows (:func:`manifest_rows`, or rows read back from the table).
    :param schema: the table's current Arrow schema.
    """
    columns = []
    for field in schema:
        if field.name in rows.columns:
            values = rows[field.name]
            if pa.types.is_string(field.type):
                values = values.astype("object").where(values.notna(), None)
            columns.append(pa.array(values, type=field.type, from_pandas=True))
        else:
            columns.append(pa.nulls(len(rows), type=field.type))
    return pa.Table.from_arrays(columns, schema=schema)


def with_group_sizes(manifest: pd.DataFrame) -> pd.DataFrame:
    """Return ``manifest`` with ``dup_group_size`` (images per ``dup_group``) after ``dup_group``.

    :param manifest: rows read from the table.
    """
    manifest = manifest.drop(columns=["dup_group_size"], errors="ignore")
    sizes = manifest.groupby("dup_group")["image_id"].transform("size").astype("int64")
    manifest.insert(list(manifest.columns).index("dup_group") + 1, "dup_group_size", sizes)
    return manifest
