"""Ops of the op-based jobs: ``expire_manifest_versions`` (``retention_job``) expires the manifest
versions the policy drops and deletes the files nothing keeps."""

# No `from __future__ import annotations`: Dagster reads the op's annotations at definition time.

import dagster as dg
from dagster import OpExecutionContext

from image_etl.dataset.retention import apply_retention
from pipelines.resources import DatasetBucket, DatasetPolicy


@dg.op(description="Expire versions outside the retention policy; delete unreferenced table files.")
def expire_manifest_versions(
    context: OpExecutionContext, datasets: DatasetBucket, policy: DatasetPolicy
) -> dg.Output[dict[str, int]]:
    table = datasets.table()
    if not table.exists():
        context.log.info("no manifest table yet: nothing to expire")
        return dg.Output({"expired_versions": 0, "deleted_files": 0})
    result = apply_retention(table, policy.retention())
    store = datasets.store()
    # The report and the export of an expired version point at rows that are gone: remove them too.
    extras = sum(store.delete_prefix(store.version_prefix(name)) for name in result.expired_versions)
    context.log.info(
        f"expired {len(result.expired_versions)} versions ({result.expired_snapshots} snapshots), "
        f"deleted {len(result.deleted_files)} files ({result.deleted_bytes} bytes) and {extras} "
        "report/export "
        f"objects; the table holds {result.table_bytes} bytes"
    )
    facts = {
        "expired_versions": len(result.expired_versions),
        "deleted_files": len(result.deleted_files),
        "deleted_bytes": result.deleted_bytes,
        "table_bytes": result.table_bytes,
        "kept_versions": len(result.kept_versions),
    }
    return dg.Output(
        facts,
        metadata={**facts, "expired": dg.MetadataValue.json(result.expired_versions[:50])},
    )
