"""The whole app as `build_cdk_app` synthesizes it: every bucket hardened, every policy least-privilege."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import Stack

from infra.bundling import REPO
from tests.infra.conftest import Cloud

pytestmark = pytest.mark.slow

DATA_SERVICES = ("s3", "dynamodb", "sqs")


def _stack(cloud: Cloud, name: str) -> Stack:
    return getattr(cloud, name)


def test_every_bucket_is_private_encrypted_and_tls_only(cloud: Cloud) -> None:
    buckets = 0
    for stack in cloud.stacks:
        policies = {
            policy["Properties"]["Bucket"]["Ref"]: policy["Properties"]["PolicyDocument"]["Statement"]
            for policy in cloud.resources(stack, "AWS::S3::BucketPolicy").values()
        }
        for logical_id, bucket in cloud.resources(stack, "AWS::S3::Bucket").items():
            buckets += 1
            props = bucket["Properties"]
            assert props["PublicAccessBlockConfiguration"] == {
                "BlockPublicAcls": True,
                "BlockPublicPolicy": True,
                "IgnorePublicAcls": True,
                "RestrictPublicBuckets": True,
            }, logical_id
            (rule,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
            assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in {"AES256", "aws:kms"}
            assert {
                "Action": "s3:*",
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                "Effect": "Deny",
                "Principal": {"AWS": "*"},
            }.items() <= _first_deny(policies[logical_id]).items(), logical_id
    assert (
        buckets == 7
    )  # uploads, variants, datasets, Athena results and their access logs; the site and its logs


def _first_deny(statements: list[dict[str, Any]]) -> dict[str, Any]:
    return next(statement for statement in statements if statement["Effect"] == "Deny")


def _statements(cloud: Cloud) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for stack in cloud.stacks:
        for logical_id, policy in cloud.resources(stack, "AWS::IAM::Policy").items():
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
                found.append((f"{stack.stack_name}/{logical_id}", statement))
    return found


def _actions(statement: dict[str, Any]) -> list[str]:
    actions = statement["Action"]
    return [actions] if isinstance(actions, str) else actions


def test_no_policy_grants_a_whole_service_or_everything(cloud: Cloud) -> None:
    broad = [
        (where, action)
        for where, statement in _statements(cloud)
        for action in _actions(statement)
        if action == "*" or action.endswith(":*")
    ]
    assert broad == []


@pytest.mark.parametrize(
    ("stack_name", "function_attr"), [("processing", "resizer"), ("upload_api", "handler")]
)
def test_our_functions_have_no_wildcard_action_on_data(
    cloud: Cloud, stack_name: str, function_attr: str
) -> None:
    stack = _stack(cloud, stack_name)
    granted = _function_actions(cloud, stack, getattr(stack, function_attr).function)
    assert granted, "the function should have a policy"
    assert [action for action in granted if "*" in action] == []


def _function_actions(cloud: Cloud, stack: Stack, function: Any) -> set[str]:
    role = cloud.logical_id(function.role)
    return {
        action
        for policy in cloud.resources(stack, "AWS::IAM::Policy").values()
        if {"Ref": role} in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        for action in _actions(statement)
        if action.split(":")[0] in DATA_SERVICES
    }


#: boto3 operation -> the IAM action it needs (presigning needs the action of the presigned call).
OPERATION_ACTIONS = {
    ("s3", "get_object"): "s3:GetObject",
    ("s3", "head_object"): "s3:GetObject",
    ("s3", "put_object"): "s3:PutObject",
    ("s3", "generate_presigned_post"): "s3:PutObject",
    ("s3", "generate_presigned_url"): "s3:GetObject",
    ("dynamodb", "get_item"): "dynamodb:GetItem",
    ("dynamodb", "put_item"): "dynamodb:PutItem",
    ("dynamodb", "query"): "dynamodb:Query",
    ("dynamodb", "batch_get_item"): "dynamodb:BatchGetItem",
}
_CALL = re.compile(r"self\.(s3|dynamodb)\.(\w+)\b")


def _needed_actions(package: Path) -> set[str]:
    calls = {
        match.groups()
        for path in package.glob("*.py")
        for match in _CALL.finditer(path.read_text())
        if match.group(2) != "exceptions"
    }
    unknown = calls - OPERATION_ACTIONS.keys()
    assert not unknown, f"add the IAM action of {unknown} to OPERATION_ACTIONS and grant it in infra/"
    return {OPERATION_ACTIONS[call] for call in calls}


def test_resize_function_may_make_exactly_the_calls_its_code_makes(cloud: Cloud) -> None:
    stack = cloud.processing
    needed = _needed_actions(REPO / "lambda_resizer")
    granted = {a for a in _function_actions(cloud, stack, stack.resizer.function) if not a.startswith("sqs:")}
    # ListBucket turns a deleted upload into a 404 (a `missing` record) instead of a retried 403.
    assert granted == needed | {"s3:ListBucket"}


def test_upload_function_may_make_every_call_its_code_makes_and_write_nothing_but_uploads(
    cloud: Cloud,
) -> None:
    stack = cloud.upload_api
    granted = _function_actions(cloud, stack, stack.handler.function)
    assert _needed_actions(REPO / "lambda_upload_api") <= granted
    writes = {a for a in granted if re.match(r"(s3:(Put|Delete)|dynamodb:(Put|Update|Delete|BatchWrite))", a)}
    assert writes == {"s3:PutObject"}
