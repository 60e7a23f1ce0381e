"""The local stack's Dagster instance, as Dagster itself reads it."""

from __future__ import annotations

from pathlib import Path

from dagster import DagsterInstance

from image_etl.local.dagster import prepare_dagster_home


def test_the_local_instance_has_no_welcome_dialog_no_telemetry_and_one_dataset_run_at_a_time(
    tmp_path: Path,
) -> None:
    home = prepare_dagster_home(tmp_path / "dagster")
    instance = DagsterInstance.from_config(str(home))
    assert instance.get_settings("nux") == {"enabled": False}
    assert instance.get_settings("telemetry") == {"enabled": False}
    queue = instance.run_coordinator.get_run_queue_config()
    assert {"key": "image-etl/dataset", "limit": 1} in queue.tag_concurrency_limits
