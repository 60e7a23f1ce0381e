"""The resize handler against a real moto server over HTTP: events in, variants and records out."""

from __future__ import annotations

import copy
import io
import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from aws_lambda_powertools.utilities.data_classes import SQSRecord
from botocore.exceptions import ClientError
from PIL import Image

from image_etl.local.worker import FakeLambdaContext, handler_environment
from image_etl.manifest import S3_NOT_FOUND_CODES
from image_etl.settings import Settings
from lambda_resizer import handler
from lambda_resizer.processing import NOT_FOUND_CODES
from lambda_resizer.records import from_item, image_id_for
from tests.imaging import encode, photo_like
from tests.stack_process import in_this_process

EVENTS = Path(__file__).parent / "events"


def load_event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())


def sqs_event(*s3_events: dict[str, Any]) -> dict[str, Any]:
    """Return the fixture SQS event carrying one message per S3 notification, ids msg-0, msg-1, ..."""
    template = load_event("sqs_s3_put.json")["Records"][0]
    records = []
    for index, body in enumerate(s3_events):
        record = copy.deepcopy(template)
        record["messageId"] = f"msg-{index}"
        record["body"] = json.dumps(body)
        records.append(record)
    return {"Records": records}


def s3_notification(bucket: str, raw_key: str, size: int, etag: str | None = None) -> dict[str, Any]:
    """Return the fixture's S3 notification with another object (``raw_key`` as S3 encodes it)."""
    event = json.loads(load_event("sqs_s3_put.json")["Records"][0]["body"])
    obj = event["Records"][0]["s3"]["object"]
    obj.update({"key": raw_key, "size": size})
    if etag:
        obj["eTag"] = etag
    event["Records"][0]["s3"]["bucket"]["name"] = bucket
    return event


@pytest.fixture
def invoke(stack: Settings, monkeypatch: pytest.MonkeyPatch):
    """Call the real Lambda handler with the environment the local stack gives it."""
    for name, value in handler_environment(stack).items():
        monkeypatch.setenv(name, value)
    handler.image_processor.cache_clear()

    def call(event: dict[str, Any]) -> dict[str, Any]:
        context = FakeLambdaContext(aws_request_id="test", memory_limit_in_mb=in_this_process().memory_mb)
        return handler.lambda_handler(event, context)

    yield call
    handler.image_processor.cache_clear()


def put_upload(stack: Settings, key: str, data: bytes, **extra: Any) -> dict[str, Any]:
    # The fixture bucket has a notification: drain nothing, the handler is called directly here.
    return stack.client("s3").put_object(Bucket=stack.upload_bucket, Key=key, Body=data, **extra)


def record_of(stack: Settings, key: str) -> dict[str, Any] | None:
    item = (
        stack.client("dynamodb")
        .get_item(TableName=stack.table_name, Key={"image_id": {"S": image_id_for(stack.upload_bucket, key)}})
        .get("Item")
    )
    return from_item(item) if item else None


def test_sqs_batch_reports_only_the_bad_message_and_records_every_image(stack: Settings, invoke) -> None:
    good = encode(photo_like(1, (1600, 1200)))
    put_upload(stack, "uploads/cats/a.jpg", good)
    put_upload(stack, "uploads/cats/broken.jpg", b"this is not a jpeg")
    event = sqs_event(
        s3_notification(stack.upload_bucket, "uploads%2Fcats%2Fa.jpg", len(good)),
        s3_notification(stack.upload_bucket, "uploads%2Fcats%2Fbroken.jpg", 18),
        s3_notification("no-such-bucket-anywhere", "uploads%2Fx.jpg", 10),
    )

    response = invoke(event)

    # Bad bytes are a record, not a retry; a missing bucket is an AWS error worth retrying.
    assert response == {"batchItemFailures": [{"itemIdentifier": "msg-2"}]}
    processed = record_of(stack, "uploads/cats/a.jpg")
    assert processed["status"] == "processed" and processed["label"] == "cats"
    assert (processed["width"], processed["height"]) == (1600, 1200)
    assert set(processed["variants"]) == {"large", "medium", "small", "thumb"}
    s3 = stack.client("s3")
    for name, edge in {"large": 1024, "medium": 512, "small": 256, "thumb": 128}.items():
        variant = processed["variants"][name]
        body = s3.get_object(Bucket=stack.variants_bucket, Key=variant["key"])["Body"].read()
        assert len(body) == variant["bytes"]
        with Image.open(io.BytesIO(body)) as image:
            assert image.format == "JPEG" and max(image.size) == edge == max(
                variant["width"], variant["height"]
            )
    failed = record_of(stack, "uploads/cats/broken.jpg")
    assert failed["status"] == "failed" and failed["error"] and failed["error_code"] == "not_an_image"


