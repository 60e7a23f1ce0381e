"""Who may use the deployment: a Cognito user pool, its groups and the upload page's app client."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_cognito as cognito
from constructs import Construct

from image_etl.resource_shapes import IdentityShape
from infra.nag import acknowledge


class Identity(Construct):
    """A user pool built from ``shape``: users created by an admin (unless ``shape.self_sign_up``),
    a strong password policy, optional TOTP MFA, case-insensitive names, kept like the data.

    The page signs in with SRP (``ALLOW_USER_SRP_AUTH``) through a public client with no secret and
    no OAuth flows, and gets access tokens the API's authorizer takes.

    :param plus_tier: Cognito's Plus feature plan with threat protection enforced (compromised
        credentials and risky sign-ins are blocked); about $0.02 per monthly active user.
    """

    def __init__(self, scope: Construct, id: str, *, shape: IdentityShape, plus_tier: bool = True) -> None:
        super().__init__(scope, id)
        self.shape = shape
        self.user_pool = cognito.UserPool(
            self,
            "UserPool",
            self_sign_up_enabled=shape.self_sign_up,
            sign_in_aliases=cognito.SignInAliases(username=True),
            sign_in_case_sensitive=False,
            password_policy=cognito.PasswordPolicy(
                min_length=shape.password_min_length,
                require_lowercase=True,
                require_uppercase=True,
                require_digits=True,
                require_symbols=True,
                temp_password_validity=Duration.days(shape.temporary_password_days),
            ),
            mfa=cognito.Mfa[shape.mfa],
            mfa_second_factor=cognito.MfaSecondFactor(sms=False, otp=True),
            # No e-mail or phone is collected: an admin resets a forgotten password (`users add`).
            account_recovery=cognito.AccountRecovery.NONE,
            feature_plan=cognito.FeaturePlan.PLUS if plus_tier else cognito.FeaturePlan.ESSENTIALS,
            standard_threat_protection_mode=(
                cognito.StandardThreatProtectionMode.FULL_FUNCTION if plus_tier else None
            ),
            deletion_protection=True,
            removal_policy=RemovalPolicy.RETAIN,
        )
        acknowledge(
            self.user_pool,
            "AwsSolutions-COG2",
            "MFA is optional by design: each user may turn on TOTP; users are admin-created with random "
            "temporary passwords that must be changed at first sign-in.",
        )
        if not plus_tier:
            acknowledge(
                self.user_pool,
                "AwsSolutions-COG8",
                "Plus tier turned off by the deployment (-c cognitoPlusTier=false) to save its "
                "per-user cost.",
            )
        self.groups = {
            group.name: cognito.UserPoolGroup(
                self,
                f"Group{group.name.title()}",
                user_pool=self.user_pool,
                group_name=group.name,
                description=group.description,
            )
            for group in shape.groups
        }
        self.client = self.user_pool.add_client(
            "UploadPageClient",
            user_pool_client_name=shape.client_name,
            generate_secret=False,
            auth_flows=cognito.AuthFlow(user_srp=True),
            disable_o_auth=True,
            access_token_validity=Duration.minutes(shape.access_token_minutes),
            id_token_validity=Duration.minutes(shape.id_token_minutes),
            refresh_token_validity=Duration.days(shape.refresh_token_days),
            prevent_user_existence_errors=True,
            enable_token_revocation=True,
        )
