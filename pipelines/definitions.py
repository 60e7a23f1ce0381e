"""The Dagster code location (workspace.yaml loads it): assets, checks, jobs, sensor, schedules, resources."""

from __future__ import annotations

from typing import Any

import dagster as dg

from pipelines import asset_checks, assets, jobs, schedules, sensors
from pipelines.resources import build_resources


def make_definitions(resources: dict[str, Any]) -> dg.Definitions:
    """Return the code location bound to ``resources`` (tests pass ones pointed at their own stack)."""
    return dg.Definitions(
        assets=dg.load_assets_from_modules([assets]),
        asset_checks=dg.load_asset_checks_from_modules([asset_checks]),
        jobs=[jobs.dataset_job, jobs.retention_job],
        sensors=[sensors.new_images_sensor],
        schedules=[schedules.nightly_refresh_schedule, schedules.retention_schedule],
        resources=resources,
        # Steps are light and I/O bound; a subprocess per step costs seconds of imports each.
        executor=dg.in_process_executor,
    )


@dg.definitions
def defs() -> dg.Definitions:
    """Return the code location `dagster dev` and `dagster ... -m pipelines.definitions` load, its
    resources built from the settings when Dagster loads it, not when a test imports this module."""
    return make_definitions(build_resources())
