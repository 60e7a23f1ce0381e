"""How the resize function reads an upload: the requests it makes for small and large objects."""

from __future__ import annotations

from typing import Any

import pytest

from image_etl.local.worker import handler_environment
from image_etl.settings import Settings
from lambda_resizer import processing
from lambda_resizer.config import ResizerConfig
from lambda_resizer.processing import ImageProcessor
from lambda_resizer.records import SourceObject, from_item, image_id_for
from tests.imaging import encode, photo_like


@pytest.fixture
def processor(stack: Settings) -> tuple[ImageProcessor, list[str | None]]:
    """A processor on the moto server whose S3 GETs are recorded (the Range header of each, or None)."""
    s3 = stack.client("s3")
    ranges: list[str | None] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        ranges.append(params.get("Range"))

    s3.meta.events.register("provide-client-params.s3.GetObject", record)
    config = ResizerConfig.from_env(handler_environment(stack))
    return ImageProcessor(s3=s3, dynamodb=stack.client("dynamodb"), config=config), ranges


def _upload(stack: Settings, key: str) -> SourceObject:
    data = encode(photo_like(64))
    etag = stack.client("s3").put_object(Bucket=stack.upload_bucket, Key=key, Body=data)["ETag"].strip('"')
    return SourceObject(bucket=stack.upload_bucket, key=key, size=len(data), etag=etag)


def _status(stack: Settings, key: str) -> str:
    item = stack.client("dynamodb").get_item(
        TableName=stack.table_name, Key={"image_id": {"S": image_id_for(stack.upload_bucket, key)}}
    )["Item"]
    return str(from_item(item)["status"])


def test_a_small_upload_is_read_in_one_get_and_still_estimated(stack: Settings, processor) -> None:
    images, ranges = processor
    source = _upload(stack, "uploads/reads/small.jpg")

    outcome = images.process(source, memory_mb=1024)

    assert outcome.status == "processed" and _status(stack, source.key) == "processed"
    assert ranges == [None]  # the whole body once, no separate header read
    record = stack.client("dynamodb").get_item(
        TableName=stack.table_name, Key={"image_id": {"S": outcome.image_id}}
    )["Item"]
    assert float(from_item(record)["memory_estimate_mb"]) > 0


def test_a_large_upload_has_its_header_read_before_its_body(
    stack: Settings, processor, monkeypatch: pytest.MonkeyPatch
) -> None:
    images, ranges = processor
    source = _upload(stack, "uploads/reads/large.jpg")
    monkeypatch.setattr(processing, "WHOLE_BODY_BYTES", source.size - 1)  # this upload counts as large

    assert images.process(source, memory_mb=1024).status == "processed"

    assert ranges[0] is not None and ranges[0].startswith("bytes=0-") and ranges[-1] is None


def test_a_small_upload_deleted_before_its_read_is_recorded_missing(stack: Settings, processor) -> None:
    images, _ = processor
    source = _upload(stack, "uploads/reads/gone.jpg")
    stack.client("s3").delete_object(Bucket=stack.upload_bucket, Key=source.key)

    outcome = images.process(source, memory_mb=1024)

    assert outcome.status == "failed" and _status(stack, source.key) == "failed"
