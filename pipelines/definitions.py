"""The Dagster code location (loaded by workspace.yaml): assets, checks, sensor, schedule, resources."""

from __future__ import annotations

from typing import Any

import dagster as dg

from pipelines import assets, checks, retention, schedules, sensors
from pipelines.resources import build_resources


def make_definitions(resources: dict[str, Any]) -> dg.Definitions:
    """Return the code location bound to ``resources`` (tests pass ones pointed at their own stack)."""
    return dg.Definitions(
        assets=dg.load_assets_from_modules([assets]),
        asset_checks=dg.load_asset_checks_from_modules([checks]),
        jobs=[assets.dataset_job, retention.retention_job],
        sensors=[sensors.new_images_sensor],
        schedules=[schedules.nightly_refresh_schedule, schedules.retention_schedule],
        resources=resources,
        # Steps are light and I/O bound; a subprocess per step costs seconds of imports each.
        executor=dg.in_process_executor,
    )


defs = make_definitions(build_resources())
