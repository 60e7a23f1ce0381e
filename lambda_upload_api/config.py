"""Settings of the upload API function, read once from the environment that the CDK stack and the
local site server both set (see `image_etl.resource_shapes.upload_api_environment`).

Every value the resource module sets is required here, with no fallback of its own: a default
written in two places drifts, and a function started without its environment should say so at once.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass


class MissingSetting(KeyError):
    """An environment variable the function needs is not set."""

    def __str__(self) -> str:  # KeyError's own str() would print the message quoted
        return str(self.args[0])


def required(env: Mapping[str, str], name: str) -> str:
    """Return ``env[name]``; raise :class:`MissingSetting` naming the variable when it is not set."""
    if name not in env:
        raise MissingSetting(
            f"environment variable {name} is not set: the upload API's environment comes from "
            "image_etl.resource_shapes.upload_api_environment"
        )
    return env[name]


@dataclass(frozen=True)
class ApiConfig:
    upload_bucket: str
    upload_prefix: str
    variants_bucket: str
    table_name: str
    index_shards: int
    processed_index: str
    label_index: str
    allowed_origin: str
    max_upload_bytes: int
    presign_expiry_s: int
    variant_url_expiry_s: int
    #: The page's app client: tokens issued to any other client of the pool are refused.
    app_client_id: str
    upload_groups: frozenset[str]
    read_groups: frozenset[str]

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ApiConfig:
        """Return the config from environment variables.

        :raises MissingSetting: a variable `upload_api_environment` sets is missing (named in the message).
        """
        env = os.environ if env is None else env
        expiry = int(required(env, "VARIANT_URL_EXPIRY_S"))
        if not 0 < expiry <= MAX_VARIANT_URL_EXPIRY_S:
            raise ValueError(
                f"VARIANT_URL_EXPIRY_S={expiry}: variant links may live 1 to {MAX_VARIANT_URL_EXPIRY_S} s"
            )
        return cls(
            upload_bucket=required(env, "UPLOAD_BUCKET"),
            upload_prefix=required(env, "UPLOAD_PREFIX"),
            variants_bucket=required(env, "VARIANTS_BUCKET"),
            table_name=required(env, "TABLE_NAME"),
            index_shards=int(required(env, "INDEX_SHARDS")),
            processed_index=required(env, "PROCESSED_INDEX"),
            label_index=required(env, "LABEL_INDEX"),
            allowed_origin=required(env, "ALLOWED_ORIGIN").rstrip("/"),
            max_upload_bytes=int(required(env, "MAX_UPLOAD_BYTES")),
            presign_expiry_s=int(required(env, "PRESIGN_EXPIRY_S")),
            variant_url_expiry_s=expiry,
            app_client_id=required(env, "APP_CLIENT_ID"),
            upload_groups=_names(required(env, "UPLOAD_GROUPS")),
            read_groups=_names(required(env, "READ_GROUPS")),
        )


#: Variant links are handed to signed-in users only and must not outlive a short session.
MAX_VARIANT_URL_EXPIRY_S = 900


def _names(value: str) -> frozenset[str]:
    return frozenset(name.strip() for name in value.split(",") if name.strip())
