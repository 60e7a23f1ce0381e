"""Resize Lambda entry point: S3 -> SQS -> here, or a direct S3 event notification.

A thin adapter: parse the event, hand each object to `ImageProcessor`, report partial batch
failures so one bad message never fails the others.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from lambda_resizer.config import ResizerConfig
from lambda_resizer.processing import ImageProcessor, sources_from_s3_event, sources_from_sqs_body

logger = Logger()
batch = BatchProcessor(event_type=EventType.SQS)


@cache
def image_processor() -> ImageProcessor:
    """Return the processor, built once per execution environment (clients honour AWS_ENDPOINT_URL)."""
    return ImageProcessor(
        s3=boto3.client("s3"), dynamodb=boto3.client("dynamodb"), config=ResizerConfig.from_env()
    )


def record_handler(record: SQSRecord) -> None:
    image_processor().process_all(sources_from_sqs_body(record.body))


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    records = event.get("Records") or [{}]
    if records[0].get("eventSource") == "aws:sqs":
        return process_partial_response(
            event=event, record_handler=record_handler, processor=batch, context=context
        )
    # A direct S3 invocation is retried by Lambda as a whole, so any AWS error simply raises.
    outcomes = image_processor().process_all(sources_from_s3_event(event))
    return {"outcomes": [outcome.__dict__ for outcome in outcomes]}
