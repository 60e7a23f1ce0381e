"""Resize Lambda entry point: S3 -> SQS -> here, or a direct S3 event notification.

A thin adapter: parse the event, hand each object to `ImageProcessor`, report partial batch
failures so one bad message never fails the others.

Lambda's limits are the one thing a partial response cannot report: a function that runs out of
time or memory loses its whole batch. So messages that were received before (possibly the
image that killed an earlier run) go last in the batch, no image is started with less than the
configured margin left (the rest are handed back to the queue), and the last delivery of a
message first records the upload as failed (see `ImageProcessor.process`).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from itertools import pairwise
from typing import Any

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes import SQSEvent, SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from lambda_resizer.config import ResizerConfig
from lambda_resizer.processing import ImageProcessor, sources_from_s3_event, sources_from_sqs_record
from lambda_resizer.records import SourceObject

logger = Logger()
batch = BatchProcessor(event_type=EventType.SQS)
#: For the batch being handled: each message's successor, whose image is read ahead.
_successor: dict[str, SQSRecord] = {}


@cache
def image_processor() -> ImageProcessor:
    """Return the processor, built once per execution environment (clients honour AWS_ENDPOINT_URL)."""
    config = ResizerConfig.from_env()
    return ImageProcessor(
        s3=boto3.client("s3"),
        dynamodb=boto3.client("dynamodb"),
        sqs=boto3.client("sqs") if config.large_queue_url else None,
        config=config,
    )


def receive_count(record: SQSRecord) -> int:
    """Return how many times SQS has delivered this message record (1 for the first delivery).

    A record without a readable count (no ``attributes``, or not a number) counts as a first
    delivery: it is neither sorted last nor treated as its last attempt.
    """
    try:
        return max(1, int(record.attributes.approximate_receive_count))
    except (KeyError, TypeError, ValueError):
        return 1


def record_handler(record: SQSRecord, lambda_context: LambdaContext) -> None:
    processor = image_processor()
    remaining_ms = lambda_context.get_remaining_time_in_millis()
    if remaining_ms < processor.config.start_margin_ms:
        raise TimeoutError(f"only {remaining_ms} ms left in this invocation; handing the message back")
    try:
        sources = sources_from_sqs_record(record)
    except ValueError as error:
        logger.error(
            "rejected a message that is not an S3 notification",
            message_id=record.message_id,
            reason=str(error),
        )
        raise
    processor.process_all(
        sources,
        attempt=receive_count(record),
        memory_mb=int(lambda_context.memory_limit_in_mb),
        then=_first_source(_successor.get(record.message_id)),
    )


def _first_source(record: SQSRecord | None) -> SourceObject | None:
    """Return the first object a message names, or None (no message, or not a notification: its
    own turn reports why)."""
    if record is None:
        return None
    try:
        sources = sources_from_sqs_record(record)
    except ValueError:
        return None
    return sources[0] if sources else None


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> Mapping[str, Any]:
    records = event.get("Records") or [{}]
    if records[0].get("eventSource") == "aws:sqs":
        # Stable sort: first deliveries keep their order, redelivered messages run after them.
        redelivered_last = sorted(SQSEvent(event).records, key=receive_count)
        event = {**event, "Records": [record.raw_event for record in redelivered_last]}
        _successor.clear()
        _successor.update((record.message_id, after) for record, after in pairwise(redelivered_last))
        try:
            return process_partial_response(
                event=event, record_handler=record_handler, processor=batch, context=context
            )
        finally:
            _successor.clear()
            image_processor().read_ahead(None)  # a batch's last read-ahead is not kept
    # A direct S3 invocation is retried by Lambda as a whole, so any AWS error simply raises.
    outcomes = image_processor().process_all(
        sources_from_s3_event(event), memory_mb=int(context.memory_limit_in_mb)
    )
    return {"outcomes": [outcome.__dict__ for outcome in outcomes]}
