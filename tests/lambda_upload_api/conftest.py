"""The upload API as `image-etl up` serves it: the local stand-in for API Gateway's Cognito
authorizer, then the real Lambda handler, against moto over HTTP."""

from __future__ import annotations

import json
from typing import Any

import pytest
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from image_etl.local.site import SiteApp, api_environment
from image_etl.settings import Settings
from lambda_upload_api import handler
from tests.identity import user_tokens


@pytest.fixture
def api(api_stack: Settings, monkeypatch: pytest.MonkeyPatch):
    """Call the API as the local site serves it: authorizer, then the real Lambda handler.

    ``token`` is sent as the Authorization header (None sends none); default a user in both groups.
    """
    for name, value in api_environment(api_stack).items():
        monkeypatch.setenv(name, value)
    handler.default_resolver.cache_clear()
    site = SiteApp(api_stack)
    default_token = user_tokens(api_stack, "tester", "uploaders", "viewers")["AccessToken"]

    def invoke(
        method: str,
        path: str,
        *,
        body: Any = None,
        query: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        token: str | None = default_token,
    ) -> tuple[int, dict[str, str], Any]:
        data = body if isinstance(body, str | bytes) or body is None else json.dumps(body)
        sent = {**({"Authorization": token} if token else {}), **(headers or {})}
        request = Request(
            EnvironBuilder(
                method=method, path=f"/api{path}", query_string=query, data=data, headers=sent
            ).get_environ()
        )
        response = site.api(request)
        payload = json.loads(response.get_data()) if response.get_data() else None
        return response.status_code, dict(response.headers), payload

    yield invoke
    handler.default_resolver.cache_clear()


@pytest.fixture
def call(api):
    """The API called by a signed-in user in both groups."""
    return api
