"""ImageProcessingStack: uploads in, variants and records out.

The upload bucket, its S3 -> SQS notification and the function consuming the queue stay in one
stack: split over stacks, the notification's references make a cycle.
"""

from __future__ import annotations

import re
from typing import Any

from aws_cdk import CfnOutput, Stack
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_notifications as s3n
from constructs import Construct

from image_etl import stack_outputs
from image_etl.resource_shapes import (
    LOCAL,
    NOTIFICATION_EVENTS,
    StackNames,
    athena_workgroup_name,
    glue_database_name,
    upload_cors_rules,
)
from infra.bundling import RESIZER_PLATFORM, LambdaPlatform
from infra.components.catalog import DatasetCatalog
from infra.components.monitoring import Alarms
from infra.components.queue import UploadQueue
from infra.components.resize_service import ResizeService
from infra.components.storage import AccessLogs, cors_rules, private_bucket
from infra.components.table import ImageTable
from infra.nag import acknowledge


class ImageProcessingStack(Stack):
    """Buckets, queue + DLQ, the resize function, the record table and their alarms.

    :param site_origin: the upload page's origin, the only one the upload bucket's CORS allows.
    :param alarm_topic_arn: an SNS topic the alarms notify (e.g. with an email subscription).
    :param names: shapes (prefixes, timeouts, keys); its physical names are the local stack's and
        are not used: CloudFormation names every resource here.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        site_origin: str,
        names: StackNames = LOCAL,
        platform: LambdaPlatform = RESIZER_PLATFORM,
        alarm_topic_arn: str | None = None,
        stack_prefix: str = "ImageEtl",
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, id, **kwargs)
        access_logs = AccessLogs(self, "AccessLogs").bucket
        self.upload_bucket = private_bucket(
            self, "Uploads", access_logs=access_logs, cors=cors_rules(upload_cors_rules(site_origin))
        )
        # Variants have their own bucket without a notification: they can never trigger a resize.
        self.variants_bucket = private_bucket(self, "Variants", access_logs=access_logs)
        # Versioned: a manifest overwritten by mistake can be brought back.
        self.datasets_bucket = private_bucket(self, "Datasets", access_logs=access_logs, versioned=True)
        self.catalog = DatasetCatalog(
            self,
            "DatasetCatalog",
            datasets=self.datasets_bucket,
            datasets_prefix=names.datasets_prefix,
            database_name=glue_database_name(stack_prefix),
            workgroup_name=athena_workgroup_name(stack_prefix),
            access_logs=access_logs,
            shape=names.catalog,
        )
        self.queue = UploadQueue(self, "UploadQueue", shape=names.queue)
        self.table = ImageTable(self, "Images", shape=names.table).table
        # The large-image tier: same code and recipe, more memory; only the standard tier feeds it.
        assert names.large_queue is not None, "the stack needs the large-image tier's queue shape"
        self.large_queue = UploadQueue(self, "LargeQueue", shape=names.large_queue)
        # Both tiers read the same buckets and write the same table; only shape and queue differ.
        shared: dict[str, Any] = {
            "uploads": self.upload_bucket,
            "upload_prefix": names.upload_prefix,
            "variants": self.variants_bucket,
            "variants_prefix": names.variants_prefix,
            "table": self.table,
            "table_shape": names.table,
            "platform": platform,
        }
        self.large_resizer = ResizeService(
            self, "LargeResizer", shape=names.large_function, queue=self.large_queue, **shared
        )
        self.resizer = ResizeService(
            self, "Resizer", shape=names.function, queue=self.queue, large=self.large_resizer, **shared
        )
        function = self.resizer.function

        for event in NOTIFICATION_EVENTS:
            self.upload_bucket.add_event_notification(
                s3_event_type(event),
                s3n.SqsDestination(self.queue.queue),
                s3.NotificationKeyFilter(prefix=names.upload_prefix),
            )

        self.alarms = Alarms(
            self,
            "Alarms",
            dead_letter_queues={
                "UploadDeadLetters": self.queue.dead_letters,
                "LargeDeadLetters": self.large_queue.dead_letters,
            },
            functions={"Resizer": function, "LargeResizer": self.large_resizer.function},
            topic_arn=alarm_topic_arn,
        )
        acknowledge_cdk_notifications_handler(self)

        for key, value in {
            stack_outputs.UPLOAD_BUCKET: self.upload_bucket.bucket_name,
            stack_outputs.UPLOAD_PREFIX: names.upload_prefix,
            stack_outputs.VARIANTS_BUCKET: self.variants_bucket.bucket_name,
            stack_outputs.VARIANTS_PREFIX: names.variants_prefix,
            stack_outputs.DATASETS_BUCKET: self.datasets_bucket.bucket_name,
            stack_outputs.DATASETS_PREFIX: names.datasets_prefix,
            stack_outputs.TABLE_NAME: self.table.table_name,
            stack_outputs.QUEUE_URL: self.queue.queue.queue_url,
            stack_outputs.DLQ_URL: self.queue.dead_letters.queue_url,
            stack_outputs.REGION: self.region,
            stack_outputs.RESIZE_FUNCTION: function.function_name,
            stack_outputs.LARGE_QUEUE_URL: self.large_queue.queue.queue_url,
            stack_outputs.LARGE_DLQ_URL: self.large_queue.dead_letters.queue_url,
            stack_outputs.LARGE_RESIZE_FUNCTION: self.large_resizer.function.function_name,
            stack_outputs.GLUE_DATABASE: self.catalog.database_name,
            stack_outputs.MANIFEST_TABLE_LOCATION: self.catalog.table_location,
            stack_outputs.ATHENA_WORKGROUP: self.catalog.workgroup.name,
            stack_outputs.ATHENA_RESULTS_BUCKET: self.catalog.results.bucket_name,
            stack_outputs.DATASET_READER_ROLE: self.catalog.reader_role.role_arn,
            stack_outputs.DATASET_PIPELINE_ROLE: self.catalog.pipeline_role.role_arn,
        }.items():
            CfnOutput(self, key, value=value)


def s3_event_type(event: str) -> s3.EventType:
    """Return the CDK event type of an S3 event name (``s3:ObjectCreated:*`` -> ``OBJECT_CREATED``)."""
    words = [word for word in event.removeprefix("s3:").split(":") if word != "*"]
    return s3.EventType[re.sub(r"(?<!^)(?=[A-Z])", "_", "".join(words)).upper()]


def acknowledge_cdk_notifications_handler(stack: Stack) -> None:
    """Accept the findings on the function CDK adds to configure bucket notifications (CDK-owned)."""
    for construct in stack.node.children:
        if construct.node.id.startswith("BucketNotificationsHandler"):
            acknowledge(
                construct,
                "AwsSolutions-IAM4",
                "AWSLambdaBasicExecutionRole only lets CDK's notification handler write its own logs.",
                findings=[r"Policy::.*/AWSLambdaBasicExecutionRole"],
            )
