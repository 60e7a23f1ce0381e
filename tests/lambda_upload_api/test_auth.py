"""Who may call the upload API: every route refuses every bad token (401) and every user without the
group it needs (403), with the API's JSON error naming the rule, and lets the right users in."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import jwt
import pytest
import yaml

from image_etl.resource_shapes import token_issuer
from image_etl.settings import Settings
from lambda_upload_api.auth import Caller, caller_from, parse_groups, require
from lambda_upload_api.config import ApiConfig
from lambda_upload_api.handler import build_resolver
from tests.function_environments import APP_CLIENT_ID, upload_api_env
from tests.identity import STRANGER_KEY, forged, tampered, user_tokens

UPLOAD = {"filename": "cat.jpg", "contentType": "image/jpeg", "size": 1000}
ROUTES: list[tuple[str, str, dict[str, Any]]] = [
    ("POST", "/uploads", {"body": UPLOAD}),
    ("GET", "/images", {}),
    ("GET", f"/images/{'a' * 32}", {}),
    ("GET", "/images", {"query": {"ids": "a" * 32}}),
]
ROUTE_IDS = ["post-uploads", "list-images", "get-image", "images-by-ids"]
OPENAPI = Path(__file__).resolve().parents[2] / "lambda_upload_api" / "openapi.yaml"


def bad_tokens(settings: Settings, viewer: dict[str, str]) -> dict[str, tuple[str | None, str]]:
    """Return case -> (Authorization header, what the refusal must say)."""
    now = int(time.time())
    other_pool = token_issuer(settings.region, "us-east-1_Other")
    guessed_secret = "a-guessed-secret-of-32-bytes-or-more"
    return {
        "missing": (None, "no token"),
        "malformed": ("not-a-token", "does not hold a JSON Web Token"),
        "expired": (forged(settings, iat=now - 7200, exp=now - 60), "expired"),
        "tampered": (tampered(viewer["AccessToken"], **{"cognito:groups": ["uploaders"]}), "signature"),
        "alg-none": (forged(settings, alg="none"), "only RS256"),
        "alg-hs256": (jwt.encode({"token_use": "access"}, guessed_secret, "HS256"), "only RS256"),
        "other-key": (forged(settings, key=STRANGER_KEY), "signature does not match"),
        "other-pool": (forged(settings, iss=other_pool), "another user pool"),
        "other-client": (forged(settings, client_id="someoneelsesclient"), "another app client"),
        "id-token": (viewer["IdToken"], "access token is required"),
        "no-scope": (forged(settings, scope="openid"), "lacks the scope"),
    }


@pytest.mark.parametrize(("method", "path", "request_args"), ROUTES, ids=ROUTE_IDS)
def test_every_route_refuses_every_bad_token_with_a_401_naming_the_rule(
    api_stack: Settings, api, method: str, path: str, request_args: dict[str, Any]
) -> None:
    viewer = user_tokens(api_stack, "vera", "viewers")
    for case, (token, reason) in bad_tokens(api_stack, viewer).items():
        status, _, body = api(method, path, token=token, **request_args)
        assert status == 401, (case, body)
        assert body["error"] == "unauthorized" and reason in body["detail"], (case, body)


@pytest.mark.parametrize(("method", "path", "request_args"), ROUTES, ids=ROUTE_IDS)
def test_users_get_what_their_groups_allow_and_a_403_otherwise(
    api_stack: Settings, api, method: str, path: str, request_args: dict[str, Any]
) -> None:
    uploader = user_tokens(api_stack, "uma", "uploaders")["AccessToken"]
    viewer = user_tokens(api_stack, "vera", "viewers")["AccessToken"]
    nobody = user_tokens(api_stack, "nora")["AccessToken"]
    allowed = {201, 200, 404}  # 404: an unknown image, found out only once allowed to look
    assert api(method, path, token=uploader, **request_args)[0] in allowed
    status, _, body = api(method, path, token=nobody, **request_args)
    assert (status, body["error"]) == (403, "forbidden") and "'nora'" in body["detail"]
    status, _, body = api(method, path, token=viewer, **request_args)
    if method == "POST":
        assert status == 403 and "may not create uploads" in body["detail"] and "uploaders" in body["detail"]
    else:
        assert status in allowed


def test_a_refusal_names_the_json_error_and_allows_the_page_to_read_it(api) -> None:
    status, headers, body = api("GET", "/images", token=None, headers={"Origin": "http://127.0.0.1:8000"})
    assert status == 401 and set(body) == {"error", "detail"}
    assert headers["Access-Control-Allow-Origin"] == "http://127.0.0.1:8000"


def test_cors_preflights_need_no_token(api) -> None:
    status, headers, _ = api(
        "OPTIONS",
        "/uploads",
        token=None,
        headers={"Origin": "http://127.0.0.1:8000", "Access-Control-Request-Method": "POST"},
    )
    assert status == 204 and "Authorization" in headers["Access-Control-Allow-Headers"]


def test_uploads_remember_who_sent_them(api_stack: Settings, api) -> None:
    token = user_tokens(api_stack, "Uma.Loader", "uploaders")["AccessToken"]
    status, _, body = api("POST", "/uploads", body=UPLOAD, token=token)
    assert status == 201 and body["upload"]["fields"]["x-amz-meta-uploaded-by"] == "Uma.Loader"


class Untouchable:
    """A store that fails the test if a refused request reaches it."""

    def __init__(self, config: ApiConfig) -> None:
        self.config = config

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"a refused request reached the data: store.{name}")


@pytest.mark.parametrize(("method", "path", "request_args"), ROUTES, ids=ROUTE_IDS)
def test_a_refused_request_never_reaches_the_data(
    method: str, path: str, request_args: dict[str, Any], api_config: ApiConfig
) -> None:
    app = build_resolver(Untouchable(api_config))  # type: ignore[arg-type]
    for authorizer, status in (
        (None, 401),
        ({"claims": {"client_id": api_config.app_client_id, "username": "nora"}}, 403),
    ):
        event = {
            "httpMethod": method,
            "path": path,
            "resource": "/{proxy+}",
            "headers": {},
            "queryStringParameters": request_args.get("query"),
            "body": None,
            "requestContext": {"authorizer": authorizer} if authorizer else {},
        }
        assert app.resolve(event, None)["statusCode"] == status


ENV = upload_api_env()


@pytest.fixture
def api_config() -> ApiConfig:
    return ApiConfig.from_env(ENV)


@pytest.mark.parametrize(
    ("claim", "groups"),
    [
        ("uploaders,viewers", {"uploaders", "viewers"}),  # API Gateway REST: a list joined by ","
        ("[uploaders viewers]", {"uploaders", "viewers"}),  # API Gateway HTTP API's way
        (["viewers"], {"viewers"}),
        ("viewers", {"viewers"}),
        (None, set()),
        ("", set()),
    ],
)
def test_groups_claim_is_read_in_every_shape_api_gateway_passes_it(claim: Any, groups: set[str]) -> None:
    assert parse_groups(claim) == groups


def test_claims_as_api_gateway_passes_them_in_aws(api_config: ApiConfig) -> None:
    claims = {
        "client_id": APP_CLIENT_ID,
        "username": "vera",
        "cognito:groups": "viewers",
        "exp": "1767225600",
    }
    caller = caller_from({"claims": claims}, api_config)
    assert caller == Caller("vera", frozenset({"viewers"}))
    require(caller, "read", api_config)
    with pytest.raises(Exception, match="may not create uploads"):
        require(caller, "upload", api_config)


def test_variant_links_may_not_outlive_fifteen_minutes() -> None:
    assert ApiConfig.from_env({**ENV, "VARIANT_URL_EXPIRY_S": "900"}).variant_url_expiry_s == 900
    with pytest.raises(ValueError, match="1 to 900 s"):
        ApiConfig.from_env({**ENV, "VARIANT_URL_EXPIRY_S": "3600"})


def test_the_openapi_document_declares_the_token_on_every_operation_and_its_refusals() -> None:
    document = yaml.safe_load(OPENAPI.read_text())
    scheme = document["components"]["securitySchemes"]["cognitoAccessToken"]
    assert (scheme["type"], scheme["in"], scheme["name"]) == ("apiKey", "header", "Authorization")
    operations = [
        (method, path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in {"get", "put", "post", "delete", "patch"}
    ]
    # The routes the handler tests above cover are the document's, and each needs the token.
    assert {(method.upper(), path) for method, path, _ in operations} == {
        ("POST", "/uploads"),
        ("GET", "/images"),
        ("GET", "/images/{image_id}"),
    }
    for method, path, operation in operations:
        security = operation.get("security", document["security"])
        assert security == [{"cognitoAccessToken": []}], (method, path)
        assert {"401", "403"} <= set(operation["responses"]), (method, path)
