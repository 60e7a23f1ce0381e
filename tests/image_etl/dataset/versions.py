"""A manifest version in the stack's own table (moto's Glue and S3), with real variant files."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from image_etl.dataset.table import ManifestTable
from image_etl.manifest import manifest_table
from image_etl.settings import Settings
from tests.image_etl.dataset.conftest import by_day, rebuild
from tests.imaging import encode, photo_like
from tests.pipelines.conftest import fake_record

#: Label per picture: enough images that every split gets some (splits follow a hash of the group).
LABELS = ("cats", "dogs", "birds")


@dataclass(frozen=True)
class BuiltVersion:
    table: ManifestTable
    version: str
    manifest: pd.DataFrame
    #: image_id -> (width, height) of its ``small`` variant as stored.
    sizes: dict[str, tuple[int, int]]


def build_version(stack: Settings, *, images: int = 30, publish: bool = True) -> BuiltVersion:
    """Build a version of ``images`` records (distinct pHashes) and store a JPEG for each ``small``."""
    records = [
        fake_record(
            f"img{i:03d}",
            processed_at=f"2026-11-26T10:{i // 60:02d}:{i % 60:02d}.000000Z",
            label=LABELS[i % len(LABELS)],
            phash=f"{(i * 0x9E3779B97F4A7C15) & (2**64 - 1):016x}",
        )
        for i in range(images)
    ]
    s3 = stack.client("s3")
    sizes = {}
    for i, record in enumerate(records):
        size = (64 + i, 48 + i)  # each image its own size: a decoded image proves which file it is
        key = record["variants"]["small"]["key"]
        s3.put_object(Bucket=stack.variants_bucket, Key=key, Body=encode(photo_like(i, size)))
        sizes[record["image_id"]] = size
    table = manifest_table(stack)
    result = rebuild(
        table,
        by_day(records),
        variants={"bucket": stack.variants_bucket, "prefix": stack.variants_prefix},
    )
    assert result.version is not None
    if publish:
        table.publish(result.version)
    return BuiltVersion(table, result.version, table.read(result.version), sizes)
