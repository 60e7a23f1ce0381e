"""The daily record files in the datasets bucket: written per upload day, read back by a build.

A build compares each file's fingerprint (its ETag) with the one the table keeps for that day: only
days whose file changed (or appeared, or vanished) are read, so a sensor run reads the few days
its new records fell on. A new table, other rules or ``resplit`` make it a full rebuild.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import pandas as pd

from image_etl.dataset.build import BuildResult, rebuild_manifest, update_manifest
from image_etl.dataset.records import normalize_records, records_frame, upload_day
from image_etl.dataset.rules import FIRST_DAY, ManifestConfig
from image_etl.dataset.table import ManifestTable

if TYPE_CHECKING:
    from image_etl.manifest import DatasetStore


def write_record_files(
    store: DatasetStore,
    records: Iterable[Mapping[str, Any]],
    days: Iterable[str],
    *,
    first_day: str = FIRST_DAY,
) -> dict[str, int]:
    """Write one record file per upload day in ``days`` (deleting the file of a day left empty).

    :param store: the datasets bucket.
    :param records: records of (at least) those days; others are ignored.
    :param days: the upload days this run covers.
    :param first_day: the first partition: records uploaded before it are filed under it.
    :return: day -> records written (days with none are absent).
    """
    wanted = set(days)
    by_day: dict[str, list[Mapping[str, Any]]] = {}
    for record in records:
        day = upload_day(record, first_day=first_day)
        if day in wanted:
            by_day.setdefault(day, []).append(record)
    counts: dict[str, int] = {}
    for day in sorted(wanted):
        rows = by_day.get(day)
        key = store.records_key(day)
        if not rows:
            # A record can leave a day (a re-upload has a new upload time): drop a stale file.
            store.s3.delete_object(Bucket=store.bucket, Key=key)
            continue
        frame = records_frame(rows).sort_values("image_id", kind="stable")
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False, compression="zstd")
        store.put(key, buffer.getvalue())
        counts[day] = len(frame)
    return counts


def read_record_file(store: DatasetStore, day: str) -> pd.DataFrame:
    """Return one day's records (normalized); an empty frame when the day has no file."""
    if not store.exists(store.records_key(day)):
        return records_frame([])
    return normalize_records(pd.read_parquet(io.BytesIO(store.read_bytes(store.records_key(day)))))


def build_from_record_files(
    table: ManifestTable,
    store: DatasetStore,
    *,
    config: ManifestConfig,
    resplit: bool = False,
    variants: Mapping[str, str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> BuildResult:
    """Return what a build did: incremental over the days whose record file changed since the table's
    last build, or a full rebuild (first build, other rules, ``resplit``).

    :param table: the manifest table.
    :param store: the datasets bucket holding the record files.
    :param config: the rules.
    :param resplit: a full rebuild that assigns every split afresh.
    :param variants: where the variants are (kept as a table property for exports).
    :param progress: called with a line per phase of a full rebuild.
    """
    files = store.record_files()
    known = table.record_files() if table.exists() else {}
    empty = not table.exists() or table.table().current_snapshot() is None
    if resplit or empty or table.rules() not in (None, config.fingerprint()):
        return rebuild_manifest(
            table,
            sorted(files),
            lambda day: read_record_file(store, day),
            config=config,
            resplit=resplit,
            record_files=files,
            variants=variants,
            progress=progress,
        )
    changed = sorted(day for day in set(files) | set(known) if files.get(day) != known.get(day))
    days = {day: read_record_file(store, day) for day in changed}
    fingerprints: dict[str, str | None] = {day: files.get(day) for day in changed}
    return update_manifest(table, days, config=config, record_files=fingerprints, variants=variants)
