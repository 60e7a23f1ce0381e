"""The event worker plays Lambda's SQS event source mapping against a real moto server."""

from __future__ import annotations

import dataclasses
import io
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from image_etl.local.provision import connect_notifications, create_resources
from image_etl.local.worker import EventWorker, handler_environment, lambda_event, queue_url, resident_mb
from image_etl.resource_shapes import LOCAL, QueueShape, ResizeFunctionShape
from image_etl.settings import Settings, settings_variables
from lambda_resizer import handler
from lambda_resizer.config import ResizerConfig
from lambda_resizer.estimate import MemoryEstimate, estimate_memory, read_header
from lambda_resizer.records import from_item, image_id_for
from tests.conftest import REPO
from tests.imaging import encode, photo_like, without_restart_marker
from tests.stack_process import in_this_process

pytestmark = pytest.mark.slow  # the event worker against a moto server, some in a process of their own


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
    # Lambda's limits would SIGKILL pytest itself.
    return EventWorker(stack, function=in_this_process(), enforce_limits=False)


@pytest.fixture
def fast_retry(stack: Settings) -> tuple[Settings, QueueShape]:
    """A queue that redelivers after 1 s and gives up after 2 receives, so retry tests are quick."""
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
    )
    create_resources(settings, names)
    connect_notifications(settings)
    return settings, names.queue


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


def test_transient_aws_errors_are_retried_then_moved_to_the_dlq(
    fast_retry: tuple[Settings, QueueShape],
) -> None:
    queue_settings, queue = fast_retry
    # Every DynamoDB call fails: an AWS error, not bad bytes.
    settings = dataclasses.replace(queue_settings, table_name="a-table-that-does-not-exist")
    worker = EventWorker(settings, queue=queue, function=in_this_process(), enforce_limits=False)
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


# A worker process whose handler outlives the function's timeout or outgrows its memory size.
RUNAWAY_WORKER = """
import dataclasses, sys, time
from image_etl.local.worker import EventWorker, resident_mb
from image_etl.resource_shapes import LOCAL
from image_etl.settings import load_settings

kind = sys.argv[1]
timeout_s = 1 if kind == "slow" else 30
function = dataclasses.replace(LOCAL.function, timeout_s=timeout_s, memory_mb=int(resident_mb()) + 150)
worker = EventWorker(load_settings(), queue=dataclasses.replace(LOCAL.queue, batch_size=1), function=function)
hoard = []

def runaway_handler(event, context):
    if kind == "slow":
        time.sleep(30)
    else:
        for _ in range(10):  # 400 MB, written so it is resident, a little at a time
            hoard.append(b"x" * 40_000_000)
            time.sleep(0.05)
    return {"batchItemFailures": []}

worker.handler = runaway_handler
while not worker.poll_once(wait_s=2):
    pass
print("the handler returned")
"""


@pytest.mark.parametrize(
    ("kind", "lambda_message"),
    [
        ("slow", "Task timed out after 1.00 seconds"),
        ("hungry", "Runtime exited with error: signal: killed (Max Memory Used:"),
    ],
)
def test_an_invocation_past_lambdas_limits_is_killed_and_its_message_retried_then_dead_lettered(
    fast_retry: tuple[Settings, QueueShape], kind: str, lambda_message: str
) -> None:
    settings, _ = fast_retry
    sqs = settings.client("sqs")
    sqs.purge_queue(QueueUrl=settings.queue_url)  # the s3:TestEvent, so the batch is the upload
    settings.client("s3").put_object(
        Bucket=settings.upload_bucket, Key="uploads/x/slow.jpg", Body=encode(photo_like(3))
    )
    env = {**os.environ, **settings_variables(settings), "PYTHONPATH": str(REPO)}

    for attempt in (1, 2):  # the fast-retry queue dead-letters after 2 receives
        run = subprocess.run(
            [sys.executable, "-c", RUNAWAY_WORKER, kind], env=env, capture_output=True, text=True, timeout=60
        )
        assert run.returncode == -signal.SIGKILL, (attempt, run.stdout, run.stderr)
        assert lambda_message in run.stderr and "the handler returned" not in run.stdout

    deadline = time.monotonic() + 20
    while queue_depth(settings, settings.dlq_url) == 0 and time.monotonic() < deadline:
        # Receiving is what makes SQS move a message past its max receive count to the DLQ.
        sqs.receive_message(QueueUrl=settings.queue_url, WaitTimeSeconds=1, VisibilityTimeout=0)
    dead = sqs.receive_message(QueueUrl=settings.dlq_url, MessageSystemAttributeNames=["All"])["Messages"]
    assert "uploads%2Fx%2Fslow.jpg" in dead[0]["Body"]
    assert int(dead[0]["Attributes"]["ApproximateReceiveCount"]) >= 2


