"""Nightly refresh: late or reprocessed records reach the manifest even if the sensor missed them."""

from __future__ import annotations

import dagster as dg
from dagster import ScheduleEvaluationContext

from pipelines.jobs import dataset_job, range_tags, retention_job
from pipelines.partitions import recent_days
from pipelines.resources import DatasetPolicy


@dg.schedule(
    job=dataset_job,
    cron_schedule="30 2 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Re-materialize the last N upload days (policy nightly_days) and today, then the manifest.",
)
def nightly_refresh_schedule(context: ScheduleEvaluationContext, policy: DatasetPolicy) -> dg.RunRequest:
    today = context.scheduled_execution_time.date()
    first, last = recent_days(today, policy.nightly_days)
    return dg.RunRequest(run_key=f"nightly-{last}", tags=range_tags(first, last))


@dg.schedule(
    job=retention_job,
    cron_schedule="30 3 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Expire manifest versions outside the retention policy and delete unreferenced files.",
)
def retention_schedule(context: ScheduleEvaluationContext) -> dg.RunRequest:
    return dg.RunRequest(run_key=f"retention-{context.scheduled_execution_time.date().isoformat()}")
