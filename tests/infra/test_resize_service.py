"""ResizeService in a bare Stack: each tier's limits, how it reads its queue, and exactly what it may do."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_s3 as s3
from aws_cdk.assertions import Template
from cdk_nag import AwsSolutionsChecks

from image_etl.resource_shapes import LOCAL
from infra.bundling import RESIZER_PLATFORM
from infra.components.queue import UploadQueue
from infra.components.resize_service import ResizeService
from infra.components.table import ImageTable
from infra.nag import unaccepted

pytestmark = pytest.mark.slow  # synthesizes a stack


@dataclass
class Tiers:
    stack: Stack
    template: Template
    uploads: s3.Bucket
    variants: s3.Bucket
    table: ImageTable
    standard: ResizeService
    large: ResizeService

    def ref(self, construct: Any) -> dict[str, str]:
        return {"Ref": self.logical_id(construct)}

    def arn(self, construct: Any) -> dict[str, list[str]]:
        return {"Fn::GetAtt": [self.logical_id(construct), "Arn"]}

    def logical_id(self, construct: Any) -> str:
        return self.stack.get_logical_id(construct.node.default_child)

    def function(self, tier: ResizeService) -> dict[str, Any]:
        return self.template.find_resources("AWS::Lambda::Function")[self.logical_id(tier.function)]

    def statements(self, tier: ResizeService) -> list[dict[str, Any]]:
        """Return every statement of the policies attached to ``tier``'s role."""
        role = self.ref(tier.function.role)
        return [
            statement
            for policy in self.template.find_resources("AWS::IAM::Policy").values()
            if role in policy["Properties"]["Roles"]
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        ]


@pytest.fixture(scope="module")
def tiers(tmp_path_factory: pytest.TempPathFactory) -> Tiers:
    app = App(
        outdir=str(tmp_path_factory.mktemp("cdk.out")),
        builtin_cloud_formation_validation=False,
        # The code and layer assets are the construct's business, not this test's: no bundling.
        context={"aws:cdk:bundling-stacks": []},
    )
    stack = Stack(app, "Bare")
    # Ids other than the stack's, so the construct cannot lean on the names the stack gives them.
    uploads = s3.Bucket(stack, "Incoming")
    variants = s3.Bucket(stack, "Outgoing")
    table = ImageTable(stack, "Records", shape=LOCAL.table)
    assert LOCAL.large_queue is not None
    common: dict[str, Any] = {
        "uploads": uploads,
        "upload_prefix": LOCAL.upload_prefix,
        "variants": variants,
        "variants_prefix": LOCAL.variants_prefix,
        "table": table.table,
        "table_shape": LOCAL.table,
        "platform": RESIZER_PLATFORM,
    }
    large = ResizeService(
        stack,
        "Large",
        shape=LOCAL.large_function,
        queue=UploadQueue(stack, "LargeQueue", shape=LOCAL.large_queue),
        **common,
    )
    standard = ResizeService(
        stack,
        "Standard",
        shape=LOCAL.function,
        queue=UploadQueue(stack, "Queue", shape=LOCAL.queue),
        large=large,
        **common,
    )
    return Tiers(stack, Template.from_stack(stack), uploads, variants, table, standard, large)


@pytest.mark.parametrize("tier", ["standard", "large"])
def test_each_tier_runs_the_resizer_with_its_shapes_memory_and_timeout(tiers: Tiers, tier: str) -> None:
    service = getattr(tiers, tier)
    shape = LOCAL.function if tier == "standard" else LOCAL.large_function
    props = tiers.function(service)["Properties"]
    assert (props["MemorySize"], props["Timeout"]) == (shape.memory_mb, shape.timeout_s)
    assert props["Handler"] == "lambda_resizer.handler.lambda_handler"
    assert props["Environment"]["Variables"]["RESIZER_TIER"] == tier
    assert props["Environment"]["Variables"]["TABLE_NAME"] == tiers.ref(tiers.table.table)
    assert LOCAL.large_function.memory_mb > LOCAL.function.memory_mb


