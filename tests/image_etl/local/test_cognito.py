"""The local user pool behaves like Cognito where sign-in depends on it: real SRP proofs (checked
with pycognito and with the page's own JavaScript), first-sign-in password changes, token
lifetimes, revocation, CORS for the page alone, and users kept across a restart."""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
from pathlib import Path

import jwt
import pytest
import requests
from botocore.exceptions import ClientError
from pycognito.exceptions import ForceChangePasswordException
from werkzeug.test import Client
from werkzeug.wrappers import Response

from image_etl.local.cognito import CognitoCors
from image_etl.local.emulator import Emulator
from image_etl.local.provision import app_client_definition
from image_etl.resource_shapes import LOCAL
from image_etl.settings import Settings
from image_etl.users import add_user
from tests.conftest import REPO
from tests.identity import srp_sign_in

pytestmark = pytest.mark.slow  # the emulator's Cognito, started and restarted

SIGN_IN_JS = REPO / "tests" / "site" / "sign_in.js"
PASSWORD = "Correct-Horse-9-Battery"


@pytest.fixture
def alice(api_stack: Settings) -> str:
    add_user(api_stack, "Alice", groups=["viewers"], password=PASSWORD, permanent=True)
    return "Alice"


def test_srp_sign_in_needs_the_right_password(api_stack: Settings, alice: str) -> None:
    tokens = srp_sign_in(api_stack, "alice", PASSWORD)  # user names are case-insensitive
    claims = jwt.decode(tokens["AccessToken"], options={"verify_signature": False})
    assert claims["username"] == "Alice" and claims["cognito:groups"] == ["viewers"]
    for username, password in (("alice", "Wrong-Horse-9-Battery"), ("nobody", PASSWORD)):
        with pytest.raises(ClientError, match="Incorrect username or password"):
            srp_sign_in(api_stack, username, password)


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js runs the page's sign-in code")
def test_the_pages_own_srp_code_signs_in_and_is_refused_a_wrong_password(
    api_stack: Settings, alice: str
) -> None:
    def page_sign_in(password: str) -> dict:
        args = [api_stack.aws_endpoint_url + "/", api_stack.user_pool_id, api_stack.user_pool_client_id]
        result = subprocess.run(
            ["node", str(SIGN_IN_JS), *args, "alice", password], capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    signed_in = page_sign_in(PASSWORD)
    assert signed_in["ok"] and signed_in["user"] == {"username": "Alice", "groups": ["viewers"]}
    refused = page_sign_in("Wrong-Horse-9-Battery")
    assert (refused["ok"], refused["type"]) == (False, "NotAuthorizedException")


def test_a_temporary_password_must_be_replaced_by_one_the_policy_accepts(api_stack: Settings) -> None:
    temporary = add_user(api_stack, "newbie", groups=["uploaders"])
    with pytest.raises(ForceChangePasswordException):
        srp_sign_in(api_stack, "newbie", temporary)
    with pytest.raises(ClientError, match="InvalidPassword"):
        srp_sign_in(api_stack, "newbie", temporary, new_password="short")
    assert srp_sign_in(api_stack, "newbie", temporary, new_password="A-Much-Better-One-42")["AccessToken"]
    assert srp_sign_in(api_stack, "newbie", "A-Much-Better-One-42")["AccessToken"]


def test_token_lifetimes_come_from_the_app_client(api_stack: Settings, alice: str) -> None:
    claims = jwt.decode(
        srp_sign_in(api_stack, "alice", PASSWORD)["AccessToken"], options={"verify_signature": False}
    )
    assert claims["exp"] - claims["iat"] == LOCAL.identity.access_token_minutes * 60
    idp = api_stack.client("cognito-idp")
    short = {**app_client_definition(LOCAL.identity, api_stack.user_pool_id), "ClientName": "short"}
    short.update(AccessTokenValidity=5, IdTokenValidity=5)
    client_id = idp.create_user_pool_client(**short)["UserPoolClient"]["ClientId"]
    result = idp.admin_initiate_auth(
        UserPoolId=api_stack.user_pool_id,
        ClientId=client_id,
        AuthFlow="ADMIN_USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": "alice", "PASSWORD": PASSWORD},
    )["AuthenticationResult"]
    claims = jwt.decode(result["AccessToken"], options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 300 and result["ExpiresIn"] == 300


def test_a_revoked_refresh_token_no_longer_refreshes(api_stack: Settings, alice: str) -> None:
    tokens = srp_sign_in(api_stack, "alice", PASSWORD)
    idp = api_stack.client("cognito-idp")

    def refresh() -> dict:
        return idp.initiate_auth(
            ClientId=api_stack.user_pool_client_id,
            AuthFlow="REFRESH_TOKEN_AUTH",
            AuthParameters={"REFRESH_TOKEN": tokens["RefreshToken"]},
        )

    assert refresh()["AuthenticationResult"]["AccessToken"]
    idp.revoke_token(Token=tokens["RefreshToken"], ClientId=api_stack.user_pool_client_id)
    with pytest.raises(ClientError, match="NotAuthorized"):
        refresh()


def test_cognito_answers_the_pages_origin_only() -> None:
    def app(environ: dict, start_response):  # what moto would answer
        return Response('{"ok": true}', content_type="application/x-amz-json-1.1")(environ, start_response)

    client = Client(CognitoCors(app, allowed_origin="http://127.0.0.1:8000"))
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,x-amz-target",
    }
    allowed = client.options("/", headers={"Origin": "http://127.0.0.1:8000", **preflight})
    assert (
        allowed.status_code == 200
        and allowed.headers["Access-Control-Allow-Origin"] == "http://127.0.0.1:8000"
    )
    assert "x-amz-target" in allowed.headers["Access-Control-Allow-Headers"]
    other = client.options("/", headers={"Origin": "https://evil.example", **preflight})
    assert "Access-Control-Allow-Origin" not in other.headers
    target = {"X-Amz-Target": "AWSCognitoIdentityProviderService.InitiateAuth"}
    call = client.post("/", headers={"Origin": "http://127.0.0.1:8000", **target})
    assert call.headers["Access-Control-Allow-Origin"] == "http://127.0.0.1:8000"
    assert (
        "Access-Control-Allow-Origin"
        not in client.post("/", headers={"Origin": "https://evil.example", **target}).headers
    )


