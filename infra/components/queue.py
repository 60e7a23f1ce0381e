"""The upload queue between S3 and the resize function, with its dead-letter queue."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from image_etl.resource_shapes import QueueShape


class UploadQueue(Construct):
    """A queue whose messages move to ``dead_letters`` after ``shape.max_receive_count`` receives.

    Both are SSE-encrypted with SQS-managed keys (S3 can send to them without a KMS key policy) and
    refuse non-TLS requests.
    """

    def __init__(self, scope: Construct, id: str, *, shape: QueueShape) -> None:
        super().__init__(scope, id)
        self.shape = shape
        self.dead_letters = sqs.Queue(
            self,
            "DeadLetters",
            retention_period=Duration.seconds(shape.dlq_retention_s),
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
        )
        self.queue = sqs.Queue(
            self,
            "Queue",
            visibility_timeout=Duration.seconds(shape.visibility_timeout_s),
            retention_period=Duration.seconds(shape.retention_s),
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            dead_letter_queue=sqs.DeadLetterQueue(
                queue=self.dead_letters, max_receive_count=shape.max_receive_count
            ),
        )
