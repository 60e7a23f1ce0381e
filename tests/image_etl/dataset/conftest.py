"""Helpers for the dataset tests: a manifest table on a local-filesystem warehouse (SQLite catalog)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from image_etl.dataset.build import BuildResult, rebuild_manifest, update_manifest
from image_etl.dataset.records import records_frame, upload_day
from image_etl.dataset.rules import ManifestConfig
from image_etl.dataset.table import ManifestTable, local_catalog


@pytest.fixture
def table(tmp_path: Path) -> ManifestTable:
    return ManifestTable(local_catalog(tmp_path / "warehouse"), "image_etl")


def by_day(records: Iterable[Mapping[str, Any]]) -> dict[str, pd.DataFrame]:
    """Return records grouped into day frames, as the daily record files hold them."""
    days: dict[str, list[Mapping[str, Any]]] = {}
    for record in records:
        days.setdefault(upload_day(record), []).append(record)
    return {day: records_frame(rows) for day, rows in days.items()}


def rebuild(table: ManifestTable, days: Mapping[str, pd.DataFrame], **options: Any) -> BuildResult:
    return rebuild_manifest(table, sorted(days), lambda d: days[d], **options)


def incremental(table: ManifestTable, days: Mapping[str, pd.DataFrame], **options: Any) -> BuildResult:
    return update_manifest(table, days, **options)


def head(table: ManifestTable) -> pd.DataFrame:
    """Return the table's newest version (published or not) as readers see it."""
    version = table.head_version()
    assert version is not None
    return table.read(version.name)


def build_once(
    tmp_path: Path,
    records: Iterable[Mapping[str, Any]],
    *,
    config: ManifestConfig | None = None,
    name: str = "w",
) -> pd.DataFrame:
    """Return the manifest a first build of ``records`` makes (a fresh table)."""
    table = ManifestTable(local_catalog(tmp_path / name), "image_etl")
    rebuild(table, by_day(records), config=config or ManifestConfig())
    return head(table)
