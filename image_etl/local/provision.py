"""Create the local stack's resources in the emulator, from `image_etl.resource_shapes` (idempotent)."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from image_etl.resource_shapes import (
    NOTIFICATION_EVENTS,
    IdentityShape,
    QueueShape,
    StackNames,
    glue_database_input,
    upload_cors_rules,
    warehouse_location,
)
from image_etl.settings import Settings


def create_resources(settings: Settings, names: StackNames) -> None:
    """Create buckets, queue + DLQ with redrive, the table + index and the Glue database; leave existing
    ones as they are.

    The S3 -> SQS notification is separate (:func:`connect_notifications`) so a restore can put
    objects back before events flow.
    """
    s3 = settings.client("s3")
    for bucket in (settings.upload_bucket, settings.variants_bucket, settings.datasets_bucket):
        try:
            s3.create_bucket(Bucket=bucket)
        except ClientError as error:
            if error.response["Error"]["Code"] not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                raise
    if settings.site_url:
        s3.put_bucket_cors(
            Bucket=settings.upload_bucket,
            CORSConfiguration={"CORSRules": upload_cors_rules(settings.site_url)},
        )
    sqs = settings.client("sqs")
    for queue in (names.queue, names.large_queue):  # the upload queue, and the large-image tier's
        if queue is None:
            continue
        dlq_url = sqs.create_queue(
            QueueName=queue.dlq_name, Attributes={"MessageRetentionPeriod": str(queue.dlq_retention_s)}
        )["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        sqs.create_queue(QueueName=queue.name, Attributes=queue_attributes(queue, dlq_arn))
    dynamodb = settings.client("dynamodb")
    try:
        dynamodb.create_table(**table_definition(names))
    except ClientError as error:
        if error.response["Error"]["Code"] != "ResourceInUseException":
            raise
    create_glue_database(settings, names)


def create_glue_database(settings: Settings, names: StackNames) -> None:
    """Create the Glue database of the manifest table, from the shape the CDK stack uses (idempotent)."""
    database = glue_database_input(
        name=settings.glue_database,
        location=warehouse_location(settings.datasets_bucket, settings.datasets_prefix, names.catalog),
    )
    try:
        settings.client("glue").create_database(DatabaseInput=database)
    except ClientError as error:
        if error.response["Error"]["Code"] != "AlreadyExistsException":
            raise


def queue_attributes(queue: QueueShape, dlq_arn: str) -> dict[str, str]:
    """Return a queue's attributes: visibility timeout, retention and redrive to its DLQ."""
    return {
        "VisibilityTimeout": str(queue.visibility_timeout_s),
        "MessageRetentionPeriod": str(queue.retention_s),
        "RedrivePolicy": json.dumps(
            {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": queue.max_receive_count}
        ),
    }


def table_definition(names: StackNames) -> dict[str, Any]:
    """Return the CreateTable arguments: on-demand, keyed by image_id, with every index of the shape."""
    table = names.table
    # Every key attribute of the table and its indexes, once each (all strings).
    key_attributes = dict.fromkeys(
        [
            table.partition_key,
            *(key for index in table.indexes for key in (index.partition_key, index.sort_key)),
        ]
    )
    return {
        "TableName": table.name,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [{"AttributeName": name, "AttributeType": "S"} for name in key_attributes],
        "KeySchema": [{"AttributeName": table.partition_key, "KeyType": "HASH"}],
        "GlobalSecondaryIndexes": [
            {
                "IndexName": index.name,
                "KeySchema": [
                    {"AttributeName": index.partition_key, "KeyType": "HASH"},
                    {"AttributeName": index.sort_key, "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
            for index in table.indexes
        ],
    }


def connect_notifications(settings: Settings) -> None:
    """Send ObjectCreated events under the upload prefix to the upload queue (as the CDK stack does)."""
    sqs = settings.client("sqs")
    queue_arn = sqs.get_queue_attributes(QueueUrl=settings.queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    settings.client("s3").put_bucket_notification_configuration(
        Bucket=settings.upload_bucket,
        NotificationConfiguration={
            "QueueConfigurations": [
                {
                    "Id": "resize-uploads",
                    "QueueArn": queue_arn,
                    "Events": list(NOTIFICATION_EVENTS),
                    "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": settings.upload_prefix}]}},
                }
            ]
        },
    )


def user_pool_definition(identity: IdentityShape) -> dict[str, Any]:
    """Return the CreateUserPool arguments: admin-created users, strong passwords, optional TOTP,
    case-insensitive names, deletion protection (what the CDK pool declares)."""
    return {
        "PoolName": identity.pool_name,
        "Policies": {
            "PasswordPolicy": {
                "MinimumLength": identity.password_min_length,
                "RequireUppercase": True,
                "RequireLowercase": True,
                "RequireNumbers": True,
                "RequireSymbols": True,
                "TemporaryPasswordValidityDays": identity.temporary_password_days,
            }
        },
        "AdminCreateUserConfig": {"AllowAdminCreateUserOnly": not identity.self_sign_up},
        "MfaConfiguration": identity.mfa,
        "UsernameConfiguration": {"CaseSensitive": False},
        "DeletionProtection": "ACTIVE",
    }


def app_client_definition(identity: IdentityShape, user_pool_id: str) -> dict[str, Any]:
    """Return the CreateUserPoolClient arguments of the page's public client (no secret)."""
    return {
        "UserPoolId": user_pool_id,
        "ClientName": identity.client_name,
        "GenerateSecret": False,
        "ExplicitAuthFlows": list(identity.auth_flows),
        "AccessTokenValidity": identity.access_token_minutes,
        "IdTokenValidity": identity.id_token_minutes,
        # In minutes, as CloudFormation gets them from the CDK (one unit for all three).
        "RefreshTokenValidity": identity.refresh_token_days * 24 * 60,
        "TokenValidityUnits": {"AccessToken": "minutes", "IdToken": "minutes", "RefreshToken": "minutes"},
        "PreventUserExistenceErrors": "ENABLED",
        "EnableTokenRevocation": True,
    }


def create_identity(settings: Settings, identity: IdentityShape) -> tuple[str, str]:
    """Create the user pool, its groups and the page's app client unless they exist.

    :return: (user pool id, app client id).
    """
    idp = settings.client("cognito-idp")
    pools = [p for p in idp.list_user_pools(MaxResults=60)["UserPools"] if p["Name"] == identity.pool_name]
    if pools:
        pool_id = pools[0]["Id"]
    else:
        pool_id = idp.create_user_pool(**user_pool_definition(identity))["UserPool"]["Id"]
        idp.set_user_pool_mfa_config(
            UserPoolId=pool_id,
            SoftwareTokenMfaConfiguration={"Enabled": True},
            MfaConfiguration=identity.mfa,
        )
    existing_groups = {g["GroupName"] for g in idp.list_groups(UserPoolId=pool_id, Limit=60)["Groups"]}
    for group in identity.groups:
        if group.name not in existing_groups:
            idp.create_group(UserPoolId=pool_id, GroupName=group.name, Description=group.description)
    clients = [
        c
        for c in idp.list_user_pool_clients(UserPoolId=pool_id, MaxResults=60)["UserPoolClients"]
        if c["ClientName"] == identity.client_name
    ]
    if clients:
        client_id = clients[0]["ClientId"]
    else:
        client_id = idp.create_user_pool_client(**app_client_definition(identity, pool_id))["UserPoolClient"][
            "ClientId"
        ]
    return pool_id, client_id