def test_direct_s3_event_is_processed(stack: Settings, invoke) -> None:
    data = encode(photo_like(2), "PNG")
    put_upload(stack, "uploads/dogs/dog.png", data)
    event = load_event("s3_direct_put.json")
    event["Records"][0]["s3"]["object"]["size"] = len(data)

    invoke(event)

    record = record_of(stack, "uploads/dogs/dog.png")
    assert record["status"] == "processed" and record["format"] == "PNG" and record["label"] == "dogs"
    assert record["uploaded_at"] == "2026-11-26T10:00:00.000000Z"


def test_url_encoded_keys_are_decoded(stack: Settings, invoke) -> None:
    data = encode(photo_like(3))
    key = "uploads/my cats/café photo+1.jpg"
    put_upload(stack, key, data)

    invoke(
        sqs_event(
            s3_notification(stack.upload_bucket, "uploads%2Fmy+cats%2Fcaf%C3%A9+photo%2B1.jpg", len(data))
        )
    )

    record = record_of(stack, key)
    assert record["source_key"] == key and record["label"] == "my cats" and record["status"] == "processed"


def test_test_event_and_foreign_prefix_are_acknowledged_and_write_nothing(stack: Settings, invoke) -> None:
    data = encode(photo_like(4))
    put_upload(stack, "elsewhere/x.jpg", data)
    event = sqs_event(
        load_event("s3_test_event.json"), s3_notification(stack.upload_bucket, "elsewhere%2Fx.jpg", len(data))
    )

    assert invoke(event) == {"batchItemFailures": []}
    assert stack.client("dynamodb").scan(TableName=stack.table_name)["Count"] == 0
    assert stack.client("s3").list_objects_v2(Bucket=stack.variants_bucket)["KeyCount"] == 0


def test_message_that_is_not_an_s3_event_is_reported_failed(stack: Settings, invoke) -> None:
    # It can never succeed, but dropping it would lose it: it goes round to the DLQ for a human.
    event = sqs_event({"hello": "world"}, load_event("s3_test_event.json"))
    event["Records"].append(copy.deepcopy(event["Records"][0]) | {"messageId": "msg-2", "body": "not json"})
    assert invoke(event) == {"batchItemFailures": [{"itemIdentifier": "msg-0"}, {"itemIdentifier": "msg-2"}]}


CREATED = {"eventName": "ObjectCreated:Put", "eventTime": "2026-11-26T10:00:00.000Z"}


