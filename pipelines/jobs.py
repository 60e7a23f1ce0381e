"""The jobs the sensor and the schedules launch: ``dataset_job`` (the asset graph) and ``retention_job``."""

from __future__ import annotations

import dagster as dg

from pipelines.assets import image_records
from pipelines.ops import expire_manifest_versions

#: Every run that writes the dataset carries this tag; the local run queue runs one at a time.
DATASET_RUN_TAG = {"image-etl/dataset": "build"}


def range_tags(first: str, last: str) -> dict[str, str]:
    """Return the run tags that make one run cover partitions ``first..last`` (single-run backfill)."""
    return {"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last}


dataset_job = dg.define_asset_job(
    "dataset_job",
    selection=dg.AssetSelection.assets(image_records).downstream(),
    # One process for the whole run: a step subprocess costs seconds of imports, and the manifest
    # must land within a minute of an upload.
    executor_def=dg.in_process_executor,
    tags=DATASET_RUN_TAG,
    description="Refresh upload-day record files, build and check the manifest, publish it.",
)


@dg.job(
    tags=DATASET_RUN_TAG,  # never beside a dataset run: it would see that run's fresh files as orphans
    executor_def=dg.in_process_executor,
    description="Retention of the manifest table (policy: retain_days, retain_versions).",
)
def retention_job() -> None:
    expire_manifest_versions()
