"""Create the local stack's resources in the emulator, from `image_etl.resources` (idempotent)."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from image_etl.resources import NOTIFICATION_EVENTS, QueueShape, StackNames, upload_cors_rules
from image_etl.settings import Settings


def create_resources(settings: Settings, names: StackNames) -> None:
    """Create buckets, queue + DLQ with redrive and the table + index; leave existing ones as they are.

    The S3 -> SQS notification is separate (:func:`connect_notifications`) so a restore can put
    objects back before events flow.
    """
    s3 = settings.client("s3")
    for bucket in (settings.upload_bucket, settings.variants_bucket, settings.datasets_bucket):
        try:
            s3.create_bucket(Bucket=bucket)
        except ClientError as error:
            if error.response["Error"]["Code"] not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                raise
    if settings.site_url:
        s3.put_bucket_cors(
            Bucket=settings.upload_bucket,
            CORSConfiguration={"CORSRules": upload_cors_rules(settings.site_url)},
        )
    sqs = settings.client("sqs")
    for queue in (names.queue, names.large_queue):  # the upload queue, and the large-image tier's
        if queue is None:
            continue
        dlq_url = sqs.create_queue(
            QueueName=queue.dlq_name, Attributes={"MessageRetentionPeriod": str(queue.dlq_retention_s)}
        )["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        sqs.create_queue(QueueName=queue.name, Attributes=queue_attributes(queue, dlq_arn))
    dynamodb = settings.client("dynamodb")
    try:
        dynamodb.create_table(**table_definition(names))
    except ClientError as error:
        if error.response["Error"]["Code"] != "ResourceInUseException":
            raise


def queue_attributes(queue: QueueShape, dlq_arn: str) -> dict[str, str]:
    """Return a queue's attributes: visibility timeout, retention and redrive to its DLQ."""
    return {
        "VisibilityTimeout": str(queue.visibility_timeout_s),
        "MessageRetentionPeriod": str(queue.retention_s),
        "RedrivePolicy": json.dumps(
            {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": queue.max_receive_count}
        ),
    }


def table_definition(names: StackNames) -> dict[str, Any]:
    """Return the CreateTable arguments: on-demand, keyed by image_id, with the processed-at index."""
    table = names.table
    # Every key attribute of the table and its indexes, once each (all strings).
    key_attributes = dict.fromkeys(
        [
            table.partition_key,
            table.processed_index_partition_key,
            table.processed_index_sort_key,
            table.label_index_partition_key,
            table.label_index_sort_key,
        ]
    )
    return {
        "TableName": table.name,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [{"AttributeName": name, "AttributeType": "S"} for name in key_attributes],
        "KeySchema": [{"AttributeName": table.partition_key, "KeyType": "HASH"}],
        "GlobalSecondaryIndexes": [
            {
                "IndexName": table.processed_index,
                "KeySchema": [
                    {"AttributeName": table.processed_index_partition_key, "KeyType": "HASH"},
                    {"AttributeName": table.processed_index_sort_key, "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            },
            {
                "IndexName": table.label_index,
                "KeySchema": [
                    {"AttributeName": table.label_index_partition_key, "KeyType": "HASH"},
                    {"AttributeName": table.label_index_sort_key, "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            },
        ],
    }


def connect_notifications(settings: Settings) -> None:
    """Send ObjectCreated events under the upload prefix to the upload queue (as the CDK stack does)."""
    sqs = settings.client("sqs")
    queue_arn = sqs.get_queue_attributes(QueueUrl=settings.queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    settings.client("s3").put_bucket_notification_configuration(
        Bucket=settings.upload_bucket,
        NotificationConfiguration={
            "QueueConfigurations": [
                {
                    "Id": "resize-uploads",
                    "QueueArn": queue_arn,
                    "Events": list(NOTIFICATION_EVENTS),
                    "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": settings.upload_prefix}]}},
                }
            ]
        },
    )
