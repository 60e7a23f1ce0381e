"""Annotations written back onto the records: only changed rows, never onto a gone or newer record."""

from __future__ import annotations

from typing import Any

from image_etl.dataset.annotations import ANNOTATION_COLUMNS, DATASET_ATTRIBUTE, write_back
from image_etl.dataset.rules import ManifestConfig
from image_etl.dataset.table import ManifestTable
from image_etl.settings import Settings
from lambda_resizer.records import from_item, to_item
from lambda_upload_api.images import DATASET_ATTRIBUTE as API_ATTRIBUTE
from lambda_upload_api.images import DATASET_FIELDS
from tests.image_etl.dataset.conftest import by_day, incremental, rebuild


def record(n: int, **extra: Any) -> dict[str, Any]:
    image_id = f"{n:032x}"
    return {
        "image_id": image_id,
        "status": "processed",
        "label": "cats",
        "width": 640,
        "height": 480,
        "sha256": f"{n:064x}",
        "phash": f"{(n * 0x9E3779B97F4A7C15) % 2**64:016x}",
        "brightness": 0.5,
        "blur_score": 500.0,
        "uploaded_at": "2026-11-26T10:00:00.000000Z",
        "processed_at": f"2026-11-26T10:00:{n:02d}.000000Z",
        "processed_shard": "00",
        **extra,
    }


def put(stack: Settings, records: list[dict[str, Any]]) -> None:
    for item in records:
        stack.client("dynamodb").put_item(TableName=stack.table_name, Item=to_item(item))


def dataset_of(stack: Settings, image_id: str) -> dict[str, Any] | None:
    item = stack.client("dynamodb").get_item(TableName=stack.table_name, Key={"image_id": {"S": image_id}})
    return from_item(item["Item"]).get(DATASET_ATTRIBUTE) if "Item" in item else None


def test_annotations_reach_the_records_then_only_changes_are_sent(
    stack: Settings, table: ManifestTable
) -> None:
    records = [record(n) for n in range(1, 6)]
    records.append(record(6, sha256=records[0]["sha256"], phash=records[0]["phash"]))  # a copy of 1
    records.append(record(7, status="failed", error="truncated", error_code="truncated"))
    put(stack, records)
    first = rebuild(table, by_day(records), config=ManifestConfig()).version
    dynamodb = stack.client("dynamodb")

    done = write_back(table, dynamodb, stack.table_name, version=first)

    assert (done.written, done.unchanged, done.skipped) == (7, 0, 0)
    manifest = table.read(first).set_index("image_id")
    copy, original = dataset_of(stack, f"{6:032x}"), dataset_of(stack, f"{1:032x}")
    assert copy is not None and original is not None
    assert copy["dup_group"] == original["dup_group"] == manifest.loc[f"{1:032x}", "dup_group"]
    assert copy["dup_group_size"] == 2 and copy["split"] == manifest.loc[f"{6:032x}", "split"]
    assert dataset_of(stack, f"{7:032x}")["quality_flags"] == ["failed"]
    assert dataset_of(stack, f"{2:032x}")["quality_flags"] == []

    # The same version again sends nothing; a new one sends only the rows whose annotations moved.
    assert write_back(table, dynamodb, stack.table_name, version=first, previous_version=first).written == 0
    later = [*records, record(8, sha256=records[1]["sha256"], phash=records[1]["phash"])]  # joins 2's group
    put(stack, later[-1:])
    second = incremental(table, by_day(later), config=ManifestConfig()).version
    again = write_back(table, dynamodb, stack.table_name, version=second, previous_version=first)
    assert (again.written, again.unchanged, again.skipped) == (2, 6, 0)  # image 8, and 2 (group size)
    assert dataset_of(stack, f"{2:032x}")["dup_group_size"] == 2


def test_a_deleted_or_reprocessed_record_is_not_written(stack: Settings, table: ManifestTable) -> None:
    records = [record(n) for n in range(1, 4)]
    put(stack, records)
    version = rebuild(table, by_day(records), config=ManifestConfig()).version
    dynamodb = stack.client("dynamodb")
    dynamodb.delete_item(TableName=stack.table_name, Key={"image_id": {"S": f"{1:032x}"}})
    put(stack, [record(2, processed_at="2026-11-27T08:00:00.000000Z")])  # reprocessed after the build

    done = write_back(table, dynamodb, stack.table_name, version=version)

    assert (done.written, done.skipped) == (1, 2)
    assert dataset_of(stack, f"{1:032x}") is None  # not brought back as an item of annotations only
    assert dataset_of(stack, f"{2:032x}") is None and dataset_of(stack, f"{3:032x}") is not None


def test_the_api_reads_the_attribute_and_fields_the_pipeline_writes() -> None:
    # The upload Lambda imports nothing of the toolkit: its copy of the names must agree.
    assert API_ATTRIBUTE == DATASET_ATTRIBUTE and DATASET_FIELDS == ANNOTATION_COLUMNS