class RawBody(str):
    """A message body sent as it is, not JSON-encoded."""


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (RawBody("not json"), "SQS message body is not JSON"),
        (None, "the message is a JSON null"),
        ([], "the message is a JSON array"),
        ("uploads/a.jpg", "the message is a JSON string"),
        ({"Records": {}}, "no Records list"),
        ({"Records": [1]}, "record 0 is a JSON number"),
        ({"Records": [CREATED | {"s3": {"object": {"key": "uploads/a.jpg"}}}]}, "KeyError 'bucket'"),
        ({"Records": [CREATED | {"s3": {"bucket": {"name": "b"}}}]}, "KeyError 'object'"),
        (
            {"Records": [CREATED | {"s3": {"bucket": {"name": "b"}, "object": {"key": ""}}}]},
            "bucket name and object key must be non-empty strings",
        ),
        (
            {"Records": [CREATED | {"s3": {"bucket": {"name": "b"}, "object": {"key": "k", "size": "big"}}}]},
            "object size must be a byte count",
        ),
        (  # a count as a string is refused too, not read as a number
            {"Records": [CREATED | {"s3": {"bucket": {"name": "b"}, "object": {"key": "k", "size": "12"}}}]},
            "object size must be a byte count, got '12'",
        ),
        (
            {
                "Records": [
                    {**CREATED, "eventTime": "yesterday"}
                    | {"s3": {"bucket": {"name": "b"}, "object": {"key": "k"}}}
                ]
            },
            "Invalid isoformat string",
        ),
    ],
)
def test_a_malformed_notification_is_reported_with_its_reason_and_spares_the_batch(
    stack: Settings, invoke, monkeypatch: pytest.MonkeyPatch, body: Any, reason: str
) -> None:
    log = io.StringIO()  # the handler's log stream (Powertools bound sys.stdout at import)
    monkeypatch.setattr(handler.logger.registered_handler, "stream", log)
    data = encode(photo_like(9))
    put_upload(stack, "uploads/a/fine.jpg", data)
    event = sqs_event(body, s3_notification(stack.upload_bucket, "uploads%2Fa%2Ffine.jpg", len(data)))
    if isinstance(body, RawBody):
        event["Records"][0]["body"] = str(body)

    assert invoke(event) == {"batchItemFailures": [{"itemIdentifier": "msg-0"}]}

    assert record_of(stack, "uploads/a/fine.jpg")["status"] == "processed"
    logged = [json.loads(line) for line in log.getvalue().splitlines()]
    rejected = [entry for entry in logged if entry.get("message_id") == "msg-0"]
    assert rejected and rejected[0]["level"] == "ERROR" and reason in rejected[0]["reason"]


def test_a_batch_where_every_message_fails_raises_so_lambda_retries_it(stack: Settings, invoke) -> None:
    with pytest.raises(BatchProcessingError):
        invoke(sqs_event({"hello": "world"}))


def test_redelivery_rewrites_nothing(stack: Settings, invoke) -> None:
    data = encode(photo_like(5))
    etag = put_upload(stack, "uploads/a/b.jpg", data)["ETag"].strip('"')
    event = sqs_event(s3_notification(stack.upload_bucket, "uploads%2Fa%2Fb.jpg", len(data), etag))
    invoke(event)
    first = record_of(stack, "uploads/a/b.jpg")
    for _ in range(3):
        invoke(event)
    assert record_of(stack, "uploads/a/b.jpg") == first


def test_overwritten_upload_is_reprocessed(stack: Settings, invoke) -> None:
    key = "uploads/a/same-name.jpg"
    for seed, size in ((6, (640, 480)), (7, (300, 900))):
        data = encode(photo_like(seed, size))
        etag = put_upload(stack, key, data)["ETag"].strip('"')
        invoke(
            sqs_event(s3_notification(stack.upload_bucket, "uploads%2Fa%2Fsame-name.jpg", len(data), etag))
        )
    record = record_of(stack, key)
    assert (record["width"], record["height"]) == (300, 900) and record["source_etag"] == etag


