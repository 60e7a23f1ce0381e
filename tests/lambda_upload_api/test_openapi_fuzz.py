"""Fuzz the upload API from its committed OpenAPI document: no input produces a 5xx, every answer
conforms to the document, and nothing gets a 2xx without a valid token. The API runs as
`image-etl up` serves it (the authorizer and the real handler behind the local site server), over
HTTP, against moto."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig
from schemathesis.core.parameters import ParameterLocation
from werkzeug.serving import make_server

from image_etl.local.site import SiteApp
from image_etl.settings import Settings
from lambda_upload_api import handler
from tests.identity import user_tokens

pytestmark = pytest.mark.slow  # schemathesis generates and sends hundreds of requests

OPENAPI = Path(__file__).resolve().parents[2] / "lambda_upload_api" / "openapi.yaml"
schema = schemathesis.openapi.from_path(
    OPENAPI, config=SchemathesisConfig.from_path(Path(__file__).with_name("schemathesis.toml"))
)


@pytest.fixture
def api_base(api_stack: Settings) -> Iterator[str]:
    saved = dict(os.environ)
    handler.default_resolver.cache_clear()
    server = make_server(
        "127.0.0.1", 0, SiteApp(replace(api_stack, site_url="http://127.0.0.1:8000")), threaded=True
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/api"
    server.shutdown()
    handler.default_resolver.cache_clear()
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture
def uploader_token(api_stack: Settings) -> str:
    return user_tokens(api_stack, "fuzzer", "uploaders")["AccessToken"]


@schema.parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_openapi_document(
    case: schemathesis.Case, api_base: str, uploader_token: str
) -> None:
    # A valid token, except where this case is the fuzzer breaking the headers on purpose.
    header_is_under_test = case.meta is not None and case.meta.is_negative_at(ParameterLocation.HEADER)
    headers = {} if header_is_under_test else {"Authorization": uploader_token}
    case.call_and_validate(base_url=api_base, headers=headers)


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_without_a_valid_token_every_request_is_refused(case: schemathesis.Case, api_base: str) -> None:
    # Whatever the fuzzer puts in the Authorization header (or nothing): a 401, never data. Only a
    # CORS preflight (the fuzzer tries OPTIONS too) is answered, and it carries no data.
    response = case.call(base_url=api_base)
    if case.method.upper() == "OPTIONS":
        assert response.status_code == 204 and not response.content
        return
    assert response.status_code == 401, (case.method, response.text)
    assert response.json()["error"] == "unauthorized"
