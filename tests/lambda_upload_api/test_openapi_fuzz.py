"""Fuzz the upload API from its committed OpenAPI document: no input produces a 5xx, every answer
conforms to the document. The API runs as `image-etl up` serves it (the real handler behind the
local site server), over HTTP, against moto."""

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
from werkzeug.serving import make_server

from image_etl.local.site import SiteApp
from image_etl.settings import Settings
from lambda_upload_api import handler

OPENAPI = Path(__file__).resolve().parents[2] / "lambda_upload_api" / "openapi.yaml"
schema = schemathesis.openapi.from_path(
    OPENAPI, config=SchemathesisConfig.from_path(Path(__file__).with_name("schemathesis.toml"))
)


@pytest.fixture
def api_base(stack: Settings) -> Iterator[str]:
    saved = dict(os.environ)
    handler.default_app.cache_clear()
    server = make_server(
        "127.0.0.1", 0, SiteApp(replace(stack, site_url="http://127.0.0.1:8000")), threaded=True
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/api"
    server.shutdown()
    handler.default_app.cache_clear()
    os.environ.clear()
    os.environ.update(saved)


@schema.parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_openapi_document(case: schemathesis.Case, api_base: str) -> None:
    case.call_and_validate(base_url=api_base)
