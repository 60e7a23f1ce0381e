"""The local event worker: Lambda's SQS event source mapping, played by a polling process.

It long-polls the upload queue, hands each batch to the real `lambda_resizer.handler` in the shape
Lambda would (an SQS event with `Records`), and deletes only the messages the handler did not
report in `batchItemFailures`. A failed message becomes visible again after the queue's
visibility timeout and moves to the DLQ after its max receive count, as in AWS.

Lambda's limits hold too: an invocation that runs past the function's timeout, or grows the
process past the function's memory size, ends the way Lambda ends an execution environment: the
process is killed (the stack supervisor starts a fresh one, a cold start), nothing of the batch
is deleted, and its messages come back after the visibility timeout, then go to the DLQ.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import signal
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from image_etl.local.go import wait_for_go
from image_etl.local.signals import STOP_SIGNALS, ignore_further_stops
from image_etl.resource_shapes import LOCAL, QueueShape, ResizeFunctionShape, resizer_environment
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
    started: float = field(default_factory=time.monotonic)  # when the invocation began

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


def queue_url(settings: Settings, name: str) -> str:
    """Return the local URL of the queue called ``name`` (beside the upload queue)."""
    return f"{settings.queue_url.rsplit('/', 1)[0]}/{name}"


def handler_environment(
    settings: Settings, *, queue: QueueShape = LOCAL.queue, function: ResizeFunctionShape = LOCAL.function
) -> dict[str, str]:
    """Return the environment the resize handler runs with locally: the Lambda's, plus the endpoint.

    The standard tier also gets the large tier's queue and memory size, as in the CDK app.
    """
    large_queue = LOCAL.large_queue if function.tier == "standard" else None
    return {
        **resizer_environment(
            upload_prefix=settings.upload_prefix,
            variants_bucket=settings.variants_bucket,
            variants_prefix=settings.variants_prefix,
            table_name=settings.table_name,
            table=LOCAL.table,
            function=function,
            queue=queue,
            large_queue_url=queue_url(settings, large_queue.name) if large_queue else None,
            large_function=LOCAL.large_function if large_queue else None,
        ),
        **settings.lambda_environment(),
    }


def resident_mb() -> float:
    """Return this process's resident memory in MB (what Lambda's "Max Memory Used" counts)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class InvocationLimits:
    """Kill this process like Lambda would if the invocation outlives its timeout or memory size.

    A watchdog thread checks both every ``interval_s``; SIGKILL is what Lambda's sandbox gets, and
    it is also the only way to stop a decoder stuck in C code. The message is Lambda's own wording.
    """

    def __init__(self, context: FakeLambdaContext, *, interval_s: float = 0.05) -> None:
        self.context = context  # its start, timeout, memory size and request id are the limits
        self.interval_s = interval_s
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._watch, name="lambda-limits", daemon=True)

    def __enter__(self) -> InvocationLimits:
        self.thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.done.set()
        self.thread.join()

    def _watch(self) -> None:
        context = self.context
        while not self.done.wait(self.interval_s):
            used = resident_mb()
            if context.get_remaining_time_in_millis() <= 0:
                self._kill(f"Task timed out after {context.timeout_s:.2f} seconds")
            elif used > context.memory_limit_in_mb:
                self._kill(
                    f"Runtime exited with error: signal: killed "
                    f"(Max Memory Used: {used:.0f} MB of {context.memory_limit_in_mb} MB)"
                )

    def _kill(self, reason: str) -> None:
        print(
            f"RequestId: {self.context.aws_request_id} {reason}; the batch will be retried",
            file=sys.stderr,
            flush=True,
        )
        os.kill(os.getpid(), signal.SIGKILL)


class EventWorker:
    """Polls the upload queue and invokes the resize handler until stopped."""

    def __init__(
        self,
        settings: Settings,
        *,
        queue: QueueShape = LOCAL.queue,
        function: ResizeFunctionShape = LOCAL.function,
        enforce_limits: bool = True,
    ) -> None:
        """Connect to ``queue``; ``enforce_limits=False`` is for running inside a test process."""
        if queue.name != LOCAL.queue.name:
            settings = dataclasses.replace(settings, queue_url=queue_url(settings, queue.name))
        os.environ.update(handler_environment(settings, queue=queue, function=function))
        from lambda_resizer.handler import lambda_handler  # reads its environment on first use

        self.handler = lambda_handler
        self.settings = settings
        self.queue = queue
        self.function = function
        self.enforce_limits = enforce_limits
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
        context = FakeLambdaContext(
            aws_request_id=str(uuid.uuid4()),
            memory_limit_in_mb=self.function.memory_mb,
            timeout_s=self.function.timeout_s,
            started=time.monotonic(),
        )
        limits = InvocationLimits(context)
        try:
            with limits if self.enforce_limits else contextlib.nullcontext():
                result = self.handler(event, context)  # type: ignore[arg-type]  # a stand-in context
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
            ignore_further_stops()
            self.stopping = True
            if not self.busy:
                raise SystemExit(0)

        for sig in STOP_SIGNALS:
            signal.signal(sig, stop)
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
    parser.add_argument("--tier", choices=["standard", "large"], default="standard")
    args = parser.parse_args(argv)
    # The heavy imports (numpy, Pillow, boto3: ~1 s) overlap the emulator's start; the handler
    # itself is imported once its environment is set (see EventWorker).
    import boto3  # noqa: F401

    import lambda_resizer.core  # noqa: F401

    wait_for_go()
    settings = load_settings(args.data_dir)
    if args.tier == "large":
        assert LOCAL.large_queue is not None
        worker = EventWorker(settings, queue=LOCAL.large_queue, function=LOCAL.large_function)
    else:
        worker = EventWorker(settings)
    print(json.dumps({"ready": True, "queue_url": worker.settings.queue_url}), flush=True)
    worker.run()


if __name__ == "__main__":
    main()
