"""Building versions: an incremental run over the upload days that changed, or a full rebuild.

Both end the same way: only the data files of upload days whose rows differ are replaced, in one
Iceberg snapshot tagged with the new version id, so a run's cost follows what changed, not the
table. A big day is cut into several files by ``image_key`` range (:mod:`image_etl.dataset.slices`)
and only the files of the slices holding changed rows are rewritten; a day still written as one file
(a table from before slices) is rewritten whole, cut into slices, on its first change. A run that
changes nothing writes nothing and reuses the current version.

**Incremental.** The new records of the changed days are compared with every image already in the
table through its compact index (integer keys of image id, pHash, sha256 and group, tens of bytes
an image, read as columns), with the same block search a full build uses. Only the duplicate
groups a new or removed image touches are recomputed (their members are known from the index);
a new image that bridges two groups renames the later one and rewrites the days of its rows, and
no others. Splits stay sticky (:mod:`image_etl.dataset.groups`). A touched group's keeper and label
conflicts (:mod:`image_etl.dataset.members`) are recomputed from its members' stored rows (read
from their days, a few columns); old rows whose ``keep`` or ``conflicting_labels`` changed are
rewritten like the rows of a renamed group.

**Full rebuild** (``resplit``, changed rules, a restore): streams over the record days twice, first
for the keys of every image, then one day at a time to build and compare its rows, so memory holds
the index, never the table.

A commit is guarded by the catalog (Glue's table version): when another writer committed first,
the run is computed again from the new state (never rebased blindly), so no commit is lost.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json
import logging
import sys
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from image_etl.dataset import keys, slices
from image_etl.dataset.duplicates import duplicate_components, near_duplicate_query
from image_etl.dataset.flags import flag_lists, quality_flag_matrix
from image_etl.dataset.groups import NO_SPLIT, assign_groups
from image_etl.dataset.members import keepers, label_codes, label_conflicts
from image_etl.dataset.records import latest_per_image, normalize_records, variant_names
from image_etl.dataset.rows import PARTITION_COLUMN, manifest_rows, split_names, to_arrow
from image_etl.dataset.rules import LOSSLESS_FORMATS, STATUS_PROCESSED, ManifestConfig, QualityThresholds
from image_etl.dataset.table import (
    RECORD_FILES_PROPERTY,
    RULES_PROPERTY,
    VARIANTS_PROPERTY,
    VERSION_SUMMARY,
    Index,
    ManifestTable,
    day_name,
    day_number,
    new_version_id,
)

log = logging.getLogger(__name__)

#: Commits retried (recomputed from the table's new state) when another writer got in first.
COMMIT_ATTEMPTS = 6

DayLoader = Callable[[str], pd.DataFrame]


@dataclass(frozen=True)
class BuildResult:
    """What one run did to the table."""

    #: The version the table's head is now (a new one, or the current one when unchanged).
    version: str | None
    snapshot_id: int | None
    #: Nothing changed: no snapshot was written.
    unchanged: bool
    mode: str  # "incremental" or "full"
    #: Rows (distinct images) in the version.
    rows: int
    #: Images already in the table that the run compared the new ones with (the compact index).
    indexed_images: int
    #: Upload days (partitions) with rewritten files, and what their new files weigh.
    days_rewritten: list[str] = field(default_factory=list)
    bytes_written: int = 0
    files_written: int = 0
    #: Data files the new snapshot no longer holds (whole days, or the slices of a day that changed).
    files_removed: int = 0
    #: Commit attempts (more than 1: another writer committed first and the run was recomputed).
    attempts: int = 1


class RulesChanged(ValueError):
    """The table was built under other rules: the run must be a full rebuild."""


# ---------------------------------------------------------------- shared pieces


@dataclass
class _Part:
    """The new rows of the rewritten slices of a day (:mod:`image_etl.dataset.slices`)."""

    rows: pd.DataFrame
    #: Slice bits of the day (how ``rows`` are split into files).
    bits: int
    #: The day's data files these rows replace (every row of them is in ``rows`` or removed).
    replaced: list[Any]  # pyiceberg DataFile


@dataclass
class _Written:
    """A day's new data files, already written (a full rebuild streams: it never holds the table)."""

    files: list[Any]  # pyiceberg DataFile
    rows: int
    replaced: list[Any]  # pyiceberg DataFile


@dataclass
class _Changes:
    """The new content of some partitions: day -> rows of its rewritten slices, or files written
    (None: the day is now empty, every file of it goes)."""

    days: dict[str, _Part | _Written | None]
    indexed: int


