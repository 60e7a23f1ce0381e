"""The local compact-index cache: a run reads from the table only the files it has not cached, a
corrupt entry is read again, entries of files the table dropped are pruned, and no cache (or a broken
one) changes what a run computes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from image_etl.dataset.groups import split_codes
from image_etl.dataset.index_cache import CACHE_VARIABLE, IndexCache, default_cache_root
from image_etl.dataset.table import Index, ManifestTable, local_catalog
from image_etl.manifest import manifest_table
from image_etl.settings import Settings
from tests.image_etl.dataset.conftest import by_day, head, incremental, rebuild
from tests.pipelines.conftest import fake_record

DAYS = ("2026-11-20", "2026-11-21", "2026-11-22")


def phash_of(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()[:16]


def records_on(day: str, names: list[str]) -> list[dict]:
    return [
        fake_record(name, processed_at=f"{day}T10:00:0{i}.000000Z", phash=phash_of(name))
        for i, name in enumerate(names)
    ]


def three_days(table: ManifestTable) -> None:
    rebuild(table, by_day([r for day in DAYS for r in records_on(day, [f"{day}-a", f"{day}-b"])]))


def uncached(table: ManifestTable) -> ManifestTable:
    """Return the same table (same catalog) read without any cache."""
    return ManifestTable(table.catalog, table.database, index_cache=False)


def assert_same_index(got: Index, want: Index) -> None:
    order_got, order_want = np.argsort(got.image_key), np.argsort(want.image_key)
    for name in want.__dataclass_fields__:
        np.testing.assert_array_equal(getattr(got, name)[order_got], getattr(want, name)[order_want], name)


def files_of(table: ManifestTable, day: str) -> list[str]:
    return [f.file_path for f in table.data_files([day])]


def test_a_run_reads_from_the_table_only_the_files_it_has_not_cached(table: ManifestTable) -> None:
    three_days(table)
    table.read_index()
    assert table.index_files_read == []  # the build cached the files it wrote

    # Another writer without a cache (a fresh machine) rewrites the middle day.
    other = uncached(table)
    before = sorted(f.file_path for f in other.data_files())
    incremental(other, by_day(records_on(DAYS[1], [f"{DAYS[1]}-a", f"{DAYS[1]}-b", f"{DAYS[1]}-c"])))
    assert sorted(other.index_files_read) == before  # without a cache, every file

    table.refresh()
    index = table.read_index()
    assert table.index_files_read == files_of(table, DAYS[1])  # only the rewritten day
    assert_same_index(index, uncached(table).read_index())
    assert len(index) == 7

    table.read_index()
    assert table.index_files_read == []  # and now that one is cached too


@pytest.mark.parametrize("batch_rows", [1, 3, 5, 1 << 20])
def test_files_read_in_batches_land_at_their_own_rows(
    table: ManifestTable, monkeypatch: pytest.MonkeyPatch, batch_rows: int
) -> None:
    """Uncached files are read several to a batch: each file's rows must still be the rows the
    index says it holds (which files a run rewrites comes from that), whatever the batch cuts."""
    import image_etl.dataset.table as table_module

    rebuild(table, by_day([r for day in DAYS for r in records_on(day, [f"{day}-{c}" for c in "abc"])]))
    cache = table.index_cache()
    assert cache is not None
    files = table.data_files()
    cache.path(files[0]).unlink()  # the cache lacks the first and last files, not the middle one
    cache.path(files[-1]).unlink()
    monkeypatch.setattr(table_module, "INDEX_BATCH_ROWS", batch_rows)

    for reader in (table, uncached(table)):
        index = reader.read_index()
        at = 0
        for data_file in files:
            stored = reader.read_files([data_file], columns=["image_key", "upload_day"])
            rows = slice(at, at + len(stored))
            np.testing.assert_array_equal(
                index.image_key[rows].view(np.int64), stored["image_key"].to_numpy(np.int64)
            )
            owners, _ = reader.index_files(np.arange(rows.start, rows.stop))
            assert [f.file_path for f in owners] == [data_file.file_path]
            at += len(stored)
        assert at == len(index) == 9
    assert sorted(table.index_files_read) == sorted([files[0].file_path, files[-1].file_path])
    assert_same_index(table.read_index(), uncached(table).read_index())


def test_a_cold_read_keeps_null_keys_and_each_files_own_split_names(table: ManifestTable) -> None:
    """Failed images have no pHash or sha256 (null, not 0) and no split; files hold different split
    names (their own dictionaries): read all in one batch, each row keeps its own."""
    records = []
    for d, day in enumerate(DAYS):
        names = [f"{day}-{c}" for c in "abcdefgh"]
        for i, record in enumerate(records_on(day, names)):
            if (i + d) % 3 == 0:  # a different mix of failed rows in every file
                record = fake_record(names[i], processed_at=record["processed_at"], status="failed")
            records.append(record)
    rebuild(table, by_day(records))
    reader = uncached(table)
    index = reader.read_index()
    at = 0
    for data_file in reader.data_files():
        stored = reader.read_files([data_file], columns=["phash_key", "sha256_key", "split"])
        rows = slice(at, at + len(stored))
        np.testing.assert_array_equal(index.phash_valid[rows], stored["phash_key"].notna().to_numpy())
        np.testing.assert_array_equal(index.sha_valid[rows], stored["sha256_key"].notna().to_numpy())
        names = [None if pd.isna(v) else str(v) for v in stored["split"]]
        np.testing.assert_array_equal(index.split[rows], split_codes(names))
        at += len(stored)
    assert at == len(index) == 24
    assert not index.phash_valid.all() and index.phash_valid.any()
    assert len(set(index.split.tolist())) >= 3  # several split names (and none) across the files


def test_a_corrupt_or_truncated_entry_is_read_from_the_table_again(table: ManifestTable) -> None:
    three_days(table)
    cache = table.index_cache()
    assert cache is not None
    first, second, *_ = table.data_files()
    entry = cache.path(first)
    damaged = bytearray(entry.read_bytes())
    damaged[-5] ^= 0xFF  # one flipped byte in the data
    entry.write_bytes(bytes(damaged))
    cache.path(second).write_bytes(cache.path(second).read_bytes()[:40])  # cut short

    index = table.read_index()

    assert sorted(table.index_files_read) == sorted([first.file_path, second.file_path])
    assert_same_index(index, uncached(table).read_index())
    table.read_index()
    assert table.index_files_read == []  # both entries were written again


def test_entries_of_files_no_longer_in_the_table_are_pruned(table: ManifestTable) -> None:
    three_days(table)
    cache = table.index_cache()
    assert cache is not None
    replaced = table.data_files([DAYS[0]])
    incremental(table, by_day(records_on(DAYS[0], [f"{DAYS[0]}-a", f"{DAYS[0]}-z"])))

    table.read_index()

    kept = {cache.path(f).name for f in table.data_files()}
    assert {p.name for p in cache.folder.glob("*.idx")} == kept
    assert not any(cache.path(f).exists() for f in replaced)


def test_runs_without_a_cache_or_with_an_unusable_one_compute_the_same_table(tmp_path: Path) -> None:
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the cache folder should be")
    tables = {
        "cached": ManifestTable(local_catalog(tmp_path / "a"), "image_etl", index_cache=tmp_path / "c"),
        "off": ManifestTable(local_catalog(tmp_path / "b"), "image_etl", index_cache=False),
        "unwritable": ManifestTable(local_catalog(tmp_path / "d"), "image_etl", index_cache=blocked / "x"),
    }
    near = f"{int(phash_of(f'{DAYS[0]}-a'), 16) ^ 0b111:016x}"  # 3 bits from an image of the first day
    copies = [
        fake_record("near", processed_at="2026-11-23T10:00:00.000000Z", phash=near),
        fake_record("same", processed_at="2026-11-23T10:00:01.000000Z", phash=phash_of(f"{DAYS[1]}-b")),
    ]
    for table in tables.values():
        three_days(table)
        incremental(table, by_day(copies))
    frames = {}
    for name, table in tables.items():
        frames[name] = head(table)
        frames[name].attrs = {}
    pd.testing.assert_frame_equal(frames["cached"], frames["off"])
    pd.testing.assert_frame_equal(frames["unwritable"], frames["off"])
    assert tables["off"].index_cache() is None
    names = frames["off"]["source_key"].str.extract(r"/([^/]+)\.jpg$")[0]
    groups = frames["off"].set_index(names)["dup_group"]
    assert groups["near"] == groups[f"{DAYS[0]}-a"] and groups["same"] == groups[f"{DAYS[1]}-b"]


def test_the_cache_location_is_a_setting_and_can_be_switched_off(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(CACHE_VARIABLE, str(tmp_path / "mine"))
    assert default_cache_root() == tmp_path / "mine"
    monkeypatch.setenv(CACHE_VARIABLE, "off")
    assert default_cache_root() is None
    monkeypatch.delenv(CACHE_VARIABLE)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_root() == tmp_path / "xdg" / "image-etl" / "index"
    # Two tables never share entries (one folder per table location).
    assert IndexCache(tmp_path, "file:///a").folder != IndexCache(tmp_path, "file:///b").folder


def test_a_table_in_object_storage_reads_the_same_index_cold_as_warm(
    stack: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On S3 (the emulator over HTTP) the files the cache lacks are read several at once: the index,
    row for row, is the one the files hold, in the files' order."""
    import image_etl.dataset.table as table_module

    monkeypatch.setattr(table_module, "INDEX_BATCH_ROWS", 8)  # 2 files (4 rows each) a batch
    table = manifest_table(stack)
    rebuild(table, by_day([r for day in DAYS for r in records_on(day, [f"{day}-{c}" for c in "abcd"])]))
    cold = ManifestTable(table.catalog, table.database, location=table.location, index_cache=False)

    index = cold.read_index()

    files = cold.data_files()
    assert all(f.file_path.startswith("s3://") for f in files)
    assert sorted(cold.index_files_read) == sorted(f.file_path for f in files)
    stored = [cold.read_files([f], columns=["image_key"])["image_key"].to_numpy(np.int64) for f in files]
    np.testing.assert_array_equal(index.image_key.view(np.int64), np.concatenate(stored))
    assert_same_index(index, table.read_index())  # the writer's cached copy
    assert table.index_files_read == []