@pytest.mark.parametrize("signals", [1, 2, 8])
def test_a_stop_is_silent_and_clean_whatever_the_number_of_signals(stack: Settings, signals: int) -> None:
    env = {**os.environ, **settings_variables(stack), "PYTHONPATH": str(REPO)}
    worker = subprocess.Popen(
        [sys.executable, "-m", "image_etl.local.worker", "--data-dir", stack.data_dir],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert worker.stdout is not None and '"ready": true' in worker.stdout.readline()
    time.sleep(0.5)  # in its long poll
    for index in range(signals):
        worker.send_signal(signal.SIGTERM if index % 2 == 0 else signal.SIGINT)
        time.sleep(0.01)
    _, stderr = worker.communicate(timeout=30)
    assert worker.returncode == 0
    for noise in ("Traceback", "SystemExit", "KeyboardInterrupt"):
        assert noise not in stderr, stderr


def _budgets(
    stack: Settings, key: str, data: bytes, standard: float, large: float
) -> tuple[ResizeFunctionShape, ResizeFunctionShape, float]:
    """Return function shapes whose budgets are ``standard`` and ``large`` times the image's estimate
    (above what this test process holds), and the estimate in MB."""
    estimate = estimate_memory(
        read_header(io.BytesIO(data)), ResizerConfig.from_env(handler_environment(stack)).recipe,
        source_bytes=len(data),
    ).peak_mb  # fmt: skip
    held = resident_mb() + ResizerConfig.headroom_mb
    return (
        dataclasses.replace(LOCAL.function, memory_mb=int(held + standard * estimate)),
        dataclasses.replace(LOCAL.large_function, memory_mb=int(held + large * estimate)),
        estimate,
    )


def _drain(worker: EventWorker, settings: Settings, key: str, *, rounds: int = 10) -> None:
    for _ in range(rounds):
        worker.poll_once(wait_s=1)
        if _record(settings, key) is not None or queue_depth(settings, worker.settings.queue_url) == 0:
            return


def _record(settings: Settings, key: str) -> dict | None:
    item = settings.client("dynamodb").get_item(
        TableName=settings.table_name, Key={"image_id": {"S": image_id_for(settings.upload_bucket, key)}}
    )
    return from_item(item["Item"]) if "Item" in item else None


def test_an_image_over_the_standard_budget_is_made_by_the_large_tier(stack: Settings) -> None:
    key, data = "uploads/scans/big.png", encode(photo_like(5, (3000, 2000)), "PNG")
    standard, large, estimate = _budgets(stack, key, data, standard=0.5, large=3)
    worker = EventWorker(stack, function=standard, enforce_limits=False)
    large_url = queue_url(stack, LOCAL.large_queue.name)
    stack.client("s3").put_object(Bucket=stack.upload_bucket, Key=key, Body=data)

    _drain(worker, stack, key)
    assert _record(stack, key) is None  # handed over, not attempted
    assert queue_depth(stack, large_url) == 1

    handler.image_processor.cache_clear()
    os.environ.pop("LARGE_QUEUE_URL", None)
    large_worker = EventWorker(stack, queue=LOCAL.large_queue, function=large, enforce_limits=False)
    _drain(large_worker, stack, key)
    record = _record(stack, key)
    assert record is not None and record["status"] == "processed" and record["tier"] == "large"
    assert record["memory_estimate_mb"] == pytest.approx(estimate, rel=0.01)
    assert set(record["variants"]) == {"large", "medium", "small", "thumb"}
    assert queue_depth(stack, large_url) == 0
    assert queue_depth(stack, queue_url(stack, LOCAL.large_queue.dlq_name)) == 0


def test_an_image_over_both_budgets_fails_at_its_first_attempt_with_the_numbers(stack: Settings) -> None:
    key, data = "uploads/scans/huge.png", encode(photo_like(6, (3000, 2000)), "PNG")
    standard, large, estimate = _budgets(stack, key, data, standard=0.3, large=0.6)
    worker = EventWorker(stack, function=standard, enforce_limits=False)
    os.environ["LARGE_MEMORY_MB"] = str(large.memory_mb)  # the large tier's size, lowered too
    stack.client("s3").put_object(Bucket=stack.upload_bucket, Key=key, Body=data)

    _drain(worker, stack, key)

    record = _record(stack, key)
    assert record is not None and record["status"] == "failed"
    assert record["error_code"] == "too_large_to_decode" and record["tier"] == "standard"
    assert f"needs an estimated {estimate:.0f} MB" in record["error"]
    assert "budget of the large resize function" in record["error"]
    assert f"({large.memory_mb} MB memory" in record["error"]
    for name in (LOCAL.large_queue.name, LOCAL.queue.dlq_name, LOCAL.large_queue.dlq_name):
        assert queue_depth(stack, queue_url(stack, name)) == 0
    assert queue_depth(stack, stack.queue_url) == 0  # acknowledged at the first attempt


def _damaged_progressive() -> bytes:
    """Return a 12 MP progressive JPEG with a restart marker lost in its first scan.

    Our decoder (at 3/8 for the default recipe) declines it and libjpeg, which resynchronises,
    decodes it holding every DCT coefficient (72 MB in 4:4:4): more than the header's estimate.
    """
    data = encode(photo_like(7, (4000, 3000)), "JPEG", quality=90, progressive=True, subsampling=0,
                  restart_marker_blocks=6)  # fmt: skip
    return without_restart_marker(data)


def _damaged_budgets(stack: Settings, data: bytes) -> tuple[MemoryEstimate, MemoryEstimate, float]:
    """Return the header's estimate of ``data``, libjpeg's route's, and what this process holds (MB)."""
    recipe = ResizerConfig.from_env(handler_environment(stack)).recipe
    header = read_header(io.BytesIO(data))
    ours = estimate_memory(header, recipe, source_bytes=len(data))
    libjpegs = estimate_memory(header, recipe, source_bytes=len(data), library_route=True)
    return ours, libjpegs, resident_mb() + ResizerConfig.headroom_mb


def test_a_damaged_file_whose_library_route_is_over_the_budget_goes_to_the_large_tier(
    stack: Settings,
) -> None:
    key, data = "uploads/scans/damaged.jpg", _damaged_progressive()
    ours, libjpegs, held = _damaged_budgets(stack, data)
    assert (ours.path, libjpegs.path) == ("jpeg_scaled", "jpeg_progressive")
    assert libjpegs.peak_mb > ours.peak_mb + 50
    between = dataclasses.replace(LOCAL.function, memory_mb=int(held + (ours.peak_mb + libjpegs.peak_mb) / 2))
    large = dataclasses.replace(LOCAL.large_function, memory_mb=int(held + 3 * libjpegs.peak_mb))
    worker = EventWorker(stack, function=between, enforce_limits=False)
    large_url = queue_url(stack, LOCAL.large_queue.name)
    stack.client("s3").put_object(Bucket=stack.upload_bucket, Key=key, Body=data)

    _drain(worker, stack, key)
    assert _record(stack, key) is None  # its header fitted; libjpeg's route did not: handed over
    assert queue_depth(stack, large_url) == 1

    handler.image_processor.cache_clear()
    os.environ.pop("LARGE_QUEUE_URL", None)
    _drain(EventWorker(stack, queue=LOCAL.large_queue, function=large, enforce_limits=False), stack, key)
    record = _record(stack, key)
    assert record is not None and record["status"] == "processed" and record["tier"] == "large"
    assert record["memory_estimate_mb"] == pytest.approx(libjpegs.peak_mb, rel=0.01)
    assert set(record["variants"]) == {"large", "medium", "small", "thumb"}


def test_a_damaged_file_whose_library_route_is_over_both_budgets_fails_with_libjpegs_numbers(
    stack: Settings,
) -> None:
    key, data = "uploads/scans/damaged-huge.jpg", _damaged_progressive()
    ours, libjpegs, held = _damaged_budgets(stack, data)
    between = int(held + (ours.peak_mb + libjpegs.peak_mb) / 2)
    worker = EventWorker(
        stack, function=dataclasses.replace(LOCAL.function, memory_mb=between), enforce_limits=False
    )
    os.environ["LARGE_MEMORY_MB"] = str(between)  # the large tier no larger
    stack.client("s3").put_object(Bucket=stack.upload_bucket, Key=key, Body=data)

    _drain(worker, stack, key)
    record = _record(stack, key)
    assert (
        record is not None and record["status"] == "failed" and record["error_code"] == "too_large_to_decode"
    )
    assert f"needs an estimated {libjpegs.peak_mb:.0f} MB" in record["error"]
    assert queue_depth(stack, stack.queue_url) == 0  # acknowledged at the first attempt
