"""Settings of the resize function, read once from the environment that the CDK stack and the
local stack both set (see `image_etl.resources.resizer_environment`)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from lambda_resizer.recipe import Recipe


@dataclass(frozen=True)
class ResizerConfig:
    upload_prefix: str
    variants_bucket: str
    variants_prefix: str
    table_name: str
    index_shards: int
    max_object_bytes: int
    recipe: Recipe
    max_receive_count: int = 5  # the queue's: the receive after which SQS dead-letters a message
    start_margin_ms: int = 15_000  # time an image may need: none is started with less left
    tier: str = "standard"  # "standard" or "large": which function this is, written in each record
    large_queue_url: str | None = None  # standard tier: where images over its memory budget go
    large_memory_mb: int | None = None  # standard tier: the large tier's memory size
    #: Memory kept free beyond the estimate: the runtime's own process and allocator slack.
    headroom_mb: int = 32

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ResizerConfig:
        """Return the config from environment variables; a missing required one raises KeyError naming it."""
        env = os.environ if env is None else env
        formats = tuple(f.strip().lower() for f in env.get("OUTPUT_FORMATS", "jpeg").split(",") if f.strip())
        return cls(
            upload_prefix=env.get("UPLOAD_PREFIX", "uploads/"),
            variants_bucket=env["VARIANTS_BUCKET"],
            variants_prefix=env.get("VARIANTS_PREFIX", "variants/"),
            table_name=env["TABLE_NAME"],
            index_shards=int(env.get("INDEX_SHARDS", "16")),
            max_object_bytes=int(env.get("MAX_OBJECT_BYTES", str(50 * 1024 * 1024))),
            max_receive_count=int(env.get("MAX_RECEIVE_COUNT", "5")),
            start_margin_ms=int(env.get("START_MARGIN_MS", "15000")),
            tier=env.get("RESIZER_TIER", "standard"),
            large_queue_url=env.get("LARGE_QUEUE_URL") or None,
            large_memory_mb=int(env["LARGE_MEMORY_MB"]) if env.get("LARGE_MEMORY_MB") else None,
            recipe=Recipe(
                formats=formats or ("jpeg",),
                jpeg_quality=int(env.get("JPEG_QUALITY", "85")),
                max_pixels=int(env.get("MAX_PIXELS", "100000000")),
            ),
        )
