"""``expire_manifest_versions`` run by ``retention_job`` against the local emulation: old versions
expire, their files and reports go."""

from __future__ import annotations

import dagster as dg
import pytest

from image_etl.dataset.record_files import build_from_record_files, write_record_files
from image_etl.dataset.rules import ManifestConfig
from image_etl.manifest import DatasetStore, VersionExpired, list_versions, manifest_table, read_manifest
from image_etl.settings import Settings
from pipelines.definitions import make_definitions
from pipelines.resources import DatasetPolicy, build_resources
from tests.pipelines.conftest import fake_record

pytestmark = pytest.mark.slow  # each test runs a Dagster job in process


def test_retention_job_expires_old_versions_with_their_files_and_reports(
    stack: Settings, instance: dg.DagsterInstance
) -> None:
    store = DatasetStore.from_settings(stack)
    table = manifest_table(stack)
    versions = []
    for run in range(3):
        records = [
            fake_record(f"r{run}", processed_at=f"2026-11-2{run}T10:00:00.000000Z", phash=f"{run + 1:016x}")
        ]
        write_record_files(store, records, [f"2026-11-2{run}"])
        version = build_from_record_files(table, store, config=ManifestConfig()).version
        table.publish(version)
        store.put(f"{store.version_prefix(version)}report/summary.md", b"# report")
        versions.append(version)
    files_before = len(table.data_files())
    policy = DatasetPolicy(retain_days=0, retain_versions=1, retain_min_file_age_s=0)

    result = (
        make_definitions(build_resources(stack, policy))
        .resolve_job_def("retention_job")
        .execute_in_process(instance=instance)
    )

    assert result.success
    assert list_versions(stack) == versions[-1:]
    assert len(read_manifest(settings=stack)) == 3 and len(manifest_table(stack).data_files()) == files_before
    with pytest.raises(VersionExpired):
        read_manifest(versions[0], settings=stack)
    assert not store.exists(f"{store.version_prefix(versions[0])}report/summary.md")
    assert store.exists(f"{store.version_prefix(versions[-1])}report/summary.md")
    assert result.output_for_node("expire_manifest_versions")["expired_versions"] == 2