def _ensure_columns(mt: ManifestTable, variants: Iterable[str]) -> None:
    """Add the ``variant_<name>`` columns the table lacks (a schema change of its own, before writing)."""
    from image_etl.dataset.rows import arrow_schema

    table = mt.table()
    wanted = arrow_schema(sorted(set(variants)))
    have = set(table.schema().as_arrow().names)
    missing = [name for name in wanted.names if name not in have]
    if missing:
        with table.update_schema() as update:
            update.union_by_name(pa.schema([wanted.field(n) for n in missing]))
        mt.refresh()


def _write_day(mt: ManifestTable, part: _Part, write_uuid: uuid.UUID, counter: Any) -> _Written:
    """Write a day's rewritten slices as data files of the table (not yet committed)."""
    table = mt.table()
    files = _write_slices(table.metadata, table.io, part, write_uuid, counter)
    return _Written(files, len(part.rows), part.replaced)


def _write_slices(metadata: Any, io: Any, part: _Part, write_uuid: uuid.UUID, counter: Any) -> list[Any]:
    """Write a part's rows as data files, one (or, past the target file size, more) per slice."""
    from pyiceberg.io.pyarrow import _dataframe_to_data_files

    schema = metadata.schema().as_arrow()
    rows = part.rows
    at = slices.slice_of(keys.as_unsigned(rows["image_key"].to_numpy(dtype=np.int64)), part.bits)
    written: list[Any] = []
    for number in np.unique(at):
        written.extend(
            _dataframe_to_data_files(
                table_metadata=metadata,
                df=to_arrow(rows.iloc[np.flatnonzero(at == number)], schema),
                io=io,
                write_uuid=write_uuid,
                counter=counter,
            )
        )
    return written


def _day_part(
    mt: ManifestTable,
    day: str,
    after: pd.DataFrame,
    before: pd.DataFrame,
    schema: pa.Schema,
    *,
    layout: tuple[list[Any], np.ndarray, np.ndarray] | None = None,
) -> _Part | None:
    """Return what of a day must be rewritten for its rows to become ``after`` (None: nothing).

    :param after: every row the day holds after the run.
    :param before: every row the day holds now (or only those of ``layout``'s files read).
    :param layout: :meth:`ManifestTable.day_layout` of the day, when the caller has it.
    """
    if _frames_equal(after, before, schema):
        return None
    files, stored_key, stored_file = layout if layout is not None else mt.day_layout(day)
    bits = slices.slice_bits(len(after))
    after_key = keys.as_unsigned(after["image_key"].to_numpy(dtype=np.int64))
    before_key = keys.as_unsigned(before["image_key"].to_numpy(dtype=np.int64))
    after_at = slices.slice_of(after_key, bits)
    before_at = slices.slice_of(before_key, bits)
    changed = [
        number
        for number in np.union1d(np.unique(after_at), np.unique(before_at))
        if not _frames_equal(
            after.iloc[np.flatnonzero(after_at == number)],
            before.iloc[np.flatnonzero(before_at == number)],
            schema,
        )
    ]
    rewrite, written = slices.closure(
        np.array(changed, dtype=np.int64), slices.slice_of(stored_key, bits), stored_file
    )
    rows = after.iloc[np.flatnonzero(np.isin(after_at, written))].reset_index(drop=True)
    return _Part(rows, bits, [files[i] for i in rewrite])


