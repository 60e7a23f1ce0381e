"""The local event worker: Lambda's SQS event source mapping, played by a polling process.

It long-polls the upload queue, hands each batch to the real `lambda_resizer.handler` in the shape
Lambda would (an SQS event with `Records`), and deletes only the messages the handler did not
report in `batchItemFailures`. A failed message becomes visible again after the queue's
visibility timeout and moves to the DLQ after its max receive count, as in AWS.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
import uuid
from dataclasses import dataclass
from typing import Any

from image_etl.resources import LOCAL, QueueShape, resizer_environment
from image_etl.settings import Settings, load_settings


@dataclass
class FakeLambdaContext:
    """The parts of `LambdaContext` the handler and Powertools read."""

    function_name: str = "image-etl-resizer-local"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = LOCAL.function.memory_mb
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:image-etl-resizer-local"
    aws_request_id: str = ""
    timeout_s: int = LOCAL.function.timeout_s
    started: float = 0.0

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.started + self.timeout_s - time.monotonic()) * 1000))


def lambda_event(messages: list[dict[str, Any]], *, queue_arn: str, region: str) -> dict[str, Any]:
    """Return the event Lambda's SQS event source mapping would pass for ``messages``."""
    return {
        "Records": [
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": message.get("Attributes", {}),
                "messageAttributes": message.get("MessageAttributes", {}),
                "md5OfBody": message.get("MD5OfBody", ""),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            }
            for message in messages
        ]
    }


def handler_environment(settings: Settings) -> dict[str, str]:
    """Return the environment the resize handler runs with locally: the Lambda's, plus the endpoint."""
    return {
        **resizer_environment(
            upload_prefix=settings.upload_prefix,
            variants_bucket=settings.variants_bucket,
            variants_prefix=settings.variants_prefix,
            table_name=settings.table_name,
            table=LOCAL.table,
            function=LOCAL.function,
        ),
        **settings.lambda_environment(),
    }


class EventWorker:
    """Polls the upload queue and invokes the resize handler until stopped."""

    def __init__(self, settings: Settings, *, queue: QueueShape = LOCAL.queue) -> None:
        os.environ.update(handler_environment(settings))
        from lambda_resizer.handler import lambda_handler  # reads its environment on first use

        self.handler = lambda_handler
        self.settings = settings
        self.queue = queue
        self.sqs = settings.client("sqs")
        self.queue_arn = self.sqs.get_queue_attributes(
            QueueUrl=settings.queue_url, AttributeNames=["QueueArn"]
        )["Attributes"]["QueueArn"]
        self.stopping = False
        self.busy = False

    def poll_once(self, *, wait_s: int | None = None) -> int:
        """Receive one batch, run the handler on it, delete what succeeded; return messages received."""
        response = self.sqs.receive_message(
            QueueUrl=self.settings.queue_url,
            MaxNumberOfMessages=self.queue.batch_size,
            WaitTimeSeconds=self.queue.long_poll_s if wait_s is None else wait_s,
            MessageSystemAttributeNames=["All"],
        )
        messages = response.get("Messages", [])
        if not messages:
            return 0
        self.busy = True
        try:
            self._invoke(messages)
        finally:
            self.busy = False
        return len(messages)

    def _invoke(self, messages: list[dict[str, Any]]) -> None:
        event = lambda_event(messages, queue_arn=self.queue_arn, region=self.settings.region)
        context = FakeLambdaContext(aws_request_id=str(uuid.uuid4()), started=time.monotonic())
        try:
            result = self.handler(event, context)
        except Exception as error:  # as in Lambda: the whole batch comes back after the visibility timeout
            print(
                f"resize handler raised {type(error).__name__}: {error}; batch will be retried",
                file=sys.stderr,
            )
            return
        failed = {item["itemIdentifier"] for item in (result or {}).get("batchItemFailures", [])}
        done = [m for m in messages if m["MessageId"] not in failed]
        for start in range(0, len(done), 10):
            self.sqs.delete_message_batch(
                QueueUrl=self.settings.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                    for i, m in enumerate(done[start:][:10])
                ],
            )

    def run(self) -> None:
        """Poll until SIGTERM/SIGINT; a batch in progress is finished first."""

        def stop(*_: Any) -> None:
            self.stopping = True
            if not self.busy:
                raise SystemExit(0)

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        while not self.stopping:
            try:
                self.poll_once()
            except SystemExit:
                raise
            except Exception as error:  # the emulator restarting or a network blip: keep polling
                print(f"worker: polling failed ({type(error).__name__}: {error}); retrying", file=sys.stderr)
                time.sleep(1)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="image-etl local event worker (SQS -> resize handler)")
    parser.add_argument("--data-dir", required=True)
    args = parser.parse_args(argv)
    worker = EventWorker(load_settings(args.data_dir))
    print(json.dumps({"ready": True, "queue_url": worker.settings.queue_url}), flush=True)
    worker.run()


if __name__ == "__main__":
    main()
