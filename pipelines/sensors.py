"""``new_images_sensor``: new records (through the ``by_processed_at`` index) -> one dataset run.

The cursor is the newest ``processed_at`` seen plus the ids of the records seen in the last
``sensor_overlap_s`` seconds before it. Each tick re-reads that overlap window, so a record that
became visible late (a slow write, index propagation) with a slightly older timestamp is still
found, and the remembered ids keep it from counting twice. A reprocessed image has a new
``processed_at``, so it counts again: its day is rebuilt.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import dagster as dg
from dagster import SensorEvaluationContext

from image_etl.dataset.records import upload_day
from pipelines.jobs import dataset_job, range_tags
from pipelines.partitions import FIRST_UPLOAD_DAY
from pipelines.resources import DatasetPolicy, ImageRecordTable


def _seen_id(record: dict[str, Any]) -> str:
    # 12 hex chars (48 bits) keep the cursor small; a collision would need ~16M records in one window.
    return hashlib.sha256(f"{record['image_id']}@{record['processed_at']}".encode()).hexdigest()[:12]


def _minus(stamp: str, seconds: float) -> str:
    moment = datetime.fromisoformat(stamp.replace("Z", "+00:00")) - timedelta(seconds=seconds)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class SensorCursor:
    """Newest ``processed_at`` seen and the records seen in the overlap window before it."""

    after: str = ""
    seen: frozenset[str] = field(default_factory=frozenset)

    def encode(self) -> str:
        return json.dumps({"after": self.after, "seen": sorted(self.seen)})

    @classmethod
    def decode(cls, text: str | None) -> SensorCursor:
        if not text:
            return cls()
        data = json.loads(text)
        return cls(str(data.get("after", "")), frozenset(data.get("seen", [])))


def read_new_records(
    table: ImageRecordTable, cursor: SensorCursor, *, overlap_s: float = 30.0
) -> tuple[list[dict[str, Any]], SensorCursor, int]:
    """Return the records not seen before, the next cursor and the items DynamoDB read.

    :param table: the record table (queried per index shard, never scanned).
    :param cursor: where the previous tick stopped.
    :param overlap_s: how far before the cursor to look again.
    """
    since = _minus(cursor.after, overlap_s) if cursor.after else "0"
    records, items_read = table.records_processed_after(since)
    fresh = [r for r in records if _seen_id(r) not in cursor.seen]
    newest = max([cursor.after, *(str(r["processed_at"]) for r in records)])
    window = _minus(newest, overlap_s) if newest else ""
    seen = frozenset(_seen_id(r) for r in records if str(r["processed_at"]) > window)
    return fresh, SensorCursor(newest, seen), items_read


@dg.sensor(
    job=dataset_job,
    minimum_interval_seconds=5,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="New or reprocessed image records -> refresh their upload days and rebuild the manifest.",
)
def new_images_sensor(
    context: SensorEvaluationContext, record_table: ImageRecordTable, policy: DatasetPolicy
) -> dg.SensorResult:
    cursor = SensorCursor.decode(context.cursor)
    fresh, next_cursor, items_read = read_new_records(record_table, cursor, overlap_s=policy.sensor_overlap_s)
    if not fresh:
        return dg.SensorResult(
            skip_reason=f"no new records ({items_read} items read)", cursor=next_cursor.encode()
        )
    days = sorted({upload_day(r, first_day=FIRST_UPLOAD_DAY) for r in fresh})
    newest = max(str(r["processed_at"]) for r in fresh)
    context.log.info(f"{len(fresh)} new records in {len(days)} upload days; {items_read} items read")
    # The key is a function of the work (days, newest record): a tick repeated after a crash, before
    # its cursor was saved, asks for the same key and Dagster launches nothing new.
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=f"{days[0]}..{days[-1]}@{newest}",
                tags={**range_tags(days[0], days[-1]), "image-etl/new-records": str(len(fresh))},
            )
        ],
        cursor=next_cursor.encode(),
    )
