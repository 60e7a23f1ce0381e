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
from tests.stack_process import in_this_process


@pytest.fixture
def processor(stack: Settings) -> tuple[ImageProcessor, list[tuple[str, str | None]]]:
    """A processor on the moto server whose S3 GETs are recorded: (key, Range header or None)."""
    s3 = stack.client("s3")
    gets: list[tuple[str, str | None]] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        gets.append((params["Key"], params.get("Range")))

    s3.meta.events.register("provide-client-params.s3.GetObject", record)
    config = ResizerConfig.from_env(handler_environment(stack))
    return ImageProcessor(s3=s3, dynamodb=stack.client("dynamodb"), config=config), gets


def _memory_mb() -> int:
    """Return the function's memory on top of what this process holds now: a pytest worker that ran
    a CDK synth or a Dagster job holds hundreds of MB, and at a bare 1024 MB the image would be
    handed to the large tier instead."""
    return in_this_process().memory_mb


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
    images, gets = processor
    source = _upload(stack, "uploads/reads/small.jpg")

    outcome = images.process(source, memory_mb=_memory_mb())

    assert outcome.status == "processed" and _status(stack, source.key) == "processed"
    assert gets == [(source.key, None)]  # the whole body once, no separate header read
    record = stack.client("dynamodb").get_item(
        TableName=stack.table_name, Key={"image_id": {"S": outcome.image_id}}
    )["Item"]
    assert float(from_item(record)["memory_estimate_mb"]) > 0


def test_a_large_upload_has_its_header_read_before_its_body(
    stack: Settings, processor, monkeypatch: pytest.MonkeyPatch
) -> None:
    images, gets = processor
    source = _upload(stack, "uploads/reads/large.jpg")
    assert source.size is not None
    monkeypatch.setattr(processing, "WHOLE_BODY_BYTES", source.size - 1)  # this upload counts as large

    assert images.process(source, memory_mb=_memory_mb()).status == "processed"

    ranges = [header for _, header in gets]
    assert ranges[0] is not None and ranges[0].startswith("bytes=0-") and ranges[-1] is None


def test_a_small_upload_deleted_before_its_read_is_recorded_missing(stack: Settings, processor) -> None:
    images, _ = processor
    source = _upload(stack, "uploads/reads/gone.jpg")
    stack.client("s3").delete_object(Bucket=stack.upload_bucket, Key=source.key)

    outcome = images.process(source, memory_mb=_memory_mb())

    assert outcome.status == "failed" and _status(stack, source.key) == "failed"


def test_the_next_image_of_a_batch_is_read_while_this_one_is_resized(stack: Settings, processor) -> None:
    images, gets = processor
    first, second = _upload(stack, "uploads/reads/first.jpg"), _upload(stack, "uploads/reads/second.jpg")

    images.process(first, memory_mb=_memory_mb(), then=second)
    # The read-ahead was queued before this image's variant uploads (the pool is first in, first
    # out), and those finished before process() returned: the second body has been asked for.
    assert (second.key, None) in gets
    images.process(second, memory_mb=_memory_mb())

    assert gets.count((second.key, None)) == 1  # the body read ahead was the one used
    assert _status(stack, first.key) == _status(stack, second.key) == "processed"


def test_a_read_ahead_for_another_image_is_not_used(stack: Settings, processor) -> None:
    images, gets = processor
    first, second, other = (_upload(stack, f"uploads/reads/{name}.jpg") for name in ("a", "b", "c"))

    images.process(first, memory_mb=_memory_mb(), then=second)
    images.process(other, memory_mb=_memory_mb())  # not what was announced: read on its own
    images.process(second, memory_mb=_memory_mb())  # the read-ahead was dropped: read again

    assert gets.count((other.key, None)) == 1 and gets.count((second.key, None)) == 2
    assert {_status(stack, s.key) for s in (first, second, other)} == {"processed"}


def test_a_batch_reads_each_image_once_and_processes_them_all(stack: Settings, processor) -> None:
    images, gets = processor
    sources = [_upload(stack, f"uploads/reads/batch-{i}.jpg") for i in range(4)]

    outcomes = images.process_all(sources, memory_mb=_memory_mb())

    assert [o.status for o in outcomes] == ["processed"] * 4
    assert sorted(key for key, _ in gets) == sorted(s.key for s in sources)


def test_a_message_naming_no_object_processes_nothing(processor) -> None:
    images, gets = processor
    assert images.process_all([], memory_mb=_memory_mb()) == [] and gets == []
