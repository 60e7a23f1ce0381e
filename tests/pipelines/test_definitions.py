"""The code location loads as `dagster dev` loads it, and the schedule asks for the right days."""

from __future__ import annotations

import os
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
        "print(len(d.defs.resolve_all_asset_specs()))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "6"


@pytest.mark.slow
def test_partitions_start_on_the_settings_first_upload_day() -> None:
    # A fresh interpreter: the partitions are fixed when the code location loads.
    code = (
        "from pipelines.assets import upload_days, recent_days; from datetime import date; "
        "print(upload_days.get_first_partition_key(), recent_days(date(2026, 12, 2), 3)[0])"
    )
    env = {**os.environ, "IMAGE_ETL_FIRST_DAY": "2026-11-30"}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120, env=env
    )
    assert out.returncode == 0, out.stderr[-2000:]
    # A dataset begun on 2026-11-30 has its days from then, and the nightly refresh stays inside them.
    assert out.stdout.split() == ["2026-11-30", "2026-11-30"]


def test_the_job_covers_the_graph_its_checks_and_the_sensor_and_schedule_run_by_default() -> None:
    job = defs.resolve_job_def("dataset_job")
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
    assert defs.resolve_sensor_def("new_images_sensor").default_status == dg.DefaultSensorStatus.RUNNING
    assert (
        defs.resolve_schedule_def("nightly_refresh_schedule").default_status
        == dg.DefaultScheduleStatus.RUNNING
    )
    retention = defs.resolve_schedule_def("retention_schedule")
    assert retention.default_status == dg.DefaultScheduleStatus.RUNNING
    assert retention.job_name == "retention_job"
    # Never beside a dataset run: the run queue's one-at-a-time tag.
    assert defs.resolve_job_def("retention_job").tags.get("image-etl/dataset") == "build"


def test_nightly_schedule_refreshes_the_last_n_days_and_today() -> None:
    context = dg.build_schedule_context(
        scheduled_execution_time=datetime(2026, 11, 26, 2, 30, tzinfo=UTC),
        resources={"policy": DatasetPolicy(nightly_days=5)},
    )

    request = nightly_refresh_schedule(context)

    assert request.tags["dagster/asset_partition_range_start"] == "2026-11-21"
    assert request.tags["dagster/asset_partition_range_end"] == "2026-11-26"
    assert request.run_key == "nightly-2026-11-26"