def test_oversized_object_fails_without_download(
    stack: Settings, invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAX_OBJECT_BYTES", "1000")
    handler.image_processor.cache_clear()
    data = encode(photo_like(8))
    put_upload(stack, "uploads/big/large.jpg", data)
    invoke(sqs_event(s3_notification(stack.upload_bucket, "uploads%2Fbig%2Flarge.jpg", len(data))))
    record = record_of(stack, "uploads/big/large.jpg")
    assert record["status"] == "failed" and record["error_code"] == "too_large"
    assert "over the" in record["error"] and record["source_bytes"] == len(data)


def test_label_from_metadata_and_source_left_untouched(stack: Settings, invoke) -> None:
    data = encode(photo_like(9))
    put = put_upload(stack, "uploads/no-folder.jpg", data, Metadata={"label": "birds"})
    invoke(sqs_event(s3_notification(stack.upload_bucket, "uploads%2Fno-folder.jpg", len(data))))
    assert record_of(stack, "uploads/no-folder.jpg")["label"] == "birds"
    source = stack.client("s3").get_object(Bucket=stack.upload_bucket, Key="uploads/no-folder.jpg")
    assert source["ETag"] == put["ETag"] and source["Body"].read() == data


class ScriptedContext(FakeLambdaContext):
    """A Lambda context whose remaining time follows a script, one value per call."""

    def __init__(self, remaining_ms: list[int]) -> None:
        super().__init__(aws_request_id="scripted", memory_limit_in_mb=in_this_process().memory_mb)
        self.script = list(remaining_ms)

    def get_remaining_time_in_millis(self) -> int:
        return self.script.pop(0) if len(self.script) > 1 else self.script[0]


@pytest.mark.parametrize(
    ("attributes", "count"),
    [({"ApproximateReceiveCount": "3"}, 3), ({"ApproximateReceiveCount": "0"}, 1), ({}, 1),
     ({"ApproximateReceiveCount": "many"}, 1), (None, 1)],
)  # fmt: skip
def test_a_record_without_a_readable_receive_count_counts_as_a_first_delivery(
    attributes: dict[str, str] | None, count: int
) -> None:
    record = load_event("sqs_s3_put.json")["Records"][0]
    if attributes is None:
        del record["attributes"]
    else:
        record["attributes"] = attributes
    assert handler.receive_count(SQSRecord(record)) == count


def with_receive_counts(event: dict[str, Any], *counts: int) -> dict[str, Any]:
    for record, count in zip(event["Records"], counts, strict=True):
        record["attributes"]["ApproximateReceiveCount"] = str(count)
    return event


def test_no_image_is_started_near_the_timeout_and_the_rest_go_back_to_the_queue(
    stack: Settings, invoke
) -> None:
    data = encode(photo_like(5))
    put_upload(stack, "uploads/a/first.jpg", data)
    put_upload(stack, "uploads/a/second.jpg", data)
    event = sqs_event(
        s3_notification(stack.upload_bucket, "uploads%2Fa%2Ffirst.jpg", len(data)),
        s3_notification(stack.upload_bucket, "uploads%2Fa%2Fsecond.jpg", len(data)),
    )

    # 30 s left for the first image, then 5 s: under the 15 s start margin.
    response = handler.lambda_handler(event, ScriptedContext([30_000, 5_000]))

    assert response == {"batchItemFailures": [{"itemIdentifier": "msg-1"}]}
    assert record_of(stack, "uploads/a/first.jpg")["status"] == "processed"
    assert record_of(stack, "uploads/a/second.jpg") is None  # not started, so not half-written


def test_redelivered_messages_run_after_first_deliveries(stack: Settings, invoke) -> None:
    data = encode(photo_like(6))
    for name in ("suspect", "fresh"):
        put_upload(stack, f"uploads/a/{name}.jpg", data)
    event = with_receive_counts(
        sqs_event(
            s3_notification(stack.upload_bucket, "uploads%2Fa%2Fsuspect.jpg", len(data)),
            s3_notification(stack.upload_bucket, "uploads%2Fa%2Ffresh.jpg", len(data)),
        ),
        3,  # received before: maybe the image that killed an earlier invocation
        1,
    )

    assert invoke(event) == {"batchItemFailures": []}

    fresh, suspect = record_of(stack, "uploads/a/fresh.jpg"), record_of(stack, "uploads/a/suspect.jpg")
    assert fresh["processed_at"] < suspect["processed_at"]


class SandboxKilled(BaseException):
    """Stands in for Lambda stopping the function mid-image: no except clause of ours sees it."""


@pytest.mark.parametrize(("attempt", "leaves_a_record"), [(4, False), (5, True)])
def test_an_upload_that_kills_its_last_delivery_is_recorded_as_failed(
    stack: Settings, invoke, monkeypatch: pytest.MonkeyPatch, attempt: int, leaves_a_record: bool
) -> None:
    data = encode(photo_like(7))
    put_upload(stack, "uploads/cats/poison.jpg", data, Metadata={"label": "cats"})

    def killed(*_: Any, **__: Any) -> None:
        raise SandboxKilled

    monkeypatch.setattr("lambda_resizer.processing.process_image", killed)
    event = sqs_event(s3_notification(stack.upload_bucket, "uploads%2Fcats%2Fpoison.jpg", len(data)))
    with pytest.raises(SandboxKilled):
        invoke(with_receive_counts(event, attempt))

    record = record_of(stack, "uploads/cats/poison.jpg")
    if not leaves_a_record:  # earlier deliveries are retried quietly
        assert record is None
        return
    assert (record["status"], record["error_code"], record["label"]) == ("failed", "did_not_finish", "cats")
    assert "did not finish in 5 attempts" in record["error"] and "dead-letter queue" in record["error"]


def test_a_last_delivery_that_succeeds_replaces_the_failed_mark(stack: Settings, invoke) -> None:
    data = encode(photo_like(8))
    put_upload(stack, "uploads/cats/late.jpg", data)
    event = sqs_event(s3_notification(stack.upload_bucket, "uploads%2Fcats%2Flate.jpg", len(data)))

    assert invoke(with_receive_counts(event, 5)) == {"batchItemFailures": []}

    record = record_of(stack, "uploads/cats/late.jpg")
    assert record["status"] == "processed" and "error" not in record and "error_code" not in record


def test_a_missing_object_is_recognised_from_either_call_and_both_copies_agree(stack: Settings) -> None:
    s3 = stack.client("s3")
    codes = set()
    for call in (s3.head_object, s3.get_object):
        with pytest.raises(ClientError) as missing:
            call(Bucket=stack.upload_bucket, Key="uploads/never-uploaded.jpg")
        codes.add(missing.value.response["Error"]["Code"])
    assert codes <= NOT_FOUND_CODES and len(codes) == 2  # HeadObject says "404", GetObject "NoSuchKey"
    assert NOT_FOUND_CODES == S3_NOT_FOUND_CODES  # the toolkit's copy (this package is deployed alone)


def test_a_batch_reads_each_upload_once_the_next_one_while_the_current_is_resized(
    stack: Settings, invoke
) -> None:
    keys = [f"uploads/ahead/{i}.jpg" for i in range(3)]
    bodies = [encode(photo_like(16 + i)) for i in range(len(keys))]
    for key, body in zip(keys, bodies, strict=True):
        put_upload(stack, key, body)
    calls: list[tuple[str, str]] = []  # ("get", key) and ("record", image_id), in the order made
    processor = handler.image_processor()
    processor.s3.meta.events.register(
        "provide-client-params.s3.GetObject", lambda params, **_: calls.append(("get", params["Key"]))
    )
    processor.dynamodb.meta.events.register(
        "provide-client-params.dynamodb.PutItem",
        lambda params, **_: calls.append(("record", params["Item"]["image_id"]["S"])),
    )
    notifications = (
        s3_notification(stack.upload_bucket, key, len(body)) for key, body in zip(keys, bodies, strict=True)
    )

    assert invoke(sqs_event(*notifications)) == {"batchItemFailures": []}

    assert sorted(key for kind, key in calls if kind == "get") == sorted(keys)  # each body once
    for current, following in itertools.pairwise(keys):
        # The next body was asked for before the current image's record was written, i.e. while
        # it was being resized (the read-ahead is queued before the current image's variant PUTs).
        record = calls.index(("record", image_id_for(stack.upload_bucket, current)))
        assert calls.index(("get", following)) < record
    assert all(record_of(stack, key)["status"] == "processed" for key in keys)