def _prepare_days(days: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Return the records of the given days, one per image (latest), with a ``_day`` column."""
    frames = []
    for day, records in sorted(days.items()):
        frame = latest_per_image(normalize_records(records))
        frame["_day"] = day
        frames.append(frame)
    if not frames:
        return normalize_records(pd.DataFrame()).assign(_day=pd.Series(dtype="object"))
    merged = pd.concat(frames, ignore_index=True)
    # An image in two of the changed days: the record processed last wins (the later day on a tie).
    return latest_per_image(merged)


def _frames_equal(new: pd.DataFrame, old: pd.DataFrame, schema: pa.Schema) -> bool:
    if len(new) != len(old):
        return False
    left = to_arrow(new.sort_values("image_id", kind="stable").reset_index(drop=True), schema)
    right = to_arrow(old.sort_values("image_id", kind="stable").reset_index(drop=True), schema)
    return left.equals(right)


def _commit(
    mt: ManifestTable,
    changes: _Changes,
    *,
    config: ManifestConfig,
    record_files: Mapping[str, str | None],
    replace_record_files: bool,
    variants: Mapping[str, str] | None,
    mode: str,
    now: dt.datetime | None,
) -> BuildResult:
    """Replace the changed partitions in one snapshot tagged with a new version; or write nothing."""
    from pyiceberg.table.update.snapshot import ManageSnapshots

    from image_etl.dataset.rows import arrow_schema

    table = mt.table()
    properties: dict[str, str] = {}
    known = {} if replace_record_files else mt.record_files()
    files_state = {day: tag for day, tag in {**known, **record_files}.items() if tag}
    if files_state != mt.record_files():
        properties[RECORD_FILES_PROPERTY] = json.dumps(dict(sorted(files_state.items())))
    if mt.rules() != config.fingerprint():
        properties[RULES_PROPERTY] = config.fingerprint()
    if variants and dict(variants) != mt.variants_location():
        properties[VARIANTS_PROPERTY] = json.dumps(dict(variants))
    head = table.current_snapshot()
    if not changes.days:
        if properties:
            with table.transaction() as tx:
                tx.set_properties(properties)
            mt.refresh()
        current = mt.head_version()
        return BuildResult(
            version=current.name if current else None,
            snapshot_id=head.snapshot_id if head else None,
            unchanged=True,
            mode=mode,
            rows=_total_rows(mt),
            indexed_images=changes.indexed,
        )
    digest = hashlib.sha256(
        json.dumps(
            {
                "parent": head.snapshot_id if head else None,
                "days": {
                    d: (f.rows if isinstance(f, _Written) else len(f.rows) if f is not None else 0)
                    for d, f in sorted(changes.days.items())
                },
                "nonce": uuid.uuid4().hex,
            }
        ).encode()
    ).hexdigest()
    version = new_version_id(digest, now=now)
    old_files = [
        data_file
        for day, change in sorted(changes.days.items())
        for data_file in (mt.data_files([day]) if change is None else change.replaced)
    ]
    variants_now = sorted(
        {
            c[len("variant_") :]
            for f in changes.days.values()
            if isinstance(f, _Part)
            for c in f.rows.columns
            if c.startswith("variant_")
        }
    )
    tx = table.transaction()
    wanted = arrow_schema(variants_now)
    missing = [name for name in wanted.names if name not in table.schema().as_arrow().names]
    if missing:
        with tx.update_schema() as update:
            update.union_by_name(pa.schema([wanted.field(n) for n in missing]))
    # Each read of tx.table_metadata re-applies the staged updates to a deep copy: read it once.
    metadata = tx.table_metadata
    written = 0
    files = 0
    appended: list[Any] = []
    with tx.update_snapshot(snapshot_properties={VERSION_SUMMARY: version}).overwrite() as overwrite:
        for data_file in old_files:
            overwrite.delete_data_file(data_file)
        counter = itertools.count(0)
        for day in sorted(changes.days):
            rows = changes.days[day]
            if isinstance(rows, _Written):
                for data_file in rows.files:
                    overwrite.append_data_file(data_file)
                    appended.append(data_file)
                    written += data_file.file_size_in_bytes
                    files += 1
                continue
            if rows is None or not len(rows.rows):
                continue
            for data_file in _write_slices(metadata, table.io, rows, overwrite.commit_uuid, counter):
                overwrite.append_data_file(data_file)
                appended.append(data_file)
                written += data_file.file_size_in_bytes
                files += 1
        snapshot_id = overwrite.snapshot_id
    ManageSnapshots(tx).create_tag(snapshot_id, version).commit()
    if properties:
        tx.set_properties(properties)
    tx.commit_transaction()
    mt.refresh()
    _cache_index(mt, appended)
    return BuildResult(
        version=version,
        snapshot_id=snapshot_id,
        unchanged=False,
        mode=mode,
        rows=_total_rows(mt),
        indexed_images=changes.indexed,
        days_rewritten=sorted(changes.days),
        bytes_written=written,
        files_written=files,
        files_removed=len(old_files),
    )


def _cache_index(mt: ManifestTable, files: Sequence[Any]) -> None:
    """Cache the compact index of the files a commit wrote, so the next run reads none of the table.

    Best effort: the version is committed already, and a file missing from the cache is read then.
    """
    try:
        mt.cache_index(files)
    except (OSError, pa.ArrowException) as error:
        log.warning("could not cache the index of the %d files written: %s", len(files), error)


def _total_rows(mt: ManifestTable) -> int:
    snapshot = mt.table().current_snapshot()
    if snapshot is None or snapshot.summary is None:
        return 0
    return int(snapshot.summary.additional_properties.get("total-records", 0))


def _with_retries(run: Callable[[], BuildResult]) -> BuildResult:
    from pyiceberg.exceptions import CommitFailedException

    for attempt in range(1, COMMIT_ATTEMPTS + 1):
        try:
            result = run()
        except CommitFailedException as error:
            if attempt == COMMIT_ATTEMPTS:
                raise
            log.warning("another writer committed first (%s); computing the run again", error)
            continue
        return BuildResult(**{**result.__dict__, "attempts": attempt})
    raise AssertionError("unreachable")


# ---------------------------------------------------------------- incremental


def update_manifest(
    mt: ManifestTable,
    days: Mapping[str, pd.DataFrame],
    *,
    config: ManifestConfig | None = None,
    record_files: Mapping[str, str | None] | None = None,
    variants: Mapping[str, str] | None = None,
    now: dt.datetime | None = None,
) -> BuildResult:
    """Return what an incremental run over ``days`` did: their partitions rebuilt from their records,
    and the groups and splits of older images updated where the new images touch them.

    :param mt: the manifest table (it must have been built under ``config``: else :class:`RulesChanged`).
    :param days: upload day -> every record of that day (its whole record file; empty: no records).
    :param config: duplicate distance, quality thresholds, split ratios.
    :param record_files: day -> fingerprint (ETag) of the record file read, kept in the table so the
        next run knows which days changed (None: the day's file is gone).
    :param variants: ``{"bucket", "prefix"}`` of the variants the rows point at (kept as a property).
    :param now: build time of the version id (default now).
    """
    config = config or ManifestConfig()

    def run() -> BuildResult:
        mt.refresh()
        if mt.table().current_snapshot() is not None and mt.rules() not in (None, config.fingerprint()):
            raise RulesChanged(
                f"{mt.identifier} was built under other rules ({mt.rules()} != {config.fingerprint()}): "
                "rebuild it in full"
            )
        changes = _incremental_changes(mt, days, config)
        return _commit(
            mt,
            changes,
            config=config,
            record_files=record_files or {},
            replace_record_files=False,
            variants=variants,
            mode="incremental",
            now=now,
        )

    return _with_retries(run)


def _member(values: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Return ``np.isin(values, wanted)`` for few ``wanted`` among millions of ``values``, without sorting
    the millions (one binary search each into the sorted few, for the few values that may match)."""
    wanted = np.unique(wanted)
    if len(wanted) <= 4:
        # A day or a few: one comparison pass each beats any table.
        result = np.zeros(len(values), dtype=bool)
        for value in wanted:
            result |= values == value
        return result
    # A look-up table over the low bits first (one gather per value, the table small enough to stay
    # in cache: 2**18 entries for 1,000 wanted); only its few hits are checked exactly.
    bits = min(24, max(16, len(wanted).bit_length() + 8))
    mask = np.uint32((1 << bits) - 1)
    lookup = np.zeros(1 << bits, dtype=bool)
    lookup[np.bitwise_and(_low_words(wanted), mask)] = True
    maybe = np.flatnonzero(lookup[np.bitwise_and(_low_words(values), mask)])
    result = np.zeros(len(values), dtype=bool)
    if len(maybe):
        at = np.minimum(np.searchsorted(wanted, values[maybe]), len(wanted) - 1)
        result[maybe] = wanted[at] == values[maybe]
    return result


def _low_words(values: np.ndarray) -> np.ndarray:
    """Return the low 32 bits of integers as uint32 (a view for 64-bit ones on this little-endian CPU)."""
    if values.dtype.itemsize == 8 and sys.byteorder == "little" and values.flags.c_contiguous:
        return values.view(np.uint32)[::2]
    return values.astype(np.uint32, casting="unsafe")


def _old_position(index_keys: np.ndarray, new_keys: np.ndarray) -> np.ndarray:
    """Return, per new image key, the position of the same key in the index (-1 when new)."""
    result = np.full(len(new_keys), -1, dtype=np.int64)
    hit = np.flatnonzero(_member(index_keys, new_keys))
    if len(hit):
        order = np.argsort(index_keys[hit], kind="stable")
        result = _lookup(index_keys[hit][order], hit[order], new_keys)
    return result


def _lookup(sorted_keys: np.ndarray, order: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Return, per wanted key, a position (into the unsorted array) holding it, else -1."""
    if not len(sorted_keys):
        return np.full(len(wanted), -1, dtype=np.int64)
    at = np.searchsorted(sorted_keys, wanted)
    at_clipped = np.minimum(at, len(sorted_keys) - 1)
    found = sorted_keys[at_clipped] == wanted
    return np.where(found, order[at_clipped], -1)


def _incremental_changes(
    mt: ManifestTable, days: Mapping[str, pd.DataFrame], config: ManifestConfig
) -> _Changes:
    index = mt.read_index()
    new = _prepare_days(days)
    changed_days = sorted(days)
    changed_numbers = np.array([day_number(d) for d in changed_days], dtype=np.int32)
    replaced = _member(index.day, changed_numbers)  # old rows of the changed days: all rebuilt
    new_key = keys.image_keys(new["image_id"])
    old_of_new = _old_position(index.image_key, new_key)  # the same image already in the table

    # An image re-uploaded to another day sits in two record files: the later processed record wins.
    elsewhere = np.flatnonzero((old_of_new >= 0) & ~replaced[np.maximum(old_of_new, 0)])
    removed = replaced.copy()
    keep_new = np.ones(len(new), dtype=bool)
    if len(elsewhere):
        rows = old_of_new[elsewhere]
        other_days = sorted({day_name(d) for d in index.day[rows]})
        old = mt.read_days(other_days, columns=["image_key", "processed_at", PARTITION_COLUMN])
        old_processed = dict(
            zip(keys.as_unsigned(old["image_key"].to_numpy(dtype=np.int64)), old["processed_at"], strict=True)
        )
        for position, row in zip(elsewhere, rows, strict=True):
            theirs = str(old_processed.get(index.image_key[row], "") or "")
            ours = str(new["processed_at"].iloc[position] or "")
            later_day = new["_day"].iloc[position] > day_name(index.day[row])
            if ours > theirs or (ours == theirs and later_day):
                removed[row] = True
            else:
                keep_new[position] = False
    new = new[keep_new].reset_index(drop=True)
    new_key = new_key[keep_new]
    previous_of_new = old_of_new[keep_new]
    kept = ~removed

    new_phash, new_phash_valid = keys.hex_keys(new["phash"], length=16)
    new_sha, new_sha_valid = keys.digest_keys(new["sha256"], length=64)
    # Old images close to a new one (pHash) or identical to one (sha256). The search runs over every
    # indexed hash (no copy of the 10M kept ones); its few matches are filtered afterwards.
    i, _ = near_duplicate_query(
        index.phash, new_phash[new_phash_valid], max_distance=config.near_dup_distance
    )
    matched = [i[kept[i] & index.phash_valid[i]]]
    if new_sha_valid.any():
        wanted = np.unique(new_sha[new_sha_valid])
        hits = kept & index.sha_valid & _member(index.sha, wanted)
        matched.append(np.flatnonzero(hits))
    touched = np.unique(np.concatenate([index.group_key[np.concatenate(matched)], index.group_key[removed]]))
    members = np.flatnonzero(kept & _member(index.group_key, touched))

    count_m = len(members)
    phash = np.concatenate([index.phash[members], new_phash])
    phash_valid = np.concatenate([index.phash_valid[members], new_phash_valid])
    sha = np.concatenate([index.sha[members], new_sha])
    sha_valid = np.concatenate([index.sha_valid[members], new_sha_valid])
    components = duplicate_components(
        phash, phash_valid, sha, sha_valid, max_distance=config.near_dup_distance
    )
    times = np.concatenate([index.uploaded_us[members], keys.time_keys(new["uploaded_at"])])
    order_keys = np.concatenate([index.image_key[members], new_key])
    previous = np.concatenate(
        [
            index.split[members],
            np.where(previous_of_new >= 0, index.split[np.maximum(previous_of_new, 0)], NO_SPLIT).astype(
                np.int8
            ),
        ]
    )
    # The keeper and the label conflicts of a touched group depend on every member: the old members'
    # rows come from their days (the groups' days, a few partitions), projected to what is needed.
    old = _member_rows(mt, index, members)
    ids = np.concatenate([old["image_id"].to_numpy(dtype=object), new["image_id"].to_numpy(dtype=object)])
    facts = pd.concat([old[list(_MEMBER_FACTS)], new[list(_MEMBER_FACTS)]], ignore_index=True)
    processed = (facts["status"] == STATUS_PROCESSED).to_numpy(dtype=bool, na_value=False)
    name, split = assign_groups(
        components, times, order_keys, ids, previous, config.ratios, splittable=processed
    )
    group_key = order_keys[name]
    names = ids[name]
    keep = keepers(
        components,
        processed=processed,
        pixels=_pixels(facts),
        lossless=_lossless(facts),
        uploaded_us=times,
        ids=ids,
    )
    label_names: dict[str, int] = {}
    conflicts = label_conflicts(components, label_codes(facts["label"], label_names), label_names)
    competing = conflicts.lists()

    changed_members = (
        (group_key[:count_m] != index.group_key[members])
        | (split[:count_m] != index.split[members])
        | (keep[:count_m] != old["keep"].to_numpy(dtype=bool, na_value=False))
        | np.fromiter(
            (a != _labels(b) for a, b in zip(competing[:count_m], old["conflicting_labels"], strict=True)),
            dtype=bool,
            count=count_m,
        )
    )
    rewrite = set(changed_days)
    rewrite |= {day_name(d) for d in np.unique(index.day[removed & ~replaced])}
    rewrite |= {day_name(d) for d in np.unique(index.day[members[changed_members]])}

    old_rows = mt.read_days(sorted(rewrite & set(days)))
    schema = mt.table().schema().as_arrow()
    update = pd.DataFrame(
        {
            "image_key": keys.as_signed(index.image_key[members[changed_members]]),
            "dup_group": names[:count_m][changed_members],
            "group_key": keys.as_signed(group_key[:count_m][changed_members]),
            "split_code": split[:count_m][changed_members],
            "keep": keep[:count_m][changed_members],
            "conflicting_labels": pd.Series(
                [competing[i] for i in np.flatnonzero(changed_members)], dtype="object"
            ),
        }
    )
    removed_keys = set(index.image_key[removed & ~replaced].tolist())
    # Per old day, the images whose row changes or goes: only their slices' files are rewritten.
    touched_rows = np.concatenate([members[changed_members], np.flatnonzero(removed & ~replaced)])
    result: dict[str, _Part | _Written | None] = {}
    for day in sorted(rewrite):
        if day not in days:
            touched = touched_rows[index.day[touched_rows] == day_number(day)]
            part = _old_day_part(mt, index, day, touched, removed_keys)
            after = _apply_updates(part.rows, update, removed_keys, config.thresholds)
            if not _frames_equal(after, part.rows, schema):
                result[day] = _Part(after, part.bits, part.replaced)
            continue
        before = old_rows[old_rows[PARTITION_COLUMN].astype("str") == day].reset_index(drop=True)
        mine = np.flatnonzero(new["_day"].to_numpy(dtype=object) == day)
        records = new.iloc[mine].drop(columns="_day")
        after = manifest_rows(
            records,
            day=day,
            dup_group=names[count_m + mine],
            group_key=group_key[count_m + mine],
            split=split[count_m + mine],
            keep=keep[count_m + mine],
            conflicting_labels=[competing[count_m + i] for i in mine],
            thresholds=config.thresholds,
        )
        if len(after) == 0:
            if len(before):
                result[day] = None
            continue
        layout = _index_layout(mt, index, day)
        if (changed := _day_part(mt, day, after, before, _widest(schema, after), layout=layout)) is not None:
            result[day] = changed
    return _Changes(result, indexed=len(index))


def _index_layout(mt: ManifestTable, index: Index, day: str) -> tuple[list[Any], np.ndarray, np.ndarray]:
    """Return :meth:`ManifestTable.day_layout` of a day from the index the run read (which file
    holds which of the day's rows), so no file is read to know it."""
    rows = np.flatnonzero(index.day == day_number(day))
    files, stored_file = mt.index_files(rows)
    return files, index.image_key[rows], stored_file


def _old_day_part(
    mt: ManifestTable, index: Index, day: str, touched: np.ndarray, removed_keys: set[int]
) -> _Part:
    """Return the stored rows of the files of an old day that hold the ``touched`` images (index
    positions of rows that change or go), with those files: what the run rewrites of that day.
    Which file holds which row comes from the index, so only the rewritten files are read."""
    files, stored_key, stored_file = _index_layout(mt, index, day)
    gone = int(np.isin(stored_key, np.fromiter(removed_keys, dtype=np.uint64, count=len(removed_keys))).sum())
    bits = slices.slice_bits(len(stored_key) - gone)
    rewrite, _ = slices.closure(
        np.unique(slices.slice_of(index.image_key[touched], bits)),
        slices.slice_of(stored_key, bits),
        stored_file,
    )
    replaced = [files[i] for i in rewrite]
    return _Part(mt.read_files(replaced), bits, replaced)


def _apply_updates(
    rows: pd.DataFrame, update: pd.DataFrame, removed_keys: set[int], thresholds: QualityThresholds
) -> pd.DataFrame:
    """Return a day's stored rows without the removed images, with new group names, splits, keepers
    and label conflicts (and the flags that follow from them)."""
    rows = rows.copy()
    image_key = keys.as_unsigned(rows["image_key"].to_numpy(dtype=np.int64))
    if removed_keys:
        rows = rows[~np.isin(image_key, np.fromiter(removed_keys, dtype=np.uint64))].reset_index(drop=True)
        image_key = keys.as_unsigned(rows["image_key"].to_numpy(dtype=np.int64))
    if len(update):
        by_key = update.set_index(keys.as_unsigned(update["image_key"].to_numpy(dtype=np.int64)))
        hit = np.isin(image_key, by_key.index.to_numpy())
        if hit.any():
            picked = by_key.loc[image_key[hit]]
            rows.loc[hit, "dup_group"] = picked["dup_group"].to_numpy()
            rows.loc[hit, "group_key"] = picked["group_key"].to_numpy()
            rows.loc[hit, "split"] = split_names(picked["split_code"].to_numpy(dtype=np.int64))
            rows.loc[hit, "keep"] = picked["keep"].to_numpy(dtype=bool)
            competing = list(rows["conflicting_labels"])
            for at, labels in zip(np.flatnonzero(hit), picked["conflicting_labels"], strict=True):
                competing[at] = list(labels)
            rows["conflicting_labels"] = pd.Series(competing, index=rows.index, dtype="object")
            rows["quality_flags"] = flag_lists(quality_flag_matrix(rows, thresholds))
    return rows.sort_values("image_id", kind="stable").reset_index(drop=True)


#: The record facts the keeper and label-conflict rules read (:mod:`image_etl.dataset.members`).
_MEMBER_FACTS: tuple[str, ...] = ("status", "label", "width", "height", "format")


def _labels(value: Any) -> list[str]:
    """Return a stored ``conflicting_labels`` value as a list (a null reads as no conflict)."""
    return [] if value is None else [str(v) for v in value]


def _pixels(facts: pd.DataFrame) -> np.ndarray:
    width = facts["width"].to_numpy(dtype="float64", na_value=0.0)
    height = facts["height"].to_numpy(dtype="float64", na_value=0.0)
    return (width * height).astype(np.int64)


def _lossless(facts: pd.DataFrame) -> np.ndarray:
    return facts["format"].astype("object").str.upper().isin(LOSSLESS_FORMATS).to_numpy(dtype=bool)


def _member_rows(mt: ManifestTable, index: Index, members: np.ndarray) -> pd.DataFrame:
    """Return the stored facts of the old ``members`` (positions into the index), in that order."""
    columns = ["image_key", "image_id", *_MEMBER_FACTS, "keep", "conflicting_labels"]
    if not len(members):
        return pd.DataFrame({name: pd.Series(dtype="object") for name in columns})
    # Only the files holding the members (a slice each, not their whole days), filtered to them.
    found = mt.read_files(mt.index_files(members)[0], columns=columns, image_keys=index.image_key[members])
    found_keys = keys.as_unsigned(found["image_key"].to_numpy(dtype=np.int64))
    order = np.argsort(found_keys, kind="stable")
    at = _lookup(found_keys[order], order, index.image_key[members])
    if (at < 0).any():
        raise RuntimeError(f"{mt.identifier}: {int((at < 0).sum())} indexed images have no row in their day")
    return found.iloc[at].reset_index(drop=True)


# ---------------------------------------------------------------- full rebuild


def rebuild_manifest(
    mt: ManifestTable,
    days: Sequence[str],
    load_day: DayLoader,
    *,
    config: ManifestConfig | None = None,
    resplit: bool = False,
    record_files: Mapping[str, str] | None = None,
    variants: Mapping[str, str] | None = None,
    now: dt.datetime | None = None,
    progress: Callable[[str], None] | None = None,
) -> BuildResult:
    """Return what a full rebuild from every record day did (only days whose rows differ are replaced).

    :param mt: the manifest table (created if missing).
    :param days: every upload day that has a record file; days in the table but not here are emptied.
    :param load_day: day -> that day's records (called twice per day: keys first, then rows).
    :param config: the rules to build under (a rules change is what usually calls for a rebuild).
    :param resplit: assign every group its split afresh instead of keeping the table's splits.
    :param record_files: day -> fingerprint of each record file (replaces the table's whole record).
    :param variants: ``{"bucket", "prefix"}`` of the variants.
    :param now: build time of the version id.
    :param progress: called with a short line per phase (long rebuilds show where they are).
    """
    config = config or ManifestConfig()

    def run() -> BuildResult:
        mt.refresh()
        changes = _rebuild_changes(
            mt, sorted(set(days)), load_day, config, resplit, progress or (lambda _: None)
        )
        return _commit(
            mt,
            changes,
            config=config,
            record_files=record_files or {},
            replace_record_files=True,
            variants=variants,
            mode="full",
            now=now,
        )

    return _with_retries(run)


def _rebuild_changes(
    mt: ManifestTable,
    days: list[str],
    load_day: DayLoader,
    config: ManifestConfig,
    resplit: bool,
    progress: Callable[[str], None],
) -> _Changes:
    index = Index.empty() if resplit else mt.read_index()
    parts: dict[str, list[np.ndarray]] = {
        n: []
        for n in ("key", "phash", "pv", "sha", "sv", "up", "proc", "day", "pos", "ok", "px", "ll", "label")
    }
    ids: list[np.ndarray] = []
    label_names: dict[str, int] = {}  # labels as codes: 10M label strings would not fit beside the keys
    variants: set[str] = set()
    for number, day in enumerate(days):
        records = latest_per_image(normalize_records(load_day(day)))
        variants.update(variant_names(records))
        phash, phash_valid = keys.hex_keys(records["phash"], length=16)
        sha, sha_valid = keys.digest_keys(records["sha256"], length=64)
        parts["key"].append(keys.image_keys(records["image_id"]))
        parts["phash"].append(phash)
        parts["pv"].append(phash_valid)
        parts["sha"].append(sha)
        parts["sv"].append(sha_valid)
        parts["up"].append(keys.time_keys(records["uploaded_at"]))
        parts["proc"].append(keys.time_keys(records["processed_at"]))
        parts["day"].append(np.full(len(records), number, dtype=np.int32))
        parts["pos"].append(np.arange(len(records), dtype=np.int64))
        parts["ok"].append((records["status"] == STATUS_PROCESSED).to_numpy(dtype=bool, na_value=False))
        parts["px"].append(_pixels(records))
        parts["ll"].append(_lossless(records))
        parts["label"].append(label_codes(records["label"], label_names))
        ids.append(records["image_id"].to_numpy(dtype=object))
        if number % 50 == 49:
            progress(f"read keys of {number + 1}/{len(days)} days")
    joined: dict[str, np.ndarray] = {
        name: (np.concatenate(values) if values else np.empty(0)) for name, values in parts.items()
    }
    all_ids = np.concatenate(ids) if ids else np.empty(0, dtype=object)
    # The latest record of each image wins (the later day on a tie), as in an incremental run.
    order = np.lexsort((joined["pos"], joined["day"], joined["proc"], joined["key"]))
    last = (
        np.concatenate((joined["key"][order][1:] != joined["key"][order][:-1], [True]))
        if len(order)
        else order
    )
    winners = np.sort(order[last.astype(bool)]) if len(order) else order
    progress(f"{len(winners):,} images in {len(days)} days; searching duplicates")
    components = duplicate_components(
        joined["phash"][winners],
        joined["pv"][winners].astype(bool),
        joined["sha"][winners],
        joined["sv"][winners].astype(bool),
        max_distance=config.near_dup_distance,
    )
    previous = np.full(len(winners), NO_SPLIT, dtype=np.int8)
    if len(index):
        old_order = np.argsort(index.image_key, kind="stable")
        at = _lookup(index.image_key[old_order], old_order, joined["key"][winners])
        previous = np.where(at >= 0, index.split[np.maximum(at, 0)], NO_SPLIT).astype(np.int8)
    win_ids = all_ids[winners]
    processed = joined["ok"][winners].astype(bool)
    name, split = assign_groups(
        components,
        joined["up"][winners],
        joined["key"][winners],
        win_ids,
        previous,
        config.ratios,
        splittable=processed,
    )
    keep = keepers(
        components,
        processed=processed,
        pixels=joined["px"][winners].astype(np.int64),
        lossless=joined["ll"][winners].astype(bool),
        uploaded_us=joined["up"][winners].astype(np.int64),
        ids=win_ids,
    )
    conflicts = label_conflicts(components, joined["label"][winners].astype(np.int32), label_names)
    names = win_ids[name]
    group_key = joined["key"][winners][name]
    win_day = joined["day"][winners]
    win_pos = joined["pos"][winners]
    _ensure_columns(mt, variants)
    schema = mt.table().schema().as_arrow()
    result: dict[str, _Part | _Written | None] = {}
    write_uuid, counter = uuid.uuid4(), itertools.count(0)
    progress("building and comparing days")
    for number, day in enumerate(days):
        mine = np.flatnonzero(win_day == number)
        records = latest_per_image(normalize_records(load_day(day))).iloc[win_pos[mine]]
        after = manifest_rows(
            records,
            day=day,
            dup_group=names[mine],
            group_key=group_key[mine],
            split=split[mine],
            keep=keep[mine],
            conflicting_labels=conflicts.lists(mine),
            thresholds=config.thresholds,
        )
        before = mt.read_days([day])
        if not len(after):
            if len(before):
                result[day] = None
        elif (part := _day_part(mt, day, after, before, _widest(schema, after))) is not None:
            result[day] = _write_day(mt, part, write_uuid, counter)
        if number % 50 == 49:
            progress(f"built {number + 1}/{len(days)} days, {len(result)} changed")
    in_table = {day_name(d) for d in np.unique(index.day)} if len(index) else set(_table_days(mt))
    for day in sorted(in_table - set(days)):
        result[day] = None
    return _Changes(result, indexed=len(index))


def _widest(schema: pa.Schema, rows: pd.DataFrame) -> pa.Schema:
    """Return the table schema plus variant columns only ``rows`` has (so new variants count as a change)."""
    extra = [c for c in rows.columns if c.startswith("variant_") and c not in schema.names]
    return pa.schema([*schema, *(pa.field(c, pa.string()) for c in extra)])


def _table_days(mt: ManifestTable) -> Iterable[str]:
    return {d for f in mt.data_files() for d in [_day_of(f)]}


def _day_of(data_file: object) -> str:
    from image_etl.dataset.table import _partition_day

    return _partition_day(data_file)  # type: ignore[arg-type]