@pytest.mark.parametrize("tier", ["standard", "large"])
def test_each_tier_reads_its_own_queue_in_batches_and_reports_failed_items(tiers: Tiers, tier: str) -> None:
    service = getattr(tiers, tier)
    tiers.template.resource_count_is("AWS::Lambda::EventSourceMapping", 2)
    tiers.template.has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {
            "EventSourceArn": tiers.arn(service.queue.queue),
            "FunctionName": tiers.ref(service.function),
            "BatchSize": service.queue.shape.batch_size,
            "MaximumBatchingWindowInSeconds": service.queue.shape.max_batching_window_s,
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
        },
    )


@pytest.mark.parametrize("tier", ["standard", "large"])
def test_each_tier_may_read_uploads_write_variants_and_get_and_put_records_only(
    tiers: Tiers, tier: str
) -> None:
    service = getattr(tiers, tier)
    uploads, variants = tiers.arn(tiers.uploads), tiers.arn(tiers.variants)
    granted = {
        (action, _json(resource))
        for statement in tiers.statements(service)
        for action in _list(statement["Action"])
        for resource in _list(statement["Resource"])
        if not action.startswith("sqs:")
    }
    assert granted == {
        ("s3:GetObject", _json(uploads)),
        ("s3:ListBucket", _json(uploads)),
        ("s3:GetObject", _json(_under(uploads, LOCAL.upload_prefix))),
        ("s3:ListBucket", _json(_under(uploads, LOCAL.upload_prefix))),
        ("s3:PutObject", _json(_under(variants, LOCAL.variants_prefix))),
        # The table alone, not its indexes (`<table arn>/index/*`).
        ("dynamodb:GetItem", _json(tiers.arn(tiers.table.table))),
        ("dynamodb:PutItem", _json(tiers.arn(tiers.table.table))),
    }


def test_only_the_standard_tier_hands_images_to_the_large_tiers_queue(tiers: Tiers) -> None:
    large_queue = tiers.large.queue.queue

    def queues_sent_to(service: ResizeService) -> list[Any]:
        return [
            statement["Resource"]
            for statement in tiers.statements(service)
            if "sqs:SendMessage" in _list(statement["Action"])
        ]

    assert queues_sent_to(tiers.standard) == [tiers.arn(large_queue)]
    assert queues_sent_to(tiers.large) == []
    standard_env = tiers.function(tiers.standard)["Properties"]["Environment"]["Variables"]
    assert standard_env["LARGE_QUEUE_URL"] == tiers.ref(large_queue)
    assert standard_env["LARGE_MEMORY_MB"] == str(LOCAL.large_function.memory_mb)
    large_env = tiers.function(tiers.large)["Properties"]["Environment"]["Variables"]
    assert not {"LARGE_QUEUE_URL", "LARGE_MEMORY_MB"} & set(large_env)


def test_each_tier_consumes_only_its_own_queue(tiers: Tiers) -> None:
    for service, other in ((tiers.standard, tiers.large), (tiers.large, tiers.standard)):
        received = [
            statement["Resource"]
            for statement in tiers.statements(service)
            if "sqs:ReceiveMessage" in _list(statement["Action"])
        ]
        assert received == [tiers.arn(service.queue.queue)]
        assert tiers.arn(other.queue.queue) not in received


def test_cdk_nag_accepts_the_prefix_wildcards_of_buckets_named_anything(tiers: Tiers) -> None:
    # The services' own findings only: the bare buckets and queues around them are not hardened here.
    services = tuple(f"{service.node.path}/" for service in (tiers.standard, tiers.large))
    report = AwsSolutionsChecks().validate_scope(tiers.stack)
    errors = [
        (violation.rule_name, resource.construct_path)
        for violation in unaccepted(report.violations, tiers.stack)
        if violation.severity == "error"
        for resource in violation.violating_resources
        if (resource.construct_path or "").startswith(services)
    ]
    assert errors == []
    # ... and it did look at them: the prefix wildcards are findings it accepted, not none at all.
    findings = {violation.rule_name for violation in report.violations}
    assert any(name.startswith("AwsSolutions-IAM5[Resource::<Incoming") for name in findings), findings


def _under(bucket_arn: dict[str, Any], prefix: str) -> dict[str, Any]:
    return {"Fn::Join": ["", [bucket_arn, f"/{prefix}*"]]}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True)
