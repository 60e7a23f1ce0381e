"""cdk-nag over every stack, and the plugin that fails a synth on an unaccepted error (`infra.nag`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, Stack, Validations
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sqs as sqs
from cdk_nag import AwsSolutionsChecks

from infra.deployment import build_cdk_app
from infra.nag import acknowledge, aws_solutions_checks, unaccepted
from tests.infra.conftest import Cloud

pytestmark = pytest.mark.slow

STACKS = ("site", "processing", "upload_api")


def _stack(cloud: Cloud, name: str) -> Stack:
    return getattr(cloud, name)


@pytest.mark.parametrize("name", STACKS)
def test_cdk_nag_finds_no_unaccepted_error(cloud: Cloud, name: str) -> None:
    stack = _stack(cloud, name)
    report = AwsSolutionsChecks().validate_scope(stack)
    errors = [
        f"{violation.rule_name} at {[r.construct_path for r in violation.violating_resources]}"
        for violation in unaccepted(report.violations, stack)
        if violation.severity == "error"
    ]
    assert errors == []


def test_synth_fails_on_a_nag_error_and_passes_warnings(tmp_path: Path) -> None:
    def synth(build: Any) -> None:
        app = App(outdir=str(tmp_path / build.__name__), builtin_cloud_formation_validation=False)
        build(Stack(app, "Checked"))
        Validations.of(app).add_plugins(aws_solutions_checks(app))
        app.synth()

    def queue_without_dlq(stack: Stack) -> None:
        sqs.Queue(stack, "Queue", enforce_ssl=True, encryption=sqs.QueueEncryption.SQS_MANAGED)

    def table_without_backups(stack: Stack) -> None:  # AwsSolutions-DDB3 is a warning
        key = dynamodb.Attribute(name="k", type=dynamodb.AttributeType.STRING)
        dynamodb.Table(stack, "Table", partition_key=key, billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST)

    def accepted_wildcard(stack: Stack) -> None:
        role = iam.Role(stack, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
        role.add_to_policy(iam.PolicyStatement(actions=["s3:GetObject"], resources=["arn:aws:s3:::b/p/*"]))
        acknowledge(role, "AwsSolutions-IAM5", "test", findings=[r"Resource::arn:aws:s3:::b/p/\*"])

    with pytest.raises(RuntimeError, match="AwsSolutions-SQS3"):
        synth(queue_without_dlq)
    synth(table_without_backups)
    synth(accepted_wildcard)


def test_make_synth_passes_cdk_nag_without_a_deploy_environment(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.delenv("CDK_DEFAULT_ACCOUNT", raising=False)
    monkeypatch.delenv("CDK_DEFAULT_REGION", raising=False)
    # Bundling skipped (as `cdk list` does): the assets are the session's, the checks are the point.
    assembly = build_cdk_app(outdir=tmp_path, checks=True, context={"aws:cdk:bundling-stacks": []}).synth()
    assert {stack.stack_name for stack in assembly.stacks} == {
        "ImageEtl-UploadSite",
        "ImageEtl-Processing",
        "ImageEtl-UploadApi",
    }


def test_only_cors_preflights_are_exempt_from_the_authorizer_rules(cloud: Cloud) -> None:
    # APIG4/COG4 (an authorizer on every method) pass; what is accepted is the preflights alone.
    exempt = [
        construct.node.path
        for construct in cloud.upload_api.node.find_all()
        for entry in construct.node.metadata
        if entry.type == "image-etl:cdk-nag-accepted"
        and entry.data["rule"] in {"AwsSolutions-APIG4", "AwsSolutions-COG4"}
    ]
    assert exempt and all(path.endswith("/OPTIONS") for path in exempt), exempt
