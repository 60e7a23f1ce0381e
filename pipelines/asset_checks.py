"""Dagster asset checks on each manifest version (their rules: ``image_etl.dataset.checks``).

Blocking (a failure stops ``published_manifest``, ``dataset_report`` and ``imagefolder_export`` in
the same run, so consumers keep the previous ``published`` version): missing variants would hand out broken
links, a split leak contaminates evaluation, a row count off means images were lost or doubled.
The failed-image rate only warns: failed images are flagged in the manifest, so it stays correct,
but a jump means the resizer or its inputs broke. Label conflicts warn by default (every member is
flagged, so a consumer can drop them) and block when the policy's ``label_conflicts_block`` is set.
"""

from __future__ import annotations

import io

import dagster as dg
import pandas as pd

from image_etl.dataset import checks as mf
from image_etl.dataset.rules import STATUS_FAILED, STATUS_PROCESSED
from pipelines.assets import dataset_manifest
from pipelines.resources import DatasetBucket, DatasetPolicy, ManifestVersion


def _version(
    datasets: DatasetBucket, manifest: ManifestVersion, columns: list[str] | None = None
) -> pd.DataFrame:
    return datasets.table().read(manifest.version, columns=columns)


def record_image_ids(datasets: DatasetBucket) -> set[str]:
    """Return the distinct image ids of every daily record file (their ``image_id`` column only)."""
    store = datasets.store()
    ids: set[str] = set()
    for day in store.record_files():
        frame = pd.read_parquet(io.BytesIO(store.read_bytes(store.records_key(day))), columns=["image_id"])
        ids.update(frame["image_id"].astype(str))
    return ids


@dg.asset_check(
    asset=dataset_manifest, blocking=True, description="Every processed image's variants exist in S3."
)
def variants_exist_check(dataset_manifest: ManifestVersion, datasets: DatasetBucket) -> dg.AssetCheckResult:
    manifest = _version(datasets, dataset_manifest)
    missing = mf.missing_variants(manifest, datasets.variant_keys())
    processed = int((manifest["status"] == STATUS_PROCESSED).sum())
    return dg.AssetCheckResult(
        passed=bool(missing.empty),
        metadata={
            "processed_images": processed,
            "missing_variants": len(missing),
            "examples": dg.MetadataValue.json(missing.head(10).astype(str).to_dict("records")),
        },
    )


@dg.asset_check(
    asset=dataset_manifest,
    blocking=False,
    description="The share of failed images stays under the policy's max_failed_rate.",
)
def failed_rate_check(
    dataset_manifest: ManifestVersion, datasets: DatasetBucket, policy: DatasetPolicy
) -> dg.AssetCheckResult:
    manifest = _version(datasets, dataset_manifest, ["image_id", "status", "error_code"])
    rate = mf.failed_rate(manifest)
    codes = manifest.loc[manifest["status"] == STATUS_FAILED, "error_code"].value_counts().head(10)
    return dg.AssetCheckResult(
        passed=bool(rate <= policy.max_failed_rate),
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "failed_rate": round(rate, 4),
            "threshold": policy.max_failed_rate,
            "error_codes": dg.MetadataValue.json({str(k): int(v) for k, v in codes.items()}),
        },
    )


@dg.asset_check(
    asset=dataset_manifest, blocking=True, description="No sha256 and no dup_group appears in two splits."
)
def split_leak_check(dataset_manifest: ManifestVersion, datasets: DatasetBucket) -> dg.AssetCheckResult:
    manifest = _version(datasets, dataset_manifest, ["image_id", "sha256", "dup_group", "split"])
    leaks = mf.split_leaks(manifest)
    return dg.AssetCheckResult(
        passed=not any(leaks.values()),
        metadata={
            "sha256_in_two_splits": len(leaks["sha256"]),
            "dup_groups_in_two_splits": len(leaks["dup_group"]),
            "examples": dg.MetadataValue.json(leaks),
        },
    )


@dg.asset_check(
    asset=dataset_manifest,
    blocking=True,
    description="Manifest rows equal the distinct source images in the record files, one row each.",
)
def row_count_check(dataset_manifest: ManifestVersion, datasets: DatasetBucket) -> dg.AssetCheckResult:
    manifest = _version(datasets, dataset_manifest, ["image_id"])
    records = record_image_ids(datasets)
    expected = len(records)
    doubled = int(manifest["image_id"].duplicated().sum())
    absent = records - set(manifest["image_id"])
    return dg.AssetCheckResult(
        passed=bool(len(manifest) == expected and doubled == 0 and not absent),
        metadata={
            "manifest_rows": len(manifest),
            "distinct_source_images": expected,
            "duplicate_rows": doubled,
            "missing_images": dg.MetadataValue.json(sorted(absent)[:10]),
        },
    )


@dg.asset_check(
    asset=dataset_manifest,
    # Blocking only takes effect on an ERROR result: the policy decides which severity it returns.
    blocking=True,
    description="No duplicate group carries two labels (warns; blocks with label_conflicts_block).",
)
def label_conflict_check(
    dataset_manifest: ManifestVersion, datasets: DatasetBucket, policy: DatasetPolicy
) -> dg.AssetCheckResult:
    manifest = _version(datasets, dataset_manifest, ["image_id", "dup_group", "conflicting_labels"])
    conflicts = mf.label_conflicts(manifest)
    severity = dg.AssetCheckSeverity.ERROR if policy.label_conflicts_block else dg.AssetCheckSeverity.WARN
    return dg.AssetCheckResult(
        passed=conflicts.empty,
        severity=severity,
        metadata={
            "conflict_groups": len(conflicts),
            "conflict_images": int(conflicts["images"].sum()),
            "blocking": policy.label_conflicts_block,
            "examples": dg.MetadataValue.json(conflicts.head(10).to_dict("records")),
        },
    )
