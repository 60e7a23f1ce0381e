"""``new_images_sensor`` against the local emulation: cursor, no double launch, late and reprocessed."""

from __future__ import annotations

import dagster as dg
import pytest

from image_etl.settings import Settings
from pipelines.resources import DatasetPolicy, ImageRecordTable
from pipelines.sensors import SensorCursor, new_images_sensor
from tests.pipelines.conftest import fake_record

pytestmark = pytest.mark.slow  # sensor ticks on a Dagster instance, against a moto server


def tick(instance: dg.DagsterInstance, table: ImageRecordTable, cursor: str | None) -> dg.SensorResult:
    context = dg.build_sensor_context(
        cursor=cursor, instance=instance, resources={"record_table": table, "policy": DatasetPolicy()}
    )
    return new_images_sensor(context)


def test_new_records_request_one_run_over_their_upload_days(
    stack: Settings, table: ImageRecordTable, instance: dg.DagsterInstance
) -> None:
    table.put_records(
        [
            fake_record("a", processed_at="2026-11-26T10:00:01.000000Z", uploaded_at="2026-11-24T23:59:59Z"),
            fake_record("b", processed_at="2026-11-26T10:00:02.000000Z", uploaded_at="2026-11-26T10:00:00Z"),
        ]
    )

    result = tick(instance, table, None)

    [request] = result.run_requests
    assert request.tags["dagster/asset_partition_range_start"] == "2026-11-24"
    assert request.tags["dagster/asset_partition_range_end"] == "2026-11-26"
    assert request.run_key == "2026-11-24..2026-11-26@2026-11-26T10:00:02.000000Z"
    assert SensorCursor.decode(result.cursor).after == "2026-11-26T10:00:02.000000Z"


def test_a_second_tick_launches_nothing_and_a_repeated_tick_asks_for_the_same_run_key(
    stack: Settings, table: ImageRecordTable, instance: dg.DagsterInstance
) -> None:
    table.put_records([fake_record("a", processed_at="2026-11-26T10:00:01.000000Z")])
    first = tick(instance, table, None)

    second = tick(instance, table, first.cursor)
    replayed = tick(instance, table, None)  # e.g. the cursor was lost in a crash before being saved

    assert second.run_requests == [] and "no new records" in second.skip_reason.skip_message
    assert [r.run_key for r in replayed.run_requests] == [r.run_key for r in first.run_requests]


def test_late_and_reprocessed_records_are_picked_up_once(
    stack: Settings, table: ImageRecordTable, instance: dg.DagsterInstance
) -> None:
    table.put_records([fake_record("a", processed_at="2026-11-26T10:00:10.000000Z")])
    cursor = tick(instance, table, None).cursor
    # Visible only now, stamped 5 s before the newest record the sensor has seen (a slow writer).
    late = fake_record("late", processed_at="2026-11-26T10:00:05.000000Z", uploaded_at="2026-11-25T08:00:00Z")
    table.put_records([late])

    found = tick(instance, table, cursor)
    again = tick(instance, table, found.cursor)
    table.put_records([fake_record("a", processed_at="2026-11-26T11:00:00.000000Z")])  # reprocessed
    reprocessed = tick(instance, table, again.cursor)

    [request] = found.run_requests
    assert request.tags["dagster/asset_partition_range_start"] == "2026-11-25"
    assert request.tags["image-etl/new-records"] == "1"
    assert again.run_requests == []
    assert [r.tags["image-etl/new-records"] for r in reprocessed.run_requests] == ["1"]


def test_a_tick_reads_the_new_records_not_the_table(
    stack: Settings, table: ImageRecordTable, instance: dg.DagsterInstance
) -> None:
    table.put_records(
        [fake_record(f"old{i}", processed_at=f"2026-11-20T10:00:{i:02d}.000000Z") for i in range(60)]
    )
    cursor = tick(instance, table, None).cursor
    table.put_records(
        [fake_record(f"new{i}", processed_at=f"2026-11-26T10:00:0{i}.000000Z") for i in range(3)]
    )

    records, items_read = table.records_processed_after(SensorCursor.decode(cursor).after)
    _, scan_read = table.scan_processed_after(SensorCursor.decode(cursor).after)

    assert len(records) == 3 and items_read == 3 and scan_read == 63


def test_the_cursor_survives_a_restart_as_text() -> None:
    cursor = SensorCursor("2026-11-26T10:00:10.000000Z", frozenset({"abc", "def"}))

    assert SensorCursor.decode(cursor.encode()) == cursor
    assert SensorCursor.decode(None) == SensorCursor()
