"""`image-etl users` against a deployment: ``IMAGE_ETL_STACK`` alone finds its user pool through the
stacks' outputs, and add/list/remove go to that pool with the caller's AWS credentials (moto's
Cognito and CloudFormation in this process stand in for AWS)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import boto3
import pytest
from moto import mock_aws
from typer.testing import CliRunner, Result

from image_etl import cli
from image_etl.local.provision import create_identity
from image_etl.resource_shapes import LOCAL
from image_etl.settings import local_settings
from image_etl.stack_outputs import REGION as REGION_OUTPUT
from image_etl.stack_outputs import USER_POOL_CLIENT_ID, USER_POOL_ID, stack_ids

REGION = "eu-west-1"


@pytest.fixture
def deployment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A deployment called ``Prod``: its three stacks, the UploadApi's outputs naming its user pool."""
    for name in list(os.environ):
        if name.startswith("IMAGE_ETL_") and name != "IMAGE_ETL_FIRST_DAY":
            monkeypatch.delenv(name)
    monkeypatch.setattr(cli.console, "width", 1000)  # no wrapping of the messages asserted below
    with mock_aws():
        settings = replace(local_settings(tmp_path), aws_endpoint_url=None, region=REGION)
        pool_id, client_id = create_identity(settings, LOCAL.identity)
        cloudformation = boto3.client("cloudformation", region_name=REGION)
        ids = stack_ids("Prod")
        for name in ids.all():
            outputs = {
                ids.upload_api: {USER_POOL_ID: pool_id, USER_POOL_CLIENT_ID: client_id},
                ids.processing: {REGION_OUTPUT: REGION},
            }.get(name, {})
            template = {
                "Resources": {"Nothing": {"Type": "AWS::SNS::Topic"}},
                "Outputs": {key: {"Value": value} for key, value in outputs.items()},
            }
            cloudformation.create_stack(StackName=name, TemplateBody=json.dumps(template))
        monkeypatch.setenv("IMAGE_ETL_STACK", "Prod")
        monkeypatch.setenv("AWS_REGION", REGION)
        yield pool_id


def run(*args: str) -> Result:
    return CliRunner().invoke(cli.app, list(args), prog_name="image-etl")


def test_users_add_list_and_remove_work_against_a_deployed_pool(deployment: str, tmp_path: Path) -> None:
    idp = boto3.client("cognito-idp", region_name=REGION)

    added = run("users", "add", "alice", "--group", "uploaders", "--group", "viewers")
    assert added.exit_code == 0, added.output
    assert f"in user pool {deployment}" in added.stderr
    temporary = added.stdout.strip()  # the password alone on stdout, once
    assert len(temporary) >= LOCAL.identity.password_min_length
    alice = idp.admin_get_user(UserPoolId=deployment, Username="alice")
    assert alice["UserStatus"] == "FORCE_CHANGE_PASSWORD"  # alice chooses her own at first sign-in

    given = tmp_path / "bob.txt"
    given.write_text("Given-Temporary-1!\n")
    added = run("users", "add", "bob", "--group", "viewers", "--password-file", str(given))
    assert added.exit_code == 0 and added.stdout == "", added.output

    listed = run("users", "list", "--json")
    assert listed.exit_code == 0, listed.output
    users = {user["username"]: user for user in json.loads(listed.stdout)}
    assert users["alice"]["groups"] == ["uploaders", "viewers"] and users["bob"]["groups"] == ["viewers"]
    assert temporary not in listed.stdout and "Given-Temporary" not in listed.stdout

    assert run("users", "remove", "bob").exit_code == 0
    names = [user["Username"] for user in idp.list_users(UserPoolId=deployment)["Users"]]
    assert names == ["alice"]
    gone = run("users", "remove", "bob")
    assert gone.exit_code == 2 and "there is no user 'bob'" in gone.stderr


def test_a_prefix_with_no_deployment_is_a_clear_error_not_a_traceback(
    deployment: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IMAGE_ETL_STACK", "Staging")  # only Prod is deployed
    for args in (["users", "list"], ["users", "add", "x", "--group", "viewers"], ["info", "--json"]):
        result = run(*args)
        assert result.exit_code == 2, (args, result.output)
        assert f"IMAGE_ETL_STACK=Staging: there is no stack Staging-UploadSite in {REGION}" in result.stderr
        assert result.stdout == ""
