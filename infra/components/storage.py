"""Buckets: private, encrypted, TLS-only and access-logged, whatever they hold."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra.components.functions import LOG_RETENTION_DAYS
from infra.nag import acknowledge


def private_bucket(
    scope: Construct,
    id: str,
    *,
    access_logs: s3.IBucket,
    versioned: bool = False,
    cors: Sequence[s3.CorsRule] | None = None,
) -> s3.Bucket:
    """Return a bucket nobody reaches without IAM: public access blocked, SSE-S3, TLS-only, access-logged.

    Data is kept when the stack is destroyed (RETAIN): images and datasets outlive a deployment.

    :param access_logs: where S3 server access logs go, under ``<id>/``.
    """
    return s3.Bucket(
        scope,
        id,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        encryption=s3.BucketEncryption.S3_MANAGED,
        enforce_ssl=True,
        object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
        versioned=versioned,
        cors=list(cors) if cors else None,
        server_access_logs_bucket=access_logs,
        server_access_logs_prefix=f"{id}/",
        removal_policy=RemovalPolicy.RETAIN,
    )


class AccessLogs(Construct):
    """The bucket that receives the S3 server access logs (and CloudFront logs) of one stack.

    :param cloudfront: CloudFront's standard logs are delivered with ACLs, so the bucket must let
        object writers own their objects; S3 access-log delivery works either way.
    """

    def __init__(self, scope: Construct, id: str, *, cloudfront: bool = False) -> None:
        super().__init__(scope, id)
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            object_ownership=(
                s3.ObjectOwnership.OBJECT_WRITER if cloudfront else s3.ObjectOwnership.BUCKET_OWNER_ENFORCED
            ),
            lifecycle_rules=[s3.LifecycleRule(expiration=Duration.days(LOG_RETENTION_DAYS))],
            removal_policy=RemovalPolicy.RETAIN,
        )
        acknowledge(
            self.bucket,
            "AwsSolutions-S1",
            "This is the access-log bucket; logging its own access would log the log deliveries.",
        )


def cors_rules(rules: Sequence[Mapping[str, Any]]) -> list[s3.CorsRule]:
    """Return CDK CORS rules for rules in the PutBucketCors shape (`image_etl.resource_shapes` has them)."""
    return [
        s3.CorsRule(
            allowed_origins=list(rule["AllowedOrigins"]),
            allowed_methods=[s3.HttpMethods[method] for method in rule["AllowedMethods"]],
            allowed_headers=list(rule.get("AllowedHeaders", [])),
            exposed_headers=list(rule.get("ExposeHeaders", [])),
            max_age=rule.get("MaxAgeSeconds"),
        )
        for rule in rules
    ]
