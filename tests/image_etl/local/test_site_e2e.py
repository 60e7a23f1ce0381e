"""The local upload site and API served by `image-etl up`, over HTTP."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
import requests

from image_etl.settings import Settings
from lambda_resizer.records import from_item
from tests.identity import demo_tokens
from tests.imaging import encode, photo_like
from tests.stack_process import RunningStack, image_etl_cli

pytestmark = [pytest.mark.e2e]


def record(settings: Settings, image_id: str, deadline_s: float = 60) -> dict[str, Any]:
    dynamodb = settings.client("dynamodb")
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        item = dynamodb.get_item(TableName=settings.table_name, Key={"image_id": {"S": image_id}}).get("Item")
        if item:
            return from_item(item)
        time.sleep(0.3)
    pytest.fail(f"no record for {image_id} within {deadline_s} s")


def signed_in(settings: Settings) -> dict[str, str]:
    return {"Authorization": demo_tokens(settings)["AccessToken"]}


def grant(settings: Settings, **request: Any) -> dict[str, Any]:
    response = requests.post(
        f"{settings.api_url}/uploads", json=request, headers=signed_in(settings), timeout=10
    )
    assert response.status_code == 201, response.text
    return response.json()


def test_info_and_config_json_point_the_page_at_the_api(shared_stack: RunningStack) -> None:
    info = json.loads(image_etl_cli("info", "--json", "--data-dir", str(shared_stack.data_dir)).stdout)
    assert info["site_url"] == f"http://127.0.0.1:{shared_stack.site_port}"
    assert info["api_url"] == f"{info['site_url']}/api"
    config = requests.get(f"{info['site_url']}/config.json", timeout=10).json()
    assert config["apiUrl"] == info["api_url"] and "image/jpeg" in config["acceptedTypes"]
    assert config["cognito"] == {
        "region": info["region"],
        "userPoolId": info["user_pool_id"],
        "clientId": info["user_pool_client_id"],
        "endpoint": f"{info['aws_endpoint_url']}/",
    }
    assert "sign in as demo" in config["signInHint"]
    page = requests.get(info["site_url"], timeout=10)
    assert page.status_code == 200 and "app.js" in page.text
    assert requests.get(f"{info['site_url']}/../pyproject.toml", timeout=10).status_code == 404


def test_an_upload_through_the_api_becomes_a_record(shared_stack: RunningStack) -> None:
    settings = shared_stack.settings
    data = encode(photo_like(77, (1200, 800)))
    upload = grant(settings, filename="beach day.jpg", contentType="image/jpeg", size=len(data), label="sea")
    posted = requests.post(
        upload["upload"]["url"],
        data=upload["upload"]["fields"],
        files={"file": ("beach day.jpg", data)},
        timeout=30,
    )
    assert posted.status_code == 204
    result = record(settings, upload["image_id"])
    assert (result["status"], result["label"], result["width"]) == ("processed", "sea", 1200)
    assert result["original_filename"] == "beach day.jpg"
    assert requests.get(f"{settings.api_url}/images/{upload['image_id']}", timeout=10).status_code == 401
    view = requests.get(
        f"{settings.api_url}/images/{upload['image_id']}", headers=signed_in(settings), timeout=10
    ).json()
    link = view["variants"]["thumb"]["url"]
    assert requests.get(link, timeout=10).status_code == 200
    assert int(parse_qs(urlparse(link).query)["X-Amz-Expires"][0]) <= 15 * 60


def test_uploads_that_slip_past_the_local_s3_policy_still_end_failed(shared_stack: RunningStack) -> None:
    # moto ignores the presigned policy (size, type): the resizer's own checks must catch both.
    settings = shared_stack.settings
    oversized = grant(settings, filename="small.jpg", contentType="image/jpeg", size=1000)
    requests.post(
        oversized["upload"]["url"],
        data=oversized["upload"]["fields"],
        files={"file": ("small.jpg", b"\xff" * (51 * 2**20))},
        timeout=120,
    ).raise_for_status()
    mistyped = grant(settings, filename="photo.png", contentType="image/png", size=20)
    requests.post(
        mistyped["upload"]["url"],
        data=mistyped["upload"]["fields"],
        files={"file": ("photo.png", b"just some text here.")},
        timeout=30,
    ).raise_for_status()

    too_large = record(settings, oversized["image_id"])
    assert (too_large["status"], too_large["error_code"]) == ("failed", "too_large")
    assert "over the 50 MiB limit" in too_large["error"]
    not_image = record(settings, mistyped["image_id"])
    assert (not_image["status"], not_image["error_code"]) == ("failed", "not_an_image") and not_image["error"]


def test_upload_bucket_cors_admits_only_the_site(shared_stack: RunningStack) -> None:
    settings = shared_stack.settings
    for origin, allowed in ((settings.site_url, True), ("https://evil.example", False)):
        upload = grant(settings, filename="a.jpg", contentType="image/jpeg", size=3)
        response = requests.post(
            upload["upload"]["url"],
            data=upload["upload"]["fields"],
            files={"file": ("a.jpg", b"abc")},
            headers={"Origin": origin},
            timeout=10,
        )
        assert (response.headers.get("Access-Control-Allow-Origin") == origin) is allowed
