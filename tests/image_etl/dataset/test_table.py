"""Versions are tagged snapshots; `published` moves forward only; a lost catalog entry is recovered."""

from __future__ import annotations

from pathlib import Path

import pytest

from image_etl.dataset.table import ManifestNotFound, ManifestTable, VersionExpired, local_catalog
from tests.image_etl.dataset.conftest import by_day, incremental, rebuild
from tests.pipelines.conftest import fake_record


def two_versions(table: ManifestTable) -> tuple[str, str]:
    first = rebuild(table, by_day([fake_record("a", processed_at="2026-11-25T10:00:00.000000Z")]))
    second = incremental(
        table,
        by_day([fake_record("b", processed_at="2026-11-26T10:00:00.000000Z", phash="0123456789abcdef")]),
    )
    assert first.version and second.version
    return first.version, second.version


def test_each_build_is_a_tagged_snapshot_and_published_moves_only_forward(table: ManifestTable) -> None:
    first, second = two_versions(table)

    assert [v.name for v in table.versions()] == [first, second]
    assert table.head_version().name == second and table.published() is None
    with pytest.raises(ManifestNotFound, match="no manifest published yet"):
        table.read()

    assert table.publish(second) is True
    assert table.publish(first) is False  # an older build finishing late never moves it back
    assert table.published().name == second and table.published_log() == [second]
    assert len(table.read()) == 2 and len(table.read(first)) == 1
    snapshot = table.resolve(first).snapshot_id
    assert table.read(str(snapshot)).attrs["version"] == str(snapshot)  # a snapshot id reads too
    # The snapshot's summary names its version, so other engines can find it without tags.
    summary = table.table().snapshot_by_id(snapshot).summary
    assert summary.additional_properties["image-etl.version"] == first


def test_unknown_versions_and_snapshots_are_clear_errors(table: ManifestTable) -> None:
    two_versions(table)

    with pytest.raises(ManifestNotFound, match="no manifest version 'nope'"):
        table.read("nope")
    with pytest.raises(VersionExpired, match="expired or never written"):
        table.read("123")


def test_a_table_the_catalog_lost_is_registered_again_from_its_files(tmp_path: Path) -> None:
    location = (tmp_path / "files" / "manifest").as_uri()
    table = ManifestTable(local_catalog(tmp_path / "catalog"), "image_etl", location=location)
    first, second = two_versions(table)
    table.publish(second)
    table.catalog.drop_table(table.identifier)  # e.g. the local stack's Glue after a restart

    again = ManifestTable(local_catalog(tmp_path / "catalog"), "image_etl", location=location)

    assert [v.name for v in again.versions()] == [first, second] and again.published().name == second
    assert len(again.read()) == 2
