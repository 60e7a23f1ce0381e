"""One tier of the resize service: lambda_resizer reading its queue, granted exactly the calls it makes."""

from __future__ import annotations

import re

from aws_cdk import CfnElement, Duration, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_s3 as s3
from constructs import Construct

from image_etl.resource_shapes import ResizeFunctionShape, TableShape, resizer_environment
from infra.bundling import REPO, RESIZER_REQUIREMENTS, LambdaPlatform
from infra.components.functions import PythonFunction
from infra.components.queue import UploadQueue
from infra.nag import acknowledge


# A PythonFunction itself, not a construct holding one: its resources keep the construct paths they had
# in the stack, so a deployed stack's functions, layers and log groups keep their logical ids (new ids
# would replace them, and a replaced log group is deleted with its logs).
class ResizeService(PythonFunction):
    """The resize function of one tier (``shape.tier``), fed by ``queue`` in batches.

    It reads the queue with partial batch responses (a failed image is retried alone), reads uploads
    under ``upload_prefix``, writes variants under ``variants_prefix`` and gets and puts records in
    ``table``; nothing else.

    :param shape: the tier's memory, timeout and handler defaults.
    :param queue: the tier's queue; its shape sets the batch size and batching window.
    :param table_shape: the table's shape, for the index shard count the handler writes.
    :param large: the standard tier only: the large-image tier, which it hands images over its memory
        budget to; it gets that tier's queue URL and memory size, and may send to that queue.
    """

    shape: ResizeFunctionShape
    queue: UploadQueue

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        shape: ResizeFunctionShape,
        queue: UploadQueue,
        uploads: s3.Bucket,
        upload_prefix: str,
        variants: s3.Bucket,
        variants_prefix: str,
        table: dynamodb.ITable,
        table_shape: TableShape,
        platform: LambdaPlatform,
        large: ResizeService | None = None,
    ) -> None:
        super().__init__(
            scope,
            id,
            package=REPO / "lambda_resizer",
            requirements=RESIZER_REQUIREMENTS,
            platform=platform,
            environment=resizer_environment(
                upload_prefix=upload_prefix,
                variants_bucket=variants.bucket_name,
                variants_prefix=variants_prefix,
                table_name=table.table_name,
                table=table_shape,
                function=shape,
                queue=queue.shape,
                large_queue_url=large.queue.queue.queue_url if large else None,
                large_function=large.shape if large else None,
            ),
            timeout_s=shape.timeout_s,
            memory_mb=shape.memory_mb,
            description=f"Resizes each upload into variants and writes its record ({shape.tier} tier)",
        )
        self.shape = shape
        self.queue = queue
        self.function.add_event_source(
            event_sources.SqsEventSource(
                queue.queue,
                batch_size=queue.shape.batch_size,
                max_batching_window=Duration.seconds(queue.shape.max_batching_window_s),
                report_batch_item_failures=True,
            )
        )
        # Exactly the calls lambda_resizer makes. ListBucket makes a deleted upload a 404 (recorded as
        # `missing`) instead of a 403 that would be retried into the DLQ.
        uploads.grants.actions_on_bucket_and_object_keys(
            self.function, f"{upload_prefix}*", "s3:GetObject", "s3:ListBucket"
        )
        variants.grants.actions_on_object_keys(self.function, f"{variants_prefix}*", "s3:PutObject")
        # The table's ARN alone: these item calls never touch the indexes.
        iam.Grant.add_to_principal(
            grantee=self.function,
            actions=["dynamodb:GetItem", "dynamodb:PutItem"],
            resource_arns=[table.table_arn],
        )
        if large:
            large.queue.queue.grant_send_messages(self.function)
        acknowledge(
            self.function,
            "AwsSolutions-IAM5",
            "Objects under one prefix of each bucket: the uploads it reads, the variants it writes.",
            findings=[
                rf"Resource::<{re.escape(_logical_id(uploads))}\.Arn>/{re.escape(upload_prefix)}\*",
                rf"Resource::<{re.escape(_logical_id(variants))}\.Arn>/{re.escape(variants_prefix)}\*",
            ],
        )


def _logical_id(bucket: s3.Bucket) -> str:
    """Return the logical id of a bucket's CloudFormation resource, as cdk-nag names it in findings."""
    resource = bucket.node.default_child
    assert isinstance(resource, CfnElement), f"{bucket.node.path} has no CloudFormation resource"
    return Stack.of(bucket).get_logical_id(resource)
