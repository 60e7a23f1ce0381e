"""Parity: the cloud stacks and the local stack are built from `image_etl.resource_shapes` and agree.

The local side is what `image-etl up` really creates (read back from moto), not the module's numbers.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from image_etl.local.site import api_environment
from image_etl.local.worker import handler_environment
from image_etl.resource_shapes import LOCAL, upload_cors_rules
from image_etl.settings import Settings
from tests.infra.conftest import Cloud

pytestmark = pytest.mark.slow

#: Set by the local runners only: Lambda provides credentials and region, and talks to AWS itself.
LOCAL_ONLY = {"AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"}


def test_notification_prefix_and_events_match(cloud: Cloud, stack: Settings) -> None:
    local = stack.client("s3").get_bucket_notification_configuration(Bucket=stack.upload_bucket)
    (local_queue,) = local["QueueConfigurations"]
    (notification,) = cloud.resources(cloud.processing, "Custom::S3BucketNotifications").values()
    (cloud_queue,) = notification["Properties"]["NotificationConfiguration"]["QueueConfigurations"]
    assert cloud_queue["Events"] == local_queue["Events"]
    assert cloud_queue["Filter"]["Key"]["FilterRules"] == [
        {"Name": rule["Name"].lower(), "Value": rule["Value"]}
        for rule in local_queue["Filter"]["Key"]["FilterRules"]
    ]


@pytest.mark.parametrize("tier", ["standard", "large"])
def test_queue_redrive_visibility_and_retention_match(cloud: Cloud, stack: Settings, tier: str) -> None:
    sqs = stack.client("sqs")
    shape = LOCAL.queue if tier == "standard" else LOCAL.large_queue
    assert shape is not None
    local_url = sqs.get_queue_url(QueueName=shape.name)["QueueUrl"]
    local_dlq_url = sqs.get_queue_url(QueueName=shape.dlq_name)["QueueUrl"]
    local = sqs.get_queue_attributes(QueueUrl=local_url, AttributeNames=["All"])["Attributes"]
    local_dlq = sqs.get_queue_attributes(QueueUrl=local_dlq_url, AttributeNames=["All"])["Attributes"]
    queues = cloud.resources(cloud.processing, "AWS::SQS::Queue")
    construct = cloud.processing.queue if tier == "standard" else cloud.processing.large_queue
    queue = queues[cloud.logical_id(construct.queue)]["Properties"]
    dlq = queues[cloud.logical_id(construct.dead_letters)]["Properties"]
    assert queue["VisibilityTimeout"] == int(local["VisibilityTimeout"])
    assert queue["MessageRetentionPeriod"] == int(local["MessageRetentionPeriod"])
    assert queue["RedrivePolicy"]["maxReceiveCount"] == json.loads(local["RedrivePolicy"])["maxReceiveCount"]
    assert dlq["MessageRetentionPeriod"] == int(local_dlq["MessageRetentionPeriod"])


def test_table_keys_indexes_and_billing_match(cloud: Cloud, stack: Settings) -> None:
    local = stack.client("dynamodb").describe_table(TableName=stack.table_name)["Table"]
    (table,) = cloud.resources(cloud.processing, "AWS::DynamoDB::Table").values()
    props = table["Properties"]
    assert props["KeySchema"] == local["KeySchema"]
    assert _by_name(props["AttributeDefinitions"], "AttributeName") == _by_name(
        local["AttributeDefinitions"], "AttributeName"
    )
    assert props["BillingMode"] == local["BillingModeSummary"]["BillingMode"]
    local_indexes = {
        index["IndexName"]: (index["KeySchema"], index["Projection"])
        for index in local["GlobalSecondaryIndexes"]
    }
    assert {
        index["IndexName"]: (index["KeySchema"], index["Projection"])
        for index in props["GlobalSecondaryIndexes"]
    } == local_indexes


def _by_name(items: list[dict[str, Any]], key: str) -> dict[str, dict[str, Any]]:
    return {item[key]: item for item in items}


def _cloud_environment(cloud: Cloud, stack: Any, function: Any) -> dict[str, Any]:
    resource = cloud.resources(stack, "AWS::Lambda::Function")[cloud.logical_id(function)]
    return resource["Properties"]["Environment"]["Variables"]


@pytest.mark.parametrize("which", ["resizer", "large_resizer", "upload_api"])
def test_handler_environments_match(cloud: Cloud, api_stack: Settings, which: str) -> None:
    if which == "resizer":
        local = handler_environment(api_stack)
        deployed = _cloud_environment(cloud, cloud.processing, cloud.processing.resizer.function)
    elif which == "large_resizer":
        assert LOCAL.large_queue is not None
        local = handler_environment(api_stack, queue=LOCAL.large_queue, function=LOCAL.large_function)
        deployed = _cloud_environment(cloud, cloud.processing, cloud.processing.large_resizer.function)
    else:
        local = api_environment(api_stack)
        deployed = _cloud_environment(cloud, cloud.upload_api, cloud.upload_api.handler.function)
    assert set(deployed) == set(local) - LOCAL_ONLY
    # Names of resources differ (CloudFormation generates them); every other value is the same.
    literal = {name: value for name, value in deployed.items() if isinstance(value, str)}
    assert literal == {name: local[name] for name in literal}
    assert {name for name, value in deployed.items() if not isinstance(value, str)} <= {
        "UPLOAD_BUCKET",
        "VARIANTS_BUCKET",
        "TABLE_NAME",
        "ALLOWED_ORIGIN",
        "APP_CLIENT_ID",
        "LARGE_QUEUE_URL",
    }


def test_user_pool_matches(cloud: Cloud, api_stack: Settings) -> None:
    local = api_stack.client("cognito-idp").describe_user_pool(UserPoolId=api_stack.user_pool_id)["UserPool"]
    (pool,) = cloud.resources(cloud.upload_api, "AWS::Cognito::UserPool").values()
    props = pool["Properties"]
    assert props["Policies"]["PasswordPolicy"] == local["Policies"]["PasswordPolicy"]
    assert (
        props["AdminCreateUserConfig"]["AllowAdminCreateUserOnly"]
        is local["AdminCreateUserConfig"]["AllowAdminCreateUserOnly"]
    )
    assert props["MfaConfiguration"] == local["MfaConfiguration"]
    assert props["EnabledMfas"] == ["SOFTWARE_TOKEN_MFA"]
    assert props["UsernameConfiguration"] == local["UsernameConfiguration"]
    assert props["DeletionProtection"] == local["DeletionProtection"]
    assert pool["DeletionPolicy"] == pool["UpdateReplacePolicy"] == "Retain"


def test_app_client_matches(cloud: Cloud, api_stack: Settings) -> None:
    local = api_stack.client("cognito-idp").describe_user_pool_client(
        UserPoolId=api_stack.user_pool_id, ClientId=api_stack.user_pool_client_id
    )["UserPoolClient"]
    (client,) = cloud.resources(cloud.upload_api, "AWS::Cognito::UserPoolClient").values()
    props = client["Properties"]
    for name in (
        "ClientName",
        "GenerateSecret",
        "ExplicitAuthFlows",
        "AccessTokenValidity",
        "IdTokenValidity",
        "RefreshTokenValidity",
        "TokenValidityUnits",
        "PreventUserExistenceErrors",
        "EnableTokenRevocation",
    ):
        assert props[name] == local.get(name, False if name == "GenerateSecret" else None), name
    assert "ClientSecret" not in local  # a public client: the page cannot keep a secret


def test_groups_match(cloud: Cloud, api_stack: Settings) -> None:
    local = api_stack.client("cognito-idp").list_groups(UserPoolId=api_stack.user_pool_id)["Groups"]
    deployed = cloud.resources(cloud.upload_api, "AWS::Cognito::UserPoolGroup").values()
    assert {(g["Properties"]["GroupName"], g["Properties"]["Description"]) for g in deployed} == {
        (g["GroupName"], g["Description"]) for g in local
    }


def test_upload_bucket_cors_matches(cloud: Cloud) -> None:
    # The local stack applies the same rules for its site's origin (image_etl.local.provision).
    uploads = cloud.resources(cloud.processing, "AWS::S3::Bucket")[
        cloud.logical_id(cloud.processing.upload_bucket)
    ]
    (rule,) = uploads["Properties"]["CorsConfiguration"]["CorsRules"]
    (local,) = upload_cors_rules("https://site.example")
    assert rule["AllowedMethods"] == local["AllowedMethods"]
    assert rule["AllowedHeaders"] == local["AllowedHeaders"]
    assert rule["ExposedHeaders"] == local["ExposeHeaders"]
    assert rule["MaxAge"] == local["MaxAgeSeconds"]
    ((origin,),) = [rule["AllowedOrigins"]]
    assert "Fn::ImportValue" in json.dumps(origin)  # the site stack's distribution, and nothing else


def test_glue_database_and_manifest_table_location_match(cloud: Cloud, stack: Settings) -> None:
    from image_etl.manifest import manifest_table

    local = stack.client("glue").get_database(Name=stack.glue_database)["Database"]
    (database,) = cloud.resources(cloud.processing, "AWS::Glue::Database").values()
    deployed = database["Properties"]["DatabaseInput"]
    assert deployed["Name"] == local["Name"]  # the default deployment's database is the local one
    # s3://<datasets bucket>/datasets/iceberg/: the bucket is a token in the template.
    suffix = local["LocationUri"].removeprefix(f"s3://{stack.datasets_bucket}")
    assert json.dumps(deployed["LocationUri"]).endswith(json.dumps(suffix) + "]]}")
    table = manifest_table(stack).table()  # created by the pipeline on first use
    assert table.location() == f"{local['LocationUri']}manifest"
    outputs = cloud.template_json(cloud.processing)["Outputs"]
    assert json.dumps(outputs["ManifestTableLocation"]["Value"]).endswith(
        json.dumps(f"{suffix}manifest") + "]]}"
    )
