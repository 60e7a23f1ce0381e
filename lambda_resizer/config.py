"""Settings of the resize function, read once from the environment that the CDK stack and the
local stack both set (see `image_etl.resource_shapes.resizer_environment`).

Every value the resource module sets is required here, with no fallback of its own: a default
written in two places drifts, and a function started without its environment should say so at
once instead of resizing with numbers nobody chose.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from lambda_resizer.recipe import Recipe


class MissingSetting(KeyError):
    """An environment variable the function needs is not set."""

    def __str__(self) -> str:  # KeyError's own str() would print the message quoted
        return str(self.args[0])


def required(env: Mapping[str, str], name: str) -> str:
    """Return ``env[name]``; raise :class:`MissingSetting` naming the variable when it is not set."""
    if name not in env:
        raise MissingSetting(
            f"environment variable {name} is not set: the resize function's environment comes from "
            "image_etl.resource_shapes.resizer_environment"
        )
    return env[name]


@dataclass(frozen=True)
class ResizerConfig:
    upload_prefix: str
    variants_bucket: str
    variants_prefix: str
    table_name: str
    index_shards: int
    max_object_bytes: int
    recipe: Recipe
    max_receive_count: int  # the queue's: the receive after which SQS dead-letters a message
    start_margin_ms: int  # time an image may need: none is started with less left
    tier: str  # "standard" or "large": which function this is, written in each record
    large_queue_url: str | None = None  # standard tier: where images over its memory budget go
    large_memory_mb: int | None = None  # standard tier: the large tier's memory size
    #: Memory kept free beyond the estimate: the runtime's own process and allocator slack.
    headroom_mb: int = 32

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ResizerConfig:
        """Return the config from environment variables.

        :raises MissingSetting: a variable `resizer_environment` sets is missing (named in the message).
        """
        env = os.environ if env is None else env
        formats = tuple(f.strip().lower() for f in required(env, "OUTPUT_FORMATS").split(",") if f.strip())
        return cls(
            upload_prefix=required(env, "UPLOAD_PREFIX"),
            variants_bucket=required(env, "VARIANTS_BUCKET"),
            variants_prefix=required(env, "VARIANTS_PREFIX"),
            table_name=required(env, "TABLE_NAME"),
            index_shards=int(required(env, "INDEX_SHARDS")),
            max_object_bytes=int(required(env, "MAX_OBJECT_BYTES")),
            max_receive_count=int(required(env, "MAX_RECEIVE_COUNT")),
            start_margin_ms=int(required(env, "START_MARGIN_MS")),
            tier=required(env, "RESIZER_TIER"),
            # Only the standard tier hands over, so only it is given the large tier's queue.
            large_queue_url=env.get("LARGE_QUEUE_URL") or None,
            large_memory_mb=int(env["LARGE_MEMORY_MB"]) if env.get("LARGE_MEMORY_MB") else None,
            recipe=Recipe(
                formats=formats,
                jpeg_quality=int(required(env, "JPEG_QUALITY")),
                max_pixels=int(required(env, "MAX_PIXELS")),
            ),
        )
