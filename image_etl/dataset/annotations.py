"""The dataset's annotations of each image (split, duplicate group, quality flags, keeper) written
back onto its DynamoDB record, so the upload API and the gallery show them with the record.

Only rows whose annotations differ from the version written last are sent: a build that changes
ten images costs ten writes, not the dataset. Each write is conditional on the record still being
the one the manifest was built from (same ``processed_at``): a record deleted since is not brought
back, and a record reprocessed since (whose new item has no annotations yet) waits for the build
that includes it. DynamoDB has no conditional batch write (BatchWriteItem takes no condition and
TransactWriteItems fails as a whole and costs twice), so the writes are single conditional
UpdateItem calls, sent from a few threads at once.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd
from boto3.dynamodb.types import TypeSerializer

if TYPE_CHECKING:
    from image_etl.dataset.table import ManifestTable

#: The record attribute (a map) that holds the annotations; the resizer never writes it.
DATASET_ATTRIBUTE = "dataset"
#: Manifest columns copied into it, when the manifest has them (``keep`` comes with newer builds).
ANNOTATION_COLUMNS: tuple[str, ...] = ("split", "dup_group", "dup_group_size", "quality_flags", "keep")
#: What a manifest read for this module needs besides the annotations.
KEY_COLUMNS: tuple[str, ...] = ("image_id", "processed_at")

_serializer = TypeSerializer()


@dataclass(frozen=True)
class AnnotationWrite:
    """What one write-back did."""

    #: Records whose annotations were written.
    written: int
    #: Rows whose annotations equal those of the version written before (nothing sent).
    unchanged: int
    #: Records gone, or reprocessed since the build (the next build writes them).
    skipped: int


def _plain(value: Any) -> Any:
    """Return ``value`` as a plain Python value DynamoDB can store (no numpy, no NaN)."""
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return None
    if hasattr(value, "tolist"):  # numpy arrays (list columns) and numpy scalars
        value = value.tolist()
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def annotations_of(manifest: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Return image id -> {``processed_at``, and each annotation column the manifest has}.

    An empty split (a failed image has none) is left out rather than stored as "".
    """
    columns = [c for c in ANNOTATION_COLUMNS if c in manifest.columns]
    result: dict[str, dict[str, Any]] = {}
    for row in manifest[[*KEY_COLUMNS, *columns]].itertuples(index=False):
        values = dict(zip(columns, (_plain(v) for v in row[len(KEY_COLUMNS) :]), strict=True))
        result[str(row.image_id)] = {
            "processed_at": str(row.processed_at),
            **{k: v for k, v in values.items() if v is not None and v != ""},
        }
    return result


def changed_annotations(
    manifest: pd.DataFrame, previous: pd.DataFrame | None
) -> tuple[dict[str, dict[str, Any]], int]:
    """Return the annotations of the rows that differ from ``previous`` (all of them without it),
    and how many rows are unchanged.

    A row counts as changed when its annotations or its ``processed_at`` differ: a reprocessed
    image got a new item without annotations.
    """
    now = annotations_of(manifest)
    before = annotations_of(previous) if previous is not None and len(previous) else {}
    changed = {image_id: values for image_id, values in now.items() if before.get(image_id) != values}
    return changed, len(now) - len(changed)


def write_annotations(
    dynamodb: Any,
    table_name: str,
    manifest: pd.DataFrame,
    previous: pd.DataFrame | None = None,
    *,
    threads: int = 8,
) -> AnnotationWrite:
    """Write the annotations of ``manifest``'s changed rows onto their records; return the counts.

    :param dynamodb: a boto3 DynamoDB client.
    :param table_name: the image-record table.
    :param manifest: the version to write (``image_id``, ``processed_at`` and the annotation columns).
    :param previous: the version written last, if any: rows equal to it are not sent.
    :param threads: concurrent UpdateItem calls.
    """
    changed, unchanged = changed_annotations(manifest, previous)

    def write(item: tuple[str, Mapping[str, Any]]) -> bool:
        image_id, values = item
        annotations = {k: v for k, v in values.items() if k != "processed_at"}
        try:
            dynamodb.update_item(
                TableName=table_name,
                Key={"image_id": {"S": image_id}},
                UpdateExpression="SET #dataset = :dataset",
                ConditionExpression="attribute_exists(image_id) AND processed_at = :processed_at",
                ExpressionAttributeNames={"#dataset": DATASET_ATTRIBUTE},
                ExpressionAttributeValues={
                    ":dataset": _serializer.serialize(annotations),
                    ":processed_at": {"S": values["processed_at"]},
                },
            )
        except dynamodb.exceptions.ConditionalCheckFailedException:
            return False
        return True

    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        outcomes = list(pool.map(write, _items(changed)))
    return AnnotationWrite(written=sum(outcomes), unchanged=unchanged, skipped=outcomes.count(False))


def read_annotations(table: ManifestTable, version: str) -> pd.DataFrame:
    """Return a version's image ids, ``processed_at`` and the annotation columns its table has."""
    stored = set(table.table().schema().column_names)
    wanted = [c for c in (*KEY_COLUMNS, *ANNOTATION_COLUMNS) if c in stored]  # dup_group_size is derived
    return table.read(version, columns=wanted)


def write_back(
    table: ManifestTable,
    dynamodb: Any,
    table_name: str,
    *,
    version: str,
    previous_version: str | None = None,
) -> AnnotationWrite:
    """Write ``version``'s annotations onto the records, only where they differ from
    ``previous_version`` (the version written last; all rows when it is None or no longer kept)."""
    from image_etl.dataset.table import ManifestNotFound

    previous = None
    if previous_version and previous_version != version:
        try:
            previous = read_annotations(table, previous_version)
        except ManifestNotFound:  # expired by retention: compare with nothing, write every row
            previous = None
    elif previous_version == version:
        return AnnotationWrite(written=0, unchanged=len(read_annotations(table, version)), skipped=0)
    return write_annotations(dynamodb, table_name, read_annotations(table, version), previous)


def _items(changed: Mapping[str, Mapping[str, Any]]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    yield from sorted(changed.items())
