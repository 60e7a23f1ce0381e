"""The Dagster code location (loaded by workspace.yaml): assets, checks, sensor, schedule, resources."""

from __future__ import annotations

import dagster as dg

from pipelines import assets, checks, schedules, sensors
from pipelines.resources import build_resources

defs = dg.Definitions(
    assets=dg.load_assets_from_modules([assets]),
    asset_checks=dg.load_asset_checks_from_modules([checks]),
    jobs=[assets.dataset_job],
    sensors=[sensors.new_images_sensor],
    schedules=[schedules.nightly_refresh_schedule],
    resources=build_resources(),
)
