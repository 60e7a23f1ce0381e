"""Every route and every error of the upload API, through the real handler against moto over HTTP.

Requests go the way `image-etl up` serves them: the local stand-in for API Gateway's Cognito
authorizer, then the Lambda handler; by default they carry the access token of a user in both
groups (the refusals are in `test_auth.py`)."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

import pytest
import requests

from image_etl.dataset.annotations import write_back
from image_etl.dataset.record_files import build_from_record_files, write_record_files
from image_etl.dataset.rules import ManifestConfig
from image_etl.manifest import DatasetStore, manifest_table
from image_etl.resource_shapes import ACCEPTED_IMAGE_TYPES, LOCAL
from image_etl.settings import Settings
from lambda_resizer.records import from_item, processed_shard, to_item
from lambda_resizer.records import image_id_for as resizer_image_id_for
from lambda_resizer.records import shard_names as resizer_shard_names
from lambda_upload_api import handler
from lambda_upload_api.images import image_id_for, shard_names
from lambda_upload_api.validation import IMAGE_TYPES

ORIGIN = "http://127.0.0.1:8000"


def put_record(stack: Settings, key: str, **fields: Any) -> str:
    image_id = resizer_image_id_for(stack.upload_bucket, key)
    record = {
        "image_id": image_id,
        "source_key": key,
        "status": "processed",
        "processed_shard": processed_shard(image_id, LOCAL.table.index_shards),
        "processed_at": "2026-11-26T10:00:00.000000Z",
        **fields,
    }
    stack.client("dynamodb").put_item(TableName=stack.table_name, Item=to_item(record))
    return image_id


def test_post_uploads_returns_a_presigned_post_for_a_server_chosen_key(stack: Settings, call) -> None:
    status, _, body = call(
        "POST",
        "/uploads",
        body={"filename": "../../etc/passwd.jpg", "contentType": "image/jpeg", "size": 1234, "label": "cats"},
    )
    assert status == 201
    assert (
        body["key"].startswith("uploads/cats/") and ".." not in body["key"] and body["key"].endswith(".jpg")
    )
    assert body["image_id"] == resizer_image_id_for(stack.upload_bucket, body["key"])
    fields = body["upload"]["fields"]
    assert fields["key"] == body["key"] and fields["Content-Type"] == "image/jpeg"
    assert fields["x-amz-meta-label"] == "cats" and body["expires_in"] <= 900
    policy = json.loads(base64.b64decode(fields["policy"]))
    assert ["content-length-range", 1234, 1234] in policy["conditions"]
    assert {"Content-Type": "image/jpeg"} in policy["conditions"]
    # The grant works: the object lands where the API said, with the label in its metadata.
    upload = requests.post(
        body["upload"]["url"], data=fields, files={"file": ("x.jpg", b"x" * 1234)}, timeout=10
    )
    assert upload.status_code in (200, 201, 204)
    head = stack.client("s3").head_object(Bucket=stack.upload_bucket, Key=body["key"])
    assert head["Metadata"]["label"] == "cats"


@pytest.mark.parametrize(
    ("filename", "kept_whole"),
    [
        ("holiday photo (1).jpg", True),
        ("a" * 251 + ".png", True),  # 255 ASCII characters always fit
        ("\u5199\u771f" * 120 + ".png", False),  # 9 bytes per character once encoded
        ("\U0001f408" * 250 + ".jpeg", False),  # 12 bytes per emoji
    ],
)
def test_the_original_file_name_fits_s3s_metadata_limit_and_keeps_its_extension(
    stack: Settings, call, filename: str, kept_whole: bool
) -> None:
    status, _, body = call(
        "POST", "/uploads", body={"filename": filename, "contentType": "image/png", "size": 3}
    )
    assert status == 201
    fields = body["upload"]["fields"]
    upload = requests.post(body["upload"]["url"], data=fields, files={"file": ("x", b"png")}, timeout=10)
    assert upload.status_code in (200, 201, 204)
    stored = unquote(
        stack.client("s3").head_object(Bucket=stack.upload_bucket, Key=body["key"])["Metadata"][
            "original-filename"
        ]
    )
    assert len(fields["x-amz-meta-original-filename"]) <= 1024  # S3 allows 2 KB of metadata in all
    suffix = filename[-255:].rsplit(".", 1)[1]
    if kept_whole:
        assert stored == filename
    else:
        assert stored.endswith(f"\u2026.{suffix}") and filename[-255:].startswith(stored[: -len(suffix) - 2])


def test_two_uploads_of_the_same_file_never_share_a_key(call) -> None:
    request = {"filename": "same.png", "contentType": "image/png", "size": 10}
    keys = {call("POST", "/uploads", body=request)[2]["key"] for _ in range(3)}
    assert len(keys) == 3 and all(key.startswith("uploads/") for key in keys)


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        (None, 400, "invalid_request"),
        ("{not json", 400, "invalid_request"),
        ([1, 2], 400, "invalid_request"),
        ({"contentType": "image/png", "size": 1}, 400, "invalid_filename"),
        ({"filename": "a\x00.png", "contentType": "image/png", "size": 1}, 400, "invalid_filename"),
        ({"filename": "\x85", "contentType": "image/png", "size": 1}, 400, "invalid_filename"),  # C1 control
        ({"filename": "a\x7f.png", "contentType": "image/png", "size": 1}, 400, "invalid_filename"),
        ({"filename": "\ufeff ", "contentType": "image/png", "size": 1}, 400, "invalid_filename"),
        ({"filename": "a.png", "size": 1}, 400, "invalid_content_type"),
        ({"filename": "a.pdf", "contentType": "application/pdf", "size": 1}, 415, "unsupported_media_type"),
        ({"filename": "a.png", "contentType": "image/png", "size": "12"}, 400, "invalid_size"),
        ({"filename": "a.png", "contentType": "image/png", "size": True}, 400, "invalid_size"),
        ({"filename": "a.png", "contentType": "image/png", "size": 0}, 400, "empty_file"),
        ({"filename": "a.png", "contentType": "image/png", "size": 60 * 2**20}, 413, "too_large"),
        ({"filename": "a.png", "contentType": "image/png", "size": 10**400}, 413, "too_large"),
        (
            '{"filename": "a.png", "contentType": "image/png", "size": 1' + "9" * 5000 + "}",
            400,
            "invalid_request",
        ),
        (
            {"filename": "a.png", "contentType": "image/png", "size": 1, "label": "../up"},
            400,
            "invalid_label",
        ),
        ({"filename": "a.png", "contentType": "image/png", "size": 1, "label": 7}, 400, "invalid_label"),
    ],
)
def test_post_uploads_rejects_bad_requests_with_a_reason(call, body: Any, status: int, error: str) -> None:
    got_status, _, got = call("POST", "/uploads", body=body)
    assert (got_status, got["error"]) == (status, error) and got["detail"]


def test_get_image_returns_the_record_with_variant_urls(stack: Settings, call) -> None:
    key = "uploads/cats/a.jpg"
    variant = {"key": "variants/x/thumb.jpg", "width": 128, "height": 96, "bytes": 4000, "format": "jpeg"}
    stack.client("s3").put_object(Bucket=stack.variants_bucket, Key=variant["key"], Body=b"thumb")
    image_id = put_record(
        stack, key, label="cats", width=1600, height=1200, source_bytes=99, variants={"thumb": variant}
    )
    status, _, body = call("GET", f"/images/{image_id}")
    assert status == 200
    assert (body["status"], body["label"], body["width"], body["size"], body["filename"]) == (
        "processed",
        "cats",
        1600,
        99,
        "a.jpg",
    )
    url = body["variants"]["thumb"]["url"]
    assert requests.get(url, timeout=10).content == b"thumb"
    # A SigV4 link that lives as long as the setting says, and never beyond 15 minutes.
    query = parse_qs(urlparse(url).query)
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert int(query["X-Amz-Expires"][0]) == LOCAL.upload_api.variant_url_expiry_s <= 900


def test_get_image_unknown_and_malformed_ids(call) -> None:
    assert call("GET", f"/images/{'0' * 32}")[0] == 404
    status, _, body = call("GET", "/images/not-an-id")
    assert (status, body["error"]) == (400, "invalid_image_id")


def test_failed_record_shows_its_reason(stack: Settings, call) -> None:
    image_id = put_record(
        stack, "uploads/x.jpg", status="failed", error="image file is truncated", error_code="truncated"
    )
    body = call("GET", f"/images/{image_id}")[2]
    assert (body["status"], body["error"], body["variants"]) == ("failed", "image file is truncated", {})


def test_listing_is_newest_first_paginated_and_filtered_by_label(stack: Settings, call) -> None:
    for n in range(7):
        put_record(
            stack,
            f"uploads/{'cats' if n % 2 else 'dogs'}/{n}.jpg",
            label="cats" if n % 2 else "dogs",
            processed_at=f"2026-11-26T10:00:0{n}.000000Z",
        )
    seen: list[str] = []
    query = {"limit": "3"}
    while True:
        status, _, page = call("GET", "/images", query=query)
        assert status == 200 and len(page["items"]) <= 3
        seen += [item["filename"] for item in page["items"]]
        if not page["next"]:
            break
        query = {"limit": "3", "next": page["next"]}
    assert seen == [f"{n}.jpg" for n in reversed(range(7))]

    status, _, cats = call("GET", "/images", query={"label": "cats", "limit": "2"})
    assert [item["filename"] for item in cats["items"]] == ["5.jpg", "3.jpg"] and cats["next"]
    rest = call("GET", "/images", query={"label": "cats", "limit": "2", "next": cats["next"]})[2]
    assert [item["filename"] for item in rest["items"]] == ["1.jpg"]
    assert call("GET", "/images", query={"label": "birds"})[2] == {"items": [], "next": None}


def test_listing_by_ids_answers_found_and_missing(stack: Settings, call) -> None:
    found = put_record(stack, "uploads/a/1.jpg", label="a")
    missing = "f" * 32
    status, _, body = call("GET", "/images", query={"ids": f"{found},{missing}"})
    assert (
        status == 200 and [i["image_id"] for i in body["items"]] == [found] and body["missing"] == [missing]
    )


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ({"limit": "0"}, "invalid_limit"),
        ({"limit": "101"}, "invalid_limit"),
        ({"limit": "ten"}, "invalid_limit"),
        ({"limit": "\u00b2"}, "invalid_limit"),  # "²" passes str.isdigit()
        ({"limit": "\u0663"}, "invalid_limit"),  # Arabic-Indic 3 passes str.isdecimal()
        ({"next": "%%%"}, "invalid_token"),
        ({"next": "bm90IGpzb24"}, "invalid_token"),
        ({"next": "eyIwMCI6IDF9"}, "invalid_token"),
        ({"label": "cats", "next": "eyJzdGFydCI6IHsibGFiZWwiOiB7IlMiOiAiZG9ncyJ9fX0"}, "invalid_token"),
        ({"ids": "abc"}, "invalid_image_id"),
        ({"ids": ",".join(["a" * 32] * 2 + [f"{n:032x}" for n in range(101)])}, "invalid_ids"),
        ({"label": "x" * 200}, "invalid_label"),
    ],
)
def test_listing_rejects_bad_parameters(call, query: dict[str, str], error: str) -> None:
    status, _, body = call("GET", "/images", query=query)
    assert (status, body["error"]) == (400, error) and body["detail"]


def test_unknown_route_is_a_json_404_and_a_wrong_method_a_405(call) -> None:
    status, headers, body = call("DELETE", "/uploads")
    assert status == 405 and body["error"] == "method_not_allowed" and "POST" in headers["Allow"]
    status, _, body = call("GET", "/nothing/here")
    assert status == 404 and body["error"] == "not_found"


def test_cors_allows_only_the_site_origin(call) -> None:
    request = {"filename": "a.png", "contentType": "image/png", "size": 1}
    _, allowed, _ = call("POST", "/uploads", body=request, headers={"Origin": ORIGIN})
    _, other, _ = call("POST", "/uploads", body=request, headers={"Origin": "https://evil.example"})
    assert allowed.get("Access-Control-Allow-Origin") == ORIGIN
    assert "Access-Control-Allow-Origin" not in other
    status, preflight, _ = call(
        "OPTIONS", "/uploads", headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"}
    )
    assert status < 300 and preflight.get("Access-Control-Allow-Origin") == ORIGIN


def test_aws_outage_is_a_json_503(stack: Settings, call, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TABLE_NAME", "no-such-table")
    handler.default_resolver.cache_clear()
    status, _, body = call("GET", f"/images/{'a' * 32}")
    assert status == 503 and body["error"] == "unavailable"


def test_image_ids_types_and_shards_agree_with_the_resizer_and_the_site() -> None:
    assert image_id_for("b", "uploads/x y.jpg") == resizer_image_id_for("b", "uploads/x y.jpg")
    assert tuple(IMAGE_TYPES) == ACCEPTED_IMAGE_TYPES
    # The API lists the index shards the resizer writes: the same names, and each image lands in one.
    assert shard_names(LOCAL.table.index_shards) == resizer_shard_names(LOCAL.table.index_shards)
    assert processed_shard("ffffffff" + "0" * 24, LOCAL.table.index_shards) in shard_names(
        LOCAL.table.index_shards
    )


def test_after_a_build_the_api_returns_the_dataset_annotations(stack: Settings, call) -> None:
    keys = ["uploads/cats/a.jpg", "uploads/cats/a-copy.jpg", "uploads/cats/b.jpg", "uploads/cats/bad.jpg"]
    same = {"sha256": "ab" * 32, "phash": "0f0f0f0f0f0f0f0f"}
    looks = [same, same, {"sha256": "cd" * 32, "phash": "f0f0f0f0f0f0f0f0"}, {}]
    ids = [
        put_record(
            stack,
            key,
            label="cats",
            width=640,
            height=480,
            brightness=0.5,
            blur_score=500.0,
            uploaded_at="2026-11-26T09:00:00.000000Z",
            **(look or {"status": "failed", "error": "truncated", "error_code": "truncated"}),
        )
        for key, look in zip(keys, looks, strict=True)
    ]
    before = call("GET", f"/images/{ids[0]}")[2]
    assert before["split"] is None and before["quality_flags"] is None  # no build has seen it yet

    table, store = manifest_table(stack), DatasetStore.from_settings(stack)
    records = [from_item(i) for i in stack.client("dynamodb").scan(TableName=stack.table_name)["Items"]]
    write_record_files(store, records, ["2026-11-26"])
    version = build_from_record_files(table, store, config=ManifestConfig()).version
    table.publish(version)
    write_back(table, stack.client("dynamodb"), stack.table_name, version=version)

    listed = {item["image_id"]: item for item in call("GET", "/images")[2]["items"]}
    one = call("GET", f"/images/{ids[0]}")[2]
    manifest = table.read(version).set_index("image_id")
    assert one["split"] == manifest.loc[ids[0], "split"] and one["split"] in ("train", "val", "test")
    assert one["dup_group"] == listed[ids[1]]["dup_group"] and one["dup_group_size"] == 2
    assert listed[ids[2]]["dup_group_size"] == 1 and listed[ids[2]]["quality_flags"] == []
    assert listed[ids[3]]["quality_flags"] == ["failed"]
