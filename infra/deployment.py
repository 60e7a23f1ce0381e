"""The CDK app: three stacks wired together, checked by cdk-nag at synth."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from aws_cdk import App, Environment, Tags, Validations
from constructs import Construct

from image_etl import stack_outputs
from image_etl.resource_shapes import LOCAL, IdentityShape
from infra.bundling import REPO
from infra.nag import aws_solutions_checks
from infra.stacks.processing import ImageProcessingStack
from infra.stacks.upload_api import UploadApiStack
from infra.stacks.upload_site import UploadSiteStack

#: Feature flags this app is written against (`cdk.json` stays tiny; tests synthesize with them too).
FEATURE_FLAGS: dict[str, object] = {
    # S3 access-log delivery through the log bucket's policy, not ACLs (works with ACLs disabled).
    "@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy": True,
    # Cross-stack references as CloudFormation exports (a producer cannot drop a value in use).
    "@aws-cdk/core:defaultCrossStackReferences": "strong",
}


def build_cdk_app(
    *,
    outdir: Path | str | None = None,
    prefix: str | None = None,
    checks: bool = True,
    context: Mapping[str, Any] | None = None,
) -> App:
    """Return the app with its three stacks, deployed in the order site -> processing -> API.

    Context (``cdk -c``/``CDK_ARGS``): ``stackPrefix`` names the stacks, ``alarmTopicArn`` is an SNS
    topic the alarms notify, ``selfSignUp=true`` lets people create their own accounts (they get
    no group until an admin adds one), ``tokenMinutes``/``refreshTokenDays`` set token lifetimes,
    ``cognitoPlusTier=false`` drops Cognito's threat protection (and its per-user cost).

    :param outdir: where to synthesize; default $CDK_OUTDIR (set by the CDK CLI), else ``infra/cdk.out``.
    :param prefix: stack name prefix; default the ``stackPrefix`` context, else ``ImageEtl``.
    :param checks: run cdk-nag's AwsSolutions pack at synth (an error fails the synth).
    :param context: more context, as ``cdk -c`` gives it.
    """
    app = App(
        outdir=str(outdir or os.environ.get("CDK_OUTDIR") or REPO / "infra" / "cdk.out"),
        # CloudFormation's built-in validator makes synth ~10x slower; `make test` runs cfn-lint instead.
        builtin_cloud_formation_validation=False,
        context={**FEATURE_FLAGS, **(context or {})},
    )
    ids = stack_outputs.stack_ids(
        prefix or app.node.try_get_context("stackPrefix") or stack_outputs.DEFAULT_PREFIX
    )
    # Set by the CDK CLI from the credentials' account and AWS_REGION/the profile's region; unset
    # (an environment-agnostic template) when synthesizing offline.
    env = Environment(
        account=os.environ.get("CDK_DEFAULT_ACCOUNT"), region=os.environ.get("CDK_DEFAULT_REGION")
    )
    alarm_topic_arn = app.node.try_get_context("alarmTopicArn")
    names = replace(LOCAL, identity=identity_from_context(app))
    site = UploadSiteStack(app, ids.site, env=env, description="image-etl: the upload page on CloudFront")
    processing = ImageProcessingStack(
        app,
        ids.processing,
        site_origin=site.site.origin,
        alarm_topic_arn=alarm_topic_arn,
        stack_prefix=ids.processing.removesuffix("-Processing"),
        env=env,
        description="image-etl: uploads -> SQS -> resize Lambda -> variants + DynamoDB records",
    )
    UploadApiStack(
        app,
        ids.upload_api,
        upload_bucket=processing.upload_bucket,
        variants_bucket=processing.variants_bucket,
        table=processing.table,
        site=site.site,
        names=names,
        alarm_topic_arn=alarm_topic_arn,
        cognito_plus_tier=_flag(app.node.try_get_context("cognitoPlusTier"), default=True),
        env=env,
        description="image-etl: upload API (API Gateway + Lambda) and the page's config.json",
    )
    Tags.of(app).add("project", "image-etl")
    if checks:
        Validations.of(app).add_plugins(aws_solutions_checks(app))
    return app


def _flag(value: Any, *, default: bool) -> bool:
    """Return a context flag: ``-c name=true`` arrives as a string, a test's context as a bool."""
    if value is None:
        return default
    return value if isinstance(value, bool) else str(value).strip().lower() in {"1", "true", "yes"}


def identity_from_context(scope: Construct) -> IdentityShape:
    """Return the user-pool shape with the deployment's context overrides applied."""
    node, shape = scope.node, LOCAL.identity
    minutes = node.try_get_context("tokenMinutes")
    days = node.try_get_context("refreshTokenDays")
    return replace(
        shape,
        self_sign_up=_flag(node.try_get_context("selfSignUp"), default=shape.self_sign_up),
        access_token_minutes=int(minutes) if minutes else shape.access_token_minutes,
        id_token_minutes=int(minutes) if minutes else shape.id_token_minutes,
        refresh_token_days=int(days) if days else shape.refresh_token_days,
    )