def test_users_passwords_and_groups_survive_a_restart(tmp_path: Path, moto_endpoint: str) -> None:
    # moto's state is per process: start from none, as `image-etl up` does.
    requests.post(f"{moto_endpoint}/moto-api/reset", timeout=10).raise_for_status()
    data_dir = tmp_path / "data"
    first = Emulator(data_dir, port=0)
    first.start()
    settings = first.settings
    temporary = add_user(settings, "keeper", groups=["uploaders"])
    srp_sign_in(settings, "keeper", temporary, new_password="Kept-For-Later-77")
    users_file = data_dir / "users.json"
    assert stat.S_IMODE(users_file.stat().st_mode) == 0o600
    assert "Kept-For-Later-77" in users_file.read_text()
    # Forget everything moto holds, as a new process would.
    requests.post(f"{settings.aws_endpoint_url}/moto-api/reset", timeout=10).raise_for_status()
    first.stop()

    second = Emulator(data_dir, port=0)
    report = second.start()
    try:
        assert report.restored_users == 2  # keeper and the demo user
        assert report.user_pool_id == settings.user_pool_id  # so tokens issued before stay valid
        tokens = srp_sign_in(second.settings, "keeper", "Kept-For-Later-77")
        assert jwt.decode(tokens["AccessToken"], options={"verify_signature": False})["cognito:groups"] == [
            "uploaders"
        ]
        with pytest.raises(ClientError, match="Incorrect"):
            srp_sign_in(second.settings, "keeper", temporary)
    finally:
        second.stop()
