"""The asset checks fail on bad data, and a blocking failure keeps the bad manifest from consumers."""

from __future__ import annotations

from typing import Any

import dagster as dg
import pandas as pd
import pytest

from image_etl.manifest import latest_version, list_versions, manifest_table
from image_etl.settings import Settings
from pipelines.asset_checks import row_count_check, split_leak_check
from pipelines.resources import DatasetPolicy, ManifestVersion, build_resources
from tests.imaging import encode, photo_like
from tests.pipelines.conftest import upload_and_process
from tests.pipelines.test_assets import CORE, metadata_of, run_dataset_job

pytestmark = pytest.mark.slow  # each test runs the job in process


def checks_of(result: Any) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def test_a_missing_variant_blocks_publishing(
    stack: Settings, resources: dict[str, Any], instance: dg.DagsterInstance
) -> None:
    [one, _] = upload_and_process(
        stack, [("uploads/cats/a.jpg", encode(photo_like(1))), ("uploads/cats/b.jpg", encode(photo_like(2)))]
    )
    stack.client("s3").delete_object(
        Bucket=stack.variants_bucket, Key=f"{stack.variants_prefix}{one['image_id']}/thumb.jpg"
    )

    result = run_dataset_job(resources, instance, assets=[*CORE, dg.AssetKey("dataset_report")])

    assert not result.success
    evaluation = checks_of(result)["variants_exist_check"]
    assert not evaluation.passed and evaluation.metadata["missing_variants"].value == 1
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert materialized == {"image_records", "dataset_manifest"}  # neither the published tag nor the report
    assert latest_version(stack) is None and len(list_versions(stack)) == 1


def test_a_high_failed_rate_warns_but_publishes(stack: Settings, instance: dg.DagsterInstance) -> None:
    resources = build_resources(stack, DatasetPolicy(max_failed_rate=0.3))
    upload_and_process(
        stack,
        [("uploads/cats/ok.jpg", encode(photo_like(1)))]
        + [(f"uploads/cats/bad{i}.jpg", b"junk") for i in range(2)],
    )

    result = run_dataset_job(resources, instance, assets=CORE)

    evaluation = checks_of(result)["failed_rate_check"]
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.WARN
    assert evaluation.metadata["failed_rate"].value == round(2 / 3, 4)
    assert result.success and latest_version(stack) is not None


def test_label_conflicts_warn_by_default_and_block_when_the_policy_says_so(
    stack: Settings, instance: dg.DagsterInstance
) -> None:
    picture = encode(photo_like(7))
    upload_and_process(
        stack,
        [
            ("uploads/cats/x.jpg", picture),
            ("uploads/dogs/x.jpg", picture),
            ("uploads/cats/y.jpg", encode(photo_like(8))),
        ],
    )

    warned = run_dataset_job(build_resources(stack, DatasetPolicy()), instance, assets=CORE)
    evaluation = checks_of(warned)["label_conflict_check"]
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.WARN
    assert (
        evaluation.metadata["conflict_groups"].value == 1
        and evaluation.metadata["conflict_images"].value == 2
    )
    assert evaluation.metadata["examples"].value[0]["labels"] == ["cats", "dogs"]
    assert warned.success and latest_version(stack) is not None
    meta = metadata_of(warned, "dataset_manifest")
    assert (meta["label_conflict_groups"], meta["label_conflict_images"]) == (1, 2)

    published = latest_version(stack)
    upload_and_process(stack, [("uploads/emus/x.jpg", picture)])  # a third label: a new version
    blocked = run_dataset_job(
        build_resources(stack, DatasetPolicy(label_conflicts_block=True)), instance, assets=CORE
    )
    evaluation = checks_of(blocked)["label_conflict_check"]
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR
    assert evaluation.metadata["examples"].value[0]["labels"] == ["cats", "dogs", "emus"]
    materialized = {e.asset_key.to_user_string() for e in blocked.get_asset_materialization_events()}
    assert "published_manifest" not in materialized and latest_version(stack) == published


def test_the_blocking_setting_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert not DatasetPolicy.from_env().label_conflicts_block
    monkeypatch.setenv("IMAGE_ETL_LABEL_CONFLICTS_BLOCK", "true")
    assert DatasetPolicy.from_env().label_conflicts_block
    monkeypatch.setenv("IMAGE_ETL_LABEL_CONFLICTS_BLOCK", "maybe")
    with pytest.raises(ValueError, match="IMAGE_ETL_LABEL_CONFLICTS_BLOCK"):
        DatasetPolicy.from_env()


def write_version(stack: Settings, rows: pd.DataFrame) -> ManifestVersion:
    """Commit ``rows`` (stored columns) as a new tagged version, bypassing the build's rules."""
    from image_etl.dataset.build import _Changes, _commit, _Part
    from image_etl.dataset.rules import ManifestConfig
    from image_etl.dataset.slices import slice_bits

    table = manifest_table(stack)
    days: dict[str, _Part | None] = {
        str(day): _Part(part.reset_index(drop=True), slice_bits(len(part)), table.data_files([str(day)]))
        for day, part in rows.groupby(rows["upload_day"].astype(str))
    }
    existing = {str(d) for d in table.read(table.head_version().name)["upload_day"].astype(str)}
    days.update({day: None for day in existing - set(days)})
    result = _commit(
        table,
        _Changes(days, 0),
        config=ManifestConfig(),
        record_files={},
        replace_record_files=False,
        variants=None,
        mode="test",
        now=None,
    )
    return ManifestVersion(result.version, result.snapshot_id, result.rows, False)


def test_split_leak_and_row_count_checks_fail_on_a_bad_manifest(
    stack: Settings, resources: dict[str, Any], instance: dg.DagsterInstance
) -> None:
    upload_and_process(stack, [(f"uploads/cats/{i}.jpg", encode(photo_like(i))) for i in range(3)])
    assert run_dataset_job(resources, instance, assets=CORE).success
    table = manifest_table(stack)
    good = table.read(latest_version(stack), index_columns=True).drop(columns="dup_group_size")
    bad = good.copy()
    bad.loc[1, ["sha256", "dup_group"]] = bad.loc[0, ["sha256", "dup_group"]].to_numpy()
    bad.loc[1, "split"] = "test" if bad.loc[0, "split"] != "test" else "train"
    datasets = resources["datasets"]

    leak = split_leak_check(dataset_manifest=write_version(stack, bad), datasets=datasets)
    rows = row_count_check(dataset_manifest=write_version(stack, good.iloc[:2]), datasets=datasets)
    fine = row_count_check(dataset_manifest=write_version(stack, good), datasets=datasets)

    assert not leak.passed and leak.metadata["sha256_in_two_splits"].value == 1
    assert leak.metadata["dup_groups_in_two_splits"].value == 1
    assert not rows.passed and rows.metadata["manifest_rows"].value == 2
    assert rows.metadata["distinct_source_images"].value == 3
    assert fine.passed
