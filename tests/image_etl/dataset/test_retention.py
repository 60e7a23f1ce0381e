"""Retention: the policy's versions stay readable, the others are a clear error, and exactly the files
no kept version references are deleted."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from image_etl.dataset.retention import apply_retention, referenced_files, table_files, versions_to_keep
from image_etl.dataset.rules import RetentionPolicy
from image_etl.dataset.table import ManifestTable, Version, VersionExpired
from tests.image_etl.dataset.conftest import by_day, incremental, rebuild
from tests.pipelines.conftest import fake_record


def grow(table: ManifestTable, runs: int, *, publish: bool = True) -> list[str]:
    versions = [
        rebuild(table, by_day([fake_record("seed", processed_at="2026-11-01T10:00:00.000000Z")])).version
    ]
    for run in range(runs):
        day = f"2026-11-{2 + run % 3:02d}"
        records = [
            fake_record(
                f"r{run}-{i}",
                processed_at=f"{day}T10:00:{i:02d}.000000Z",
                phash=f"{(run * 31 + i) * 0x9E3779B97F4A7C15 % 2**64:016x}",
            )
            for i in range(3)
        ]
        result = incremental(table, by_day(records))
        versions.append(result.version)
        if publish:
            table.publish(result.version)
    return versions[1:] if publish else versions


def test_policy_keeps_recent_and_last_published_and_everything_newer_than_published() -> None:
    now = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    day = 86_400_000
    base = int(now.timestamp() * 1000)
    # Built 39..33 days ago, except the third (10 days ago); two more a day ago.
    versions = [
        Version(f"2026110{i}T000000Z-00000{i}", i, base - (10 if i == 3 else 40 - i) * day)
        for i in range(1, 8)
    ]
    versions += [
        Version("20261130T000000Z-aaaaaa", 8, base - day),
        Version("20261130T010000Z-bbbbbb", 9, base - day),
    ]
    keep = versions_to_keep(
        versions,
        published=versions[7],
        published_log=[v.name for v in versions[:8]],
        head_snapshot=9,
        policy=RetentionPolicy(keep_days=35, keep_last=2),
        now=now,
    )
    # Published within 35 days (the 3rd, the 5th..7th built 35..33 days ago, the 8th), the last two
    # published by build time (3rd, 8th), the pending 9th; the 1st, 2nd and 4th go.
    assert keep == {versions[i].name for i in (2, 4, 5, 6, 7, 8)}


def test_retention_deletes_exactly_the_unreferenced_files_and_expired_versions_are_a_clear_error(
    table: ManifestTable,
) -> None:
    versions = grow(table, 8)
    before = {uri for uri, _, _ in table_files(table)}
    stray = Path(table.table().location().removeprefix("file://")) / "data" / "stray.parquet"
    stray.write_bytes(b"left by a crashed writer")

    result = apply_retention(table, RetentionPolicy(keep_days=0, keep_last=3, min_file_age_s=0))

    assert (
        set(result.expired_versions) >= set(versions[:5]) and len(result.expired_versions) == 6
    )  # + the seed
    assert [v.name for v in table.versions()][-3:] == versions[-3:]
    after = {uri for uri, _, _ in table_files(table)}
    referenced = {u.removeprefix("file:").lstrip("/") for u in referenced_files(table)}
    assert {u.removeprefix("file:").lstrip("/") for u in after} == referenced  # nothing kept is unreferenced
    deleted = {u.removeprefix("file:").lstrip("/") for u in result.deleted_files}
    unreferenced = {u.removeprefix("file:").lstrip("/") for u in before | {stray.as_uri()}} - referenced
    # Exactly the unreferenced files went (pyiceberg itself drops old metadata JSON at each commit).
    assert deleted <= unreferenced
    assert {u for u in unreferenced if not u.endswith(".metadata.json")} <= deleted
    assert not stray.exists() and result.deleted_bytes > 0
    for kept in versions[-3:]:
        assert len(table.read(kept)) > 1  # still readable: none of its files went
    with pytest.raises(VersionExpired, match="retention policy expired it"):
        table.read(versions[0])
    # A version built in the same second as the oldest kept one differs in its hash part only: the
    # hash says nothing about build order, so it is still "expired", whatever it sorts as.
    oldest = table.versions()[0].name
    for digest in ("000000000000", "ffffffffffff"):
        with pytest.raises(VersionExpired, match="retention policy expired it"):
            table.read(f"{oldest[:16]}-{digest}")


def test_young_files_are_never_deleted(table: ManifestTable) -> None:
    grow(table, 3)
    stray = Path(table.table().location().removeprefix("file://")) / "data" / "in-flight.parquet"
    stray.write_bytes(b"a commit still writing")

    result = apply_retention(table, RetentionPolicy(keep_days=0, keep_last=1, min_file_age_s=3600))

    assert stray.exists() and str(stray) not in {u.removeprefix("file://") for u in result.deleted_files}
