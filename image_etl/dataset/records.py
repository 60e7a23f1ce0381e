"""Image records (the resizer's DynamoDB items, as plain dicts) as typed frames, one upload day each."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from image_etl.dataset.rules import FIRST_DAY

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
#: Integer attributes (nullable: a failed record has no size) and float ones.
_INTEGER = {"source_bytes", "width", "height", "frame_count", "exif_orientation"}
_FLOAT = {"brightness", "blur_score"}
VARIANT_PREFIX = "variant_"


def upload_day(record: Mapping[str, Any], *, first_day: str = FIRST_DAY) -> str:
    """Return a record's partition: its upload day (UTC, ``YYYY-MM-DD``), clamped to ``first_day``.

    :param record: a record with ``uploaded_at`` (else ``processed_at``) as an ISO timestamp.
    :param first_day: the first partition (``Settings.first_day``); earlier uploads are filed under it.
    """
    stamp = str(record.get("uploaded_at") or record.get("processed_at") or "")
    return max(stamp[:10], first_day)


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
    """Return ``frame`` with every record column present and typed (strings, nullable integers as the
    record has them, floats), so days concat.

    :param frame: records as read from a day's record file, or from :func:`records_frame`.
    """
    frame = frame.copy()
    for name in RECORD_COLUMNS:
        if name not in frame.columns:
            frame[name] = None
    for name in frame.columns:
        variant_size = name.startswith(VARIANT_PREFIX) and name.endswith(("_width", "_height"))
        integer = name in _INTEGER or variant_size
        if integer:
            frame[name] = pd.to_numeric(frame[name]).astype("Int64")
        elif name in _FLOAT:
            frame[name] = pd.to_numeric(frame[name]).astype("float64")
        else:
            frame[name] = frame[name].astype("str")
    ordered = list(RECORD_COLUMNS) + sorted(c for c in frame.columns if c not in RECORD_COLUMNS)
    return frame[ordered].reset_index(drop=True)


def latest_per_image(records: pd.DataFrame) -> pd.DataFrame:
    """Return one row per ``image_id``: the record processed last (a re-upload may sit in two days).

    Rows keep their order; only the (rare) repeated ids are sorted.

    :param records: normalized records.
    """
    repeated = records["image_id"].duplicated(keep=False).to_numpy()
    if not repeated.any():
        return records.reset_index(drop=True)
    candidates = records.loc[repeated, ["image_id", "processed_at"]].fillna({"processed_at": ""})
    latest = candidates.sort_values(["image_id", "processed_at"], kind="stable").drop_duplicates(
        "image_id", keep="last"
    )
    keep = ~repeated
    keep[records.index.get_indexer(latest.index)] = True
    return records[keep].reset_index(drop=True)


def variant_names(frame: pd.DataFrame) -> list[str]:
    """Return the variant names that have a key column, e.g. ``["large", "medium", "small", "thumb"]``.

    :param frame: normalized records.
    """
    return sorted(
        c[len(VARIANT_PREFIX) : -len("_key")]
        for c in frame.columns
        if c.startswith(VARIANT_PREFIX) and c.endswith("_key")
    )
