"""The event worker plays Lambda's SQS event source mapping against a real moto server."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Iterator

import pytest

from image_etl.local.provision import connect_notifications, create_resources
from image_etl.local.worker import EventWorker, lambda_event
from image_etl.resources import LOCAL
from image_etl.settings import Settings
from lambda_resizer import handler
from lambda_resizer.records import from_item
from tests.imaging import encode, photo_like


@pytest.fixture(autouse=True)
def isolated_environment() -> Iterator[None]:
    """EventWorker exports the handler's environment into its process; undo that after each test."""
    saved = dict(os.environ)
    handler.image_processor.cache_clear()
    yield
    handler.image_processor.cache_clear()
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture
def worker(stack: Settings) -> EventWorker:
    return EventWorker(stack)


def queue_depth(settings: Settings, url: str) -> int:
    attributes = settings.client("sqs").get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return sum(int(v) for v in attributes.values())


def test_upload_event_flows_from_s3_through_sqs_to_a_record(stack: Settings, worker: EventWorker) -> None:
    s3 = stack.client("s3")
    s3.put_object(Bucket=stack.upload_bucket, Key="uploads/cats/one.jpg", Body=encode(photo_like(1)))
    s3.put_object(Bucket=stack.upload_bucket, Key="uploads/cats/bad.jpg", Body=b"\xff\xd8 truncated")

    received = 0
    deadline = time.monotonic() + 20
    while received < 3 and time.monotonic() < deadline:  # the test event plus two uploads
        received += worker.poll_once(wait_s=1)

    items = {
        r["source_key"]: r
        for r in map(from_item, stack.client("dynamodb").scan(TableName=stack.table_name)["Items"])
    }
    assert items["uploads/cats/one.jpg"]["status"] == "processed"
    assert items["uploads/cats/bad.jpg"]["status"] == "failed"
    assert queue_depth(stack, stack.queue_url) == 0  # acknowledged, both the good and the bad one


def test_transient_aws_errors_are_retried_then_moved_to_the_dlq(stack: Settings) -> None:
    # A queue that redelivers after 1 s and gives up after 2 receives, so the test is quick.
    names = dataclasses.replace(
        LOCAL,
        queue=dataclasses.replace(
            LOCAL.queue,
            name="fast-retry",
            dlq_name="fast-retry-dlq",
            visibility_timeout_s=1,
            max_receive_count=2,
        ),
    )
    settings = dataclasses.replace(
        stack,
        queue_url=stack.queue_url.replace(LOCAL.queue.name, "fast-retry"),
        dlq_url=stack.dlq_url.replace(LOCAL.queue.dlq_name, "fast-retry-dlq"),
        table_name="a-table-that-does-not-exist",  # every DynamoDB call fails: an AWS error, not bad bytes
    )
    create_resources(dataclasses.replace(stack, queue_url=settings.queue_url), names)
    connect_notifications(settings)
    worker = EventWorker(settings, queue=names.queue)
    settings.client("s3").put_object(
        Bucket=settings.upload_bucket, Key="uploads/x/y.jpg", Body=encode(photo_like(2))
    )

    deadline = time.monotonic() + 30
    while queue_depth(settings, settings.dlq_url) == 0 and time.monotonic() < deadline:
        worker.poll_once(wait_s=1)

    dlq = settings.client("sqs").receive_message(
        QueueUrl=settings.dlq_url, MessageSystemAttributeNames=["All"]
    )
    bodies = [m["Body"] for m in dlq.get("Messages", [])]
    assert any("uploads%2Fx%2Fy.jpg" in body for body in bodies)
    assert int(dlq["Messages"][0]["Attributes"]["ApproximateReceiveCount"]) >= 2
    assert settings.client("s3").head_object(
        Bucket=settings.upload_bucket, Key="uploads/x/y.jpg"
    )  # untouched


def test_lambda_event_has_the_shape_lambda_passes() -> None:
    event = lambda_event(
        [
            {
                "MessageId": "m1",
                "ReceiptHandle": "r1",
                "Body": "{}",
                "Attributes": {"ApproximateReceiveCount": "1"},
            }
        ],
        queue_arn="arn:aws:sqs:us-east-1:123456789012:q",
        region="us-east-1",
    )
    (record,) = event["Records"]
    assert (
        record["eventSource"] == "aws:sqs" and record["messageId"] == "m1" and record["receiptHandle"] == "r1"
    )
    assert record["eventSourceARN"].endswith(":q") and record["attributes"]["ApproximateReceiveCount"] == "1"


def test_lambda_json_logs_are_shown_as_one_short_line() -> None:
    from image_etl.local.stack import humanize

    line = (
        '{"level":"WARNING","location":"_fail:1","message":"image failed","timestamp":"t","service":"s",'
        '"cold_start":false,"function_name":"f","key":"uploads/a.jpg","reason":"image file is truncated"}\n'
    )
    assert humanize(line) == "WARNING image failed key=uploads/a.jpg reason=image file is truncated\n"
    assert humanize("plain text\n") == "plain text\n"
    assert humanize("2026-11-26 10:00:00 +0000 - dagster - DEBUG - job - STEP_START\n") == ""
    assert (
        humanize("\x1b[32m2026\x1b[0m - dagster - \x1b[34mINFO\x1b[0m - up\n")
        == "2026 - dagster - INFO - up\n"
    )
