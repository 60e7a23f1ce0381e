"""The code location loads as `dagster dev` loads it, and the schedule asks for the right days."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime

import dagster as dg
import pytest

from pipelines.definitions import defs
from pipelines.resources import DatasetPolicy
from pipelines.schedules import nightly_refresh_schedule
from tests.conftest import REPO


@pytest.mark.slow
def test_definitions_load_from_the_workspace_without_warnings() -> None:
    # A fresh interpreter, as the code server does, with warnings turned into errors.
    code = (
        "import warnings; warnings.simplefilter('error'); import pipelines.definitions as d; "
        "print(len(d.defs().resolve_all_asset_specs()))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "6"


@pytest.fixture(scope="module")
def definitions() -> dg.Definitions:
    return defs()


def test_the_job_covers_the_graph_its_checks_and_the_sensor_and_schedule_run_by_default(
    definitions: dg.Definitions,
) -> None:
    job = definitions.resolve_job_def("dataset_job")
    assets = {key.to_user_string() for key in job.asset_layer.executable_asset_keys}
    assert assets == {
        "image_records",
        "dataset_manifest",
        "published_manifest",
        "dataset_report",
        "imagefolder_export",
        "record_annotations",
    }
    checks = {key.name for key in job.asset_layer.asset_graph.asset_check_keys}
    assert checks == {
        "variants_exist_check",
        "failed_rate_check",
        "split_leak_check",
        "row_count_check",
        "label_conflict_check",
    }
    sensor = definitions.resolve_sensor_def("new_images_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert (
        definitions.resolve_schedule_def("nightly_refresh_schedule").default_status
        == dg.DefaultScheduleStatus.RUNNING
    )
    retention = definitions.resolve_schedule_def("retention_schedule")
    assert retention.default_status == dg.DefaultScheduleStatus.RUNNING
    assert retention.job_name == "retention_job"
    # Never beside a dataset run: the run queue's one-at-a-time tag.
    assert definitions.resolve_job_def("retention_job").tags.get("image-etl/dataset") == "build"


def test_nightly_schedule_refreshes_the_last_n_days_and_today() -> None:
    context = dg.build_schedule_context(
        scheduled_execution_time=datetime(2026, 11, 26, 2, 30, tzinfo=UTC),
        resources={"policy": DatasetPolicy(nightly_days=5)},
    )

    request = nightly_refresh_schedule(context)

    assert request.tags["dagster/asset_partition_range_start"] == "2026-11-21"
    assert request.tags["dagster/asset_partition_range_end"] == "2026-11-26"
    assert request.run_key == "nightly-2026-11-26"
