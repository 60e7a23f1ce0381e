"""Provisioning creates the stack's resources from their shapes in `image_etl.resource_shapes`, and a
second run (every start of the stack runs it) changes nothing and keeps what they hold."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import pytest
from moto import mock_aws

from image_etl.local.provision import connect_notifications, create_identity, create_resources
from image_etl.resource_shapes import LOCAL, QueueShape
from image_etl.settings import Settings, local_settings


@pytest.fixture
def settings(tmp_path: Path) -> Iterator[Settings]:
    """The local stack's settings, sent to moto in this process (``mock_aws``: AWS's own endpoints)."""
    with mock_aws():
        yield replace(local_settings(tmp_path), aws_endpoint_url=None)


def queue_attributes(settings: Settings, name: str) -> dict[str, str]:
    sqs = settings.client("sqs")
    url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]


def described(settings: Settings) -> dict[str, Any]:
    """Everything provisioning decides, as AWS describes it (no timestamps, no message counts)."""
    s3, sqs = settings.client("s3"), settings.client("sqs")
    table = settings.client("dynamodb").describe_table(TableName=settings.table_name)["Table"]
    queues = {url.rsplit("/", 1)[1] for url in sqs.list_queues()["QueueUrls"]}
    return {
        "buckets": sorted(b["Name"] for b in s3.list_buckets()["Buckets"]),
        "cors": s3.get_bucket_cors(Bucket=settings.upload_bucket)["CORSRules"],
        "queues": {
            name: {
                k: v
                for k, v in queue_attributes(settings, name).items()
                if not k.endswith("Timestamp") and not k.startswith("Approximate")  # contents, not shape
            }
            for name in queues
        },
        "table": {k: table[k] for k in ("KeySchema", "AttributeDefinitions", "BillingModeSummary")},
        "indexes": {
            index["IndexName"]: [(key["AttributeName"], key["KeyType"]) for key in index["KeySchema"]]
            for index in table["GlobalSecondaryIndexes"]
        },
        "databases": settings.client("glue").get_databases()["DatabaseList"],
    }


def test_creates_the_buckets_queues_table_and_glue_database_from_the_shapes(settings: Settings) -> None:
    create_resources(settings, LOCAL)
    state = described(settings)

    assert state["buckets"] == sorted([LOCAL.upload_bucket, LOCAL.variants_bucket, LOCAL.datasets_bucket])
    assert [rule["AllowedOrigins"] for rule in state["cors"]] == [[settings.site_url]]
    shapes: list[QueueShape] = [LOCAL.queue, *([LOCAL.large_queue] if LOCAL.large_queue else [])]
    assert set(state["queues"]) == {name for q in shapes for name in (q.name, q.dlq_name)}
    for shape in shapes:
        queue, dlq = state["queues"][shape.name], state["queues"][shape.dlq_name]
        assert json.loads(queue["RedrivePolicy"]) == {
            "deadLetterTargetArn": dlq["QueueArn"],
            "maxReceiveCount": shape.max_receive_count,
        }
        assert queue["VisibilityTimeout"] == str(shape.visibility_timeout_s)
        assert queue["MessageRetentionPeriod"] == str(shape.retention_s)
        assert dlq["MessageRetentionPeriod"] == str(shape.dlq_retention_s) and "RedrivePolicy" not in dlq

    table = LOCAL.table
    assert state["table"]["KeySchema"] == [{"AttributeName": table.partition_key, "KeyType": "HASH"}]
    assert state["table"]["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert state["indexes"] == {
        index.name: [(index.partition_key, "HASH"), (index.sort_key, "RANGE")] for index in table.indexes
    }
    assert set(state["indexes"]) == {table.processed_index, table.label_index}

    [database] = state["databases"]
    assert database["Name"] == settings.glue_database == LOCAL.catalog.database
    assert database["LocationUri"] == f"s3://{LOCAL.datasets_bucket}/datasets/iceberg/"


def test_a_second_run_changes_nothing_and_keeps_what_the_resources_hold(settings: Settings) -> None:
    create_resources(settings, LOCAL)
    pool_id, client_id = create_identity(settings, LOCAL.identity)
    before = described(settings)
    s3, sqs = settings.client("s3"), settings.client("sqs")
    s3.put_object(Bucket=settings.variants_bucket, Key="v/kept.jpg", Body=b"kept")
    settings.client("dynamodb").put_item(TableName=settings.table_name, Item={"image_id": {"S": "kept"}})
    queue_url = sqs.get_queue_url(QueueName=LOCAL.queue.name)["QueueUrl"]
    sqs.send_message(QueueUrl=queue_url, MessageBody="waiting")

    create_resources(settings, LOCAL)
    again = create_identity(settings, LOCAL.identity)

    assert described(settings) == before
    assert again == (pool_id, client_id)
    idp = settings.client("cognito-idp")
    assert [p["Id"] for p in idp.list_user_pools(MaxResults=60)["UserPools"]] == [pool_id]
    assert len(idp.list_user_pool_clients(UserPoolId=pool_id, MaxResults=60)["UserPoolClients"]) == 1
    assert s3.get_object(Bucket=settings.variants_bucket, Key="v/kept.jpg")["Body"].read() == b"kept"
    assert settings.client("dynamodb").scan(TableName=settings.table_name)["Count"] == 1
    assert queue_attributes(settings, LOCAL.queue.name)["ApproximateNumberOfMessages"] == "1"


def test_the_user_pool_has_the_groups_and_the_pages_public_client(settings: Settings) -> None:
    identity = LOCAL.identity
    pool_id, client_id = create_identity(settings, identity)
    idp = settings.client("cognito-idp")
    groups = {g["GroupName"] for g in idp.list_groups(UserPoolId=pool_id)["Groups"]}
    assert groups == set(identity.group_names)
    client = idp.describe_user_pool_client(UserPoolId=pool_id, ClientId=client_id)["UserPoolClient"]
    assert client["ClientName"] == identity.client_name and "ClientSecret" not in client
    assert sorted(client["ExplicitAuthFlows"]) == sorted(identity.auth_flows)
    pool = idp.describe_user_pool(UserPoolId=pool_id)["UserPool"]
    assert pool["AdminCreateUserConfig"]["AllowAdminCreateUserOnly"] is not identity.self_sign_up
    assert pool["Policies"]["PasswordPolicy"]["MinimumLength"] == identity.password_min_length


def test_only_uploads_under_the_prefix_reach_the_queue(settings: Settings) -> None:
    create_resources(settings, LOCAL)
    connect_notifications(settings)
    s3, sqs = settings.client("s3"), settings.client("sqs")
    s3.put_object(Bucket=settings.upload_bucket, Key=f"{settings.upload_prefix}cats/a.jpg", Body=b"a")
    s3.put_object(Bucket=settings.upload_bucket, Key="elsewhere/b.jpg", Body=b"b")

    queue_url = sqs.get_queue_url(QueueName=LOCAL.queue.name)["QueueUrl"]
    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)["Messages"]
    keys = [
        unquote_plus(record["s3"]["object"]["key"])  # keys in S3 events are URL-encoded
        for message in messages
        for record in json.loads(message["Body"]).get("Records", [])
    ]
    assert keys == [f"{settings.upload_prefix}cats/a.jpg"]
