"""Shared fixtures: a real moto server over HTTP with the stack's resources, and generated images."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import requests
from moto.server import ThreadedMotoServer

from image_etl.dataset.index_cache import CACHE_VARIABLE
from image_etl.dataset.rules import FIRST_DAY
from image_etl.local.cognito import patch_moto_cognito
from image_etl.local.emulator import COGNITO_ENVIRONMENT
from image_etl.local.provision import connect_notifications, create_identity, create_resources
from image_etl.resource_shapes import LOCAL, LOCAL_CREDENTIAL_VARIABLES
from image_etl.settings import Settings, local_settings
from tests.stack_process import RunningStack, free_port

REPO = Path(__file__).resolve().parents[1]

# boto3 refuses to sign without credentials; never let a developer's real ones reach a test.
for name, value in {**LOCAL_CREDENTIAL_VARIABLES, "AWS_DEFAULT_REGION": "us-east-1"}.items():
    os.environ[name] = value
os.environ.pop("AWS_PROFILE", None)
# Dagster's partitions are fixed when `pipelines` is imported, from the settings: a developer's running
# stack (whose partitions start the day it was first started) must not move the tests' days.
os.environ.setdefault("IMAGE_ETL_FIRST_DAY", FIRST_DAY)


@pytest.fixture(autouse=True)
def index_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Return the test's own index cache folder: never the user's ~/.cache, and never one that
    another test (or another xdist worker's test, on a table at the same s3:// location) prunes."""
    folder = tmp_path / "index-cache"
    monkeypatch.setenv(CACHE_VARIABLE, str(folder))
    return folder


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A moto server in this process, over HTTP on a free loopback port, with the local stack's
    Cognito behaviour (real SRP checks, token lifetimes from the app client)."""
    os.environ.update(COGNITO_ENVIRONMENT)
    patch_moto_cognito()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def stack(moto_endpoint: str, tmp_path: Path) -> Settings:
    """Fresh local-stack resources (buckets, queue + DLQ, table + index, notification) in moto."""
    requests.post(f"{moto_endpoint}/moto-api/reset", timeout=10).raise_for_status()
    port = int(moto_endpoint.rsplit(":", 1)[1])
    settings = local_settings(tmp_path / "data", aws_port=port)
    create_resources(settings, LOCAL)
    connect_notifications(settings)
    return settings


@pytest.fixture
def api_stack(stack: Settings) -> Settings:
    """The stack plus its user pool (groups, the page's app client), for what signs in."""
    pool_id, client_id = create_identity(stack, LOCAL.identity)
    return replace(stack, user_pool_id=pool_id, user_pool_client_id=client_id)


@pytest.fixture(scope="session")
def shared_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    """One real `image-etl up` (emulation, workers, site) for the tests that only add data to it."""
    stack = RunningStack(tmp_path_factory.mktemp("shared-stack") / "data", free_port(), free_port())
    stack.start()
    yield stack
    stack.stop()
