"""The local AWS emulation keeps its objects and records across restarts and re-enqueues lost work."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
import requests
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID
from moto.sqs.models import sqs_backends

from image_etl.local.emulator import Emulator, speed_up_sqs
from image_etl.settings import Settings
from lambda_resizer.records import image_id_for, to_item
from tests.image_etl.local.emulators import restart

pytestmark = pytest.mark.slow  # each test starts (and most restart) the emulator


def drain(settings: Settings) -> list[dict]:
    """Return the S3 event notifications waiting in the upload queue (test events left out), deleting them."""
    sqs = settings.client("sqs")
    bodies = []
    while True:
        messages = sqs.receive_message(QueueUrl=settings.queue_url, MaxNumberOfMessages=10).get(
            "Messages", []
        )
        if not messages:
            return [body for body in bodies if "Records" in body]
        for message in messages:
            bodies.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=settings.queue_url, ReceiptHandle=message["ReceiptHandle"])


def test_objects_and_items_survive_a_restart(emulator: dict, tmp_path: Path) -> None:
    settings = emulator["current"].settings
    s3, dynamodb = settings.client("s3"), settings.client("dynamodb")
    s3.put_object(
        Bucket=settings.variants_bucket,
        Key="v/plain.jpg",
        Body=b"plain",
        Metadata={"label": "x"},
        ContentType="image/jpeg",
    )
    s3.put_object(Bucket=settings.variants_bucket, Key="v/deleted.jpg", Body=b"gone")
    s3.delete_object(Bucket=settings.variants_bucket, Key="v/deleted.jpg")
    s3.put_object(Bucket=settings.variants_bucket, Key="v/batch-deleted.jpg", Body=b"gone too")
    s3.delete_objects(Bucket=settings.variants_bucket, Delete={"Objects": [{"Key": "v/batch-deleted.jpg"}]})
    multipart = s3.create_multipart_upload(Bucket=settings.variants_bucket, Key="v/multi part.bin")
    part = s3.upload_part(
        Bucket=settings.variants_bucket,
        Key="v/multi part.bin",
        PartNumber=1,
        UploadId=multipart["UploadId"],
        Body=b"m" * (5 * 1024 * 1024),
    )
    s3.complete_multipart_upload(
        Bucket=settings.variants_bucket,
        Key="v/multi part.bin",
        UploadId=multipart["UploadId"],
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
    )
    post = s3.generate_presigned_post(settings.variants_bucket, "v/${filename}")
    requests.post(post["url"], data=post["fields"], files={"file": ("posted é.png", b"posted")}, timeout=10)
    dynamodb.put_item(
        TableName=settings.table_name, Item=to_item({"image_id": "a", "status": "processed", "n": 1.5})
    )
    dynamodb.update_item(
        TableName=settings.table_name,
        Key={"image_id": {"S": "a"}},
        UpdateExpression="SET label = :l",
        ExpressionAttributeValues={":l": {"S": "cats"}},
    )
    dynamodb.batch_write_item(
        RequestItems={
            settings.table_name: [
                {"PutRequest": {"Item": to_item({"image_id": "b", "status": "failed"})}},
                {"PutRequest": {"Item": to_item({"image_id": "c", "status": "failed"})}},
            ]
        }
    )
    dynamodb.delete_item(TableName=settings.table_name, Key={"image_id": {"S": "c"}})
    before_objects = {
        o["Key"]: o["ETag"] for o in s3.list_objects_v2(Bucket=settings.variants_bucket)["Contents"]
    }

    emulator["current"] = restart(emulator["current"], tmp_path)
    settings = emulator["current"].settings
    s3, dynamodb = settings.client("s3"), settings.client("dynamodb")

    after_objects = {
        o["Key"]: o["ETag"] for o in s3.list_objects_v2(Bucket=settings.variants_bucket)["Contents"]
    }
    assert after_objects == before_objects
    assert set(after_objects) == {"v/plain.jpg", "v/multi part.bin", "v/posted é.png"}
    plain = s3.get_object(Bucket=settings.variants_bucket, Key="v/plain.jpg")
    assert plain["Body"].read() == b"plain" and plain["Metadata"] == {"label": "x"}
    assert plain["ContentType"] == "image/jpeg"
    items = {i["image_id"]["S"]: i for i in dynamodb.scan(TableName=settings.table_name)["Items"]}
    assert (
        set(items) == {"a", "b"} and items["a"]["label"] == {"S": "cats"} and items["a"]["n"] == {"N": "1.5"}
    )


def test_restart_requeues_only_uploads_without_an_up_to_date_record(emulator: dict, tmp_path: Path) -> None:
    settings = emulator["current"].settings
    s3, dynamodb = settings.client("s3"), settings.client("dynamodb")
    etags = {}
    for name in ("done", "pending", "changed"):
        key = f"{settings.upload_prefix}l/{name}.jpg"
        etags[name] = s3.put_object(Bucket=settings.upload_bucket, Key=key, Body=name.encode())["ETag"].strip(
            '"'
        )
    drain(settings)  # the live events: pretend the worker died before handling "pending"
    for name, etag in (("done", etags["done"]), ("changed", "an-older-etag")):
        image_id = image_id_for(settings.upload_bucket, f"{settings.upload_prefix}l/{name}.jpg")
        dynamodb.put_item(
            TableName=settings.table_name,
            Item=to_item({"image_id": image_id, "status": "processed", "source_etag": etag}),
        )

    emulator["current"] = restart(emulator["current"], tmp_path)

    events = drain(emulator["current"].settings)
    keys = sorted(e["Records"][0]["s3"]["object"]["key"] for e in events)
    assert keys == ["uploads%2Fl%2Fchanged.jpg", "uploads%2Fl%2Fpending.jpg"]
    assert emulator["current"].reconcile() == 2  # nothing was processed meanwhile: same two again


def test_restored_objects_fire_no_events_but_new_uploads_do(emulator: dict, tmp_path: Path) -> None:
    settings = emulator["current"].settings
    s3 = settings.client("s3")
    s3.put_object(Bucket=settings.variants_bucket, Key="v/x.jpg", Body=b"x")
    drain(settings)
    emulator["current"] = restart(emulator["current"], tmp_path)
    settings = emulator["current"].settings
    assert drain(settings) == []
    settings.client("s3").put_object(Bucket=settings.upload_bucket, Key="uploads/new.jpg", Body=b"new")
    assert [e["Records"][0]["s3"]["object"]["key"] for e in drain(settings)] == ["uploads%2Fnew.jpg"]


def test_sqs_answers_stay_the_same_with_the_backlog_speed_up() -> None:
    speed_up_sqs()
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        url = sqs.create_queue(QueueName="q", Attributes={"MessageRetentionPeriod": "60"})["QueueUrl"]
        for n in range(6):
            sqs.send_message(QueueUrl=url, MessageBody=str(n), DelaySeconds=30 if n == 5 else 0)
        backend = sqs_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]
        messages = backend.queues["q"]._messages

        received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=2, VisibilityTimeout=30)["Messages"]
        counts = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        messages[4].sent_timestamp -= 61_000  # now past the queue's 60 s retention period
        retained = [backend.is_message_valid_based_on_retention_period("q", m) for m in messages[3:5]]

    assert [m["Body"] for m in received] == ["0", "1"]
    assert (
        counts["ApproximateNumberOfMessages"],
        counts["ApproximateNumberOfMessagesNotVisible"],
        counts["ApproximateNumberOfMessagesDelayed"],
    ) == ("3", "2", "1")
    assert retained == [True, False]


def test_the_glue_catalog_survives_a_restart_and_takes_further_commits(
    emulator: dict, tmp_path: Path
) -> None:
    import pyarrow as pa

    from image_etl.dataset.table import glue_catalog

    def catalog(em: Emulator):
        s = em.settings
        return glue_catalog(region=s.region, endpoint_url=s.aws_endpoint_url, local_credentials=True)

    settings = emulator["current"].settings
    rows = pa.table({"n": pa.array([1, 2], pa.int64())})
    table = catalog(emulator["current"]).create_table(
        f"{settings.glue_database}.restart_probe",
        schema=rows.schema,
        location=f"s3://{settings.datasets_bucket}/probe",
    )
    table.append(rows)
    table.append(rows)
    before = table.metadata_location

    emulator["current"] = restart(emulator["current"], tmp_path)

    reloaded = catalog(emulator["current"]).load_table(f"{settings.glue_database}.restart_probe")
    assert reloaded.metadata_location == before  # the catalog's pointer itself was kept
    assert len(reloaded.scan().to_arrow()) == 4
    reloaded.append(rows)  # a commit is conditional on the Glue table's version: it still lines up
    assert (
        len(
            catalog(emulator["current"])
            .load_table(f"{settings.glue_database}.restart_probe")
            .scan()
            .to_arrow()
        )
        == 6
    )
