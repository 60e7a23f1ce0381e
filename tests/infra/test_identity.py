"""The Identity construct in a bare Stack: who may sign in, how, and the deployment's switches."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk import App, Stack
from aws_cdk.assertions import Template
from cdk_nag import AwsSolutionsChecks

from image_etl.resource_shapes import LOCAL
from infra.components.identity import Identity
from infra.deployment import identity_from_context
from infra.nag import unaccepted

pytestmark = pytest.mark.slow  # synthesizes a stack


def _identity(**context: Any) -> tuple[Stack, Identity]:
    app = App(context=context)
    stack = Stack(app, "Bare")
    identity = Identity(
        stack, "Identity", shape=identity_from_context(app), plus_tier=context.get("plus", True)
    )
    return stack, identity


def _template(**context: Any) -> tuple[Stack, Template]:
    stack, _ = _identity(**context)
    return stack, Template.from_stack(stack)


def _one(template: Template, type_: str) -> dict[str, Any]:
    (resource,) = template.find_resources(type_).values()
    return resource


def test_users_are_admin_created_with_strong_passwords_optional_totp_and_kept() -> None:
    _, template = _template()
    pool = _one(template, "AWS::Cognito::UserPool")
    props = pool["Properties"]
    assert props["AdminCreateUserConfig"]["AllowAdminCreateUserOnly"] is True
    policy = props["Policies"]["PasswordPolicy"]
    assert policy["MinimumLength"] >= 12
    assert all(
        policy[k] for k in ("RequireLowercase", "RequireUppercase", "RequireNumbers", "RequireSymbols")
    )
    assert (props["MfaConfiguration"], props["EnabledMfas"]) == ("OPTIONAL", ["SOFTWARE_TOKEN_MFA"])
    assert props["UsernameConfiguration"] == {"CaseSensitive": False}
    assert props["DeletionProtection"] == "ACTIVE"
    assert pool["DeletionPolicy"] == pool["UpdateReplacePolicy"] == "Retain"
    assert props["UserPoolTier"] == "PLUS" and props["UserPoolAddOns"] == {"AdvancedSecurityMode": "ENFORCED"}


def test_the_page_client_is_public_srp_only_with_the_default_lifetimes() -> None:
    _, template = _template()
    client = _one(template, "AWS::Cognito::UserPoolClient")["Properties"]
    assert client["GenerateSecret"] is False
    assert client["ExplicitAuthFlows"] == ["ALLOW_USER_SRP_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"]
    assert client["AllowedOAuthFlowsUserPoolClient"] is False and "CallbackURLs" not in client
    assert (client["AccessTokenValidity"], client["IdTokenValidity"]) == (60, 60)
    assert client["RefreshTokenValidity"] == 30 * 24 * 60  # minutes
    assert client["PreventUserExistenceErrors"] == "ENABLED" and client["EnableTokenRevocation"] is True


def test_the_two_groups_exist_and_nothing_else_grants_access() -> None:
    _, template = _template()
    groups = {
        g["Properties"]["GroupName"] for g in template.find_resources("AWS::Cognito::UserPoolGroup").values()
    }
    assert groups == {"uploaders", "viewers"}
    assert LOCAL.identity.groups_with("upload") == ("uploaders",)
    assert set(LOCAL.identity.groups_with("read")) == {"uploaders", "viewers"}
    assert template.find_resources("AWS::Cognito::IdentityPool") == {}


def test_context_opens_sign_up_and_sets_lifetimes() -> None:
    _, template = _template(selfSignUp="true", tokenMinutes="15", refreshTokenDays="1")
    assert _one(template, "AWS::Cognito::UserPool")["Properties"]["AdminCreateUserConfig"] == {
        "AllowAdminCreateUserOnly": False
    }
    client = _one(template, "AWS::Cognito::UserPoolClient")["Properties"]
    assert (client["AccessTokenValidity"], client["IdTokenValidity"], client["RefreshTokenValidity"]) == (
        15,
        15,
        24 * 60,
    )


@pytest.mark.parametrize("plus", [True, False])
def test_cdk_nag_passes_the_cognito_rules_or_says_why_not(plus: bool) -> None:
    stack, identity = _identity(plus=plus)
    report = AwsSolutionsChecks().validate_scope(stack)
    assert unaccepted(report.violations, stack) == []
    reasons = {
        entry.data["rule"]: entry.data["reason"]
        for entry in identity.user_pool.node.metadata
        if entry.type == "image-etl:cdk-nag-accepted"
    }
    # MFA is optional by design (said why); the Plus tier passes COG8 unless turned off; COG1 passes.
    assert "optional" in reasons["AwsSolutions-COG2"]
    assert ("AwsSolutions-COG8" in reasons) is (not plus)
    assert "AwsSolutions-COG1" not in reasons
