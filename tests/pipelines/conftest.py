"""Helpers for the pipeline tests: real records (through the resize processor) and Dagster resources."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import dagster as dg
import pytest

from image_etl.local.worker import handler_environment
from image_etl.settings import Settings
from lambda_resizer.config import ResizerConfig
from lambda_resizer.processing import ImageProcessor
from lambda_resizer.records import SourceObject, image_id_for, processed_shard
from pipelines.resources import DatasetPolicy, ImageRecordTable, build_resources


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    """An ephemeral Dagster instance: never the developer's DAGSTER_HOME."""
    with dg.instance_for_test() as test_instance:
        yield test_instance


@pytest.fixture
def resources(stack: Settings) -> dict[str, Any]:
    return build_resources(stack, DatasetPolicy())


@pytest.fixture
def table(stack: Settings) -> ImageRecordTable:
    return ImageRecordTable.from_settings(stack)


def upload_and_process(
    stack: Settings, files: Iterable[tuple[str, bytes]], *, uploaded_at: str = "2026-11-26T10:00:00Z"
) -> list[dict[str, Any]]:
    """Put each (key, bytes) in the upload bucket and run the real resize processor on it."""
    s3 = stack.client("s3")
    processor = ImageProcessor(
        s3=s3, dynamodb=stack.client("dynamodb"), config=ResizerConfig.from_env(handler_environment(stack))
    )
    outcomes = []
    for key, data in files:
        put = s3.put_object(Bucket=stack.upload_bucket, Key=key, Body=data)
        outcome = processor.process(
            SourceObject(stack.upload_bucket, key, len(data), put["ETag"], uploaded_at)
        )
        outcomes.append({"key": key, "image_id": outcome.image_id, "status": outcome.status})
    return outcomes


def fake_record(
    name: str,
    *,
    processed_at: str,
    uploaded_at: str | None = None,
    label: str = "cats",
    phash: str = "0f0f0f0f0f0f0f0f",
    sha256: str | None = None,
    status: str = "processed",
) -> dict[str, Any]:
    """Return a record as the resizer writes it, without images (for sensor and check tests)."""
    key = f"uploads/{label}/{name}.jpg"
    image_id = image_id_for("image-etl-uploads", key)
    record: dict[str, Any] = {
        "image_id": image_id,
        "status": status,
        "source_bucket": "image-etl-uploads",
        "source_key": key,
        "label": label,
        "uploaded_at": uploaded_at or processed_at,
        "processed_at": processed_at,
        "processed_shard": processed_shard(image_id, 16),
    }
    if status == "processed":
        record.update(
            {
                "width": 640,
                "height": 480,
                "sha256": sha256 or (image_id * 2),
                "phash": phash,
                "brightness": 0.5,
                "blur_score": 2.5,
                "variants": {
                    n: {
                        "key": f"variants/{image_id}/{n}.jpg",
                        "width": 128,
                        "height": 96,
                        "bytes": 10,
                        "format": "jpeg",
                    }
                    for n in ("large", "medium", "small", "thumb")
                },
            }
        )
    else:
        record.update({"error": "not an image", "error_code": "not_an_image"})
    return record
