"""Users and tokens for tests: real sign-ins against the emulator's user pool, and forged tokens
for every way a request can be refused."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from moto.utilities.utils import load_resource
from pycognito.aws_srp import AWSSRP

from image_etl.resource_shapes import LOCAL
from image_etl.settings import Settings
from image_etl.users import DEMO_PASSWORD_FILE, add_user, generate_password

#: moto signs every pool's tokens with this key (it ships in moto: local tokens protect nothing
#: beyond 127.0.0.1), so a test can sign a token the local pool would have issued.
MOTO_KEY = jwt.algorithms.RSAAlgorithm.from_jwk(
    json.dumps(load_resource("cognitoidp/resources/jwks-private.json"))
)
#: A key no pool has, with moto's key id: a token signed by it must fail on its signature.
STRANGER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def sign_in(settings: Settings, username: str, password: str) -> dict[str, str]:
    """Return the tokens (AccessToken, IdToken, RefreshToken) of a password sign-in."""
    result = settings.client("cognito-idp").admin_initiate_auth(
        UserPoolId=settings.user_pool_id,
        ClientId=settings.user_pool_client_id,
        AuthFlow="ADMIN_USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": username, "PASSWORD": password},
    )
    return result["AuthenticationResult"]


def user_tokens(settings: Settings, username: str, *groups: str) -> dict[str, str]:
    """Create ``username`` in ``groups`` and sign them in; with no group, a user the pool knows but
    who was given no access (as self sign-up would leave them)."""
    password = generate_password()
    if groups:
        add_user(settings, username, groups=list(groups), password=password, permanent=True)
    else:
        idp = settings.client("cognito-idp")
        idp.admin_create_user(
            UserPoolId=settings.user_pool_id,
            Username=username,
            TemporaryPassword=password,
            MessageAction="SUPPRESS",
        )
        idp.admin_set_user_password(
            UserPoolId=settings.user_pool_id, Username=username, Password=password, Permanent=True
        )
    return sign_in(settings, username, password)


def forged(settings: Settings, *, key: Any = MOTO_KEY, alg: str = "RS256", **claims: Any) -> str:
    """Return an access token the local pool could have issued, with ``claims`` changed."""
    now = int(time.time())
    payload = {
        "iss": settings.token_issuer,
        "sub": "00000000-0000-0000-0000-000000000000",
        "client_id": settings.user_pool_client_id,
        "token_use": "access",
        "scope": LOCAL.identity.api_scope,
        "username": "mallory",
        "cognito:groups": ["uploaders", "viewers"],
        "iat": now,
        "exp": now + 3600,
        **claims,
    }
    payload = {name: value for name, value in payload.items() if value is not None}
    if alg == "none":
        return jwt.encode(payload, None, algorithm="none", headers={"kid": "dummy"})
    return jwt.encode(payload, key, algorithm=alg, headers={"kid": "dummy"})


def tampered(token: str, **claims: Any) -> str:
    """Return ``token`` with its payload changed and its signature kept (as an attacker would)."""
    header, payload, signature = token.split(".")
    data = json.loads(jwt.utils.base64url_decode(payload)) | claims
    body = jwt.utils.base64url_encode(json.dumps(data).encode()).decode()
    return f"{header}.{body}.{signature}"


def srp_sign_in(settings: Settings, username: str, password: str, *, new_password: str | None = None) -> dict:
    """Return the tokens of an SRP sign-in, as the upload page signs in, by pycognito (an independent
    client known to work against Cognito); ``new_password`` answers a first sign-in's challenge.

    :raises pycognito.exceptions.ForceChangePasswordException: a temporary password, no new one given.
    :raises botocore.exceptions.ClientError: NotAuthorizedException for a wrong password.
    """
    srp = AWSSRP(
        username=username,
        password=password,
        pool_id=settings.user_pool_id,
        client_id=settings.user_pool_client_id,
        client=settings.client("cognito-idp"),
    )
    result = srp.set_new_password_challenge(new_password) if new_password else srp.authenticate_user()
    return result["AuthenticationResult"]


def demo_tokens(settings: Settings) -> dict[str, str]:
    """Return the tokens of the local stack's demo user (its password is in the data dir)."""
    password = (Path(settings.data_dir) / DEMO_PASSWORD_FILE).read_text().strip()
    return sign_in(settings, LOCAL.identity.demo_user, password)
