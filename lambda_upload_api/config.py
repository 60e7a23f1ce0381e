"""Settings of the upload API function, read once from the environment that the CDK stack and the
local site server both set (see `image_etl.resources.upload_api_environment`)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass


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
        """Return the config from environment variables; a missing required one raises KeyError naming it."""
        env = os.environ if env is None else env
        expiry = int(env.get("VARIANT_URL_EXPIRY_S", "900"))
        if not 0 < expiry <= MAX_VARIANT_URL_EXPIRY_S:
            raise ValueError(
                f"VARIANT_URL_EXPIRY_S={expiry}: variant links may live 1 to {MAX_VARIANT_URL_EXPIRY_S} s"
            )
        return cls(
            upload_bucket=env["UPLOAD_BUCKET"],
            upload_prefix=env.get("UPLOAD_PREFIX", "uploads/"),
            variants_bucket=env["VARIANTS_BUCKET"],
            table_name=env["TABLE_NAME"],
            index_shards=int(env.get("INDEX_SHARDS", "16")),
            processed_index=env.get("PROCESSED_INDEX", "by_processed_at"),
            label_index=env.get("LABEL_INDEX", "by_label"),
            allowed_origin=env["ALLOWED_ORIGIN"].rstrip("/"),
            max_upload_bytes=int(env.get("MAX_UPLOAD_BYTES", str(50 * 1024 * 1024))),
            presign_expiry_s=int(env.get("PRESIGN_EXPIRY_S", "300")),
            variant_url_expiry_s=expiry,
            app_client_id=env["APP_CLIENT_ID"],
            upload_groups=_names(env["UPLOAD_GROUPS"]),
            read_groups=_names(env["READ_GROUPS"]),
        )


#: Variant links are handed to signed-in users only and must not outlive a short session.
MAX_VARIANT_URL_EXPIRY_S = 900


def _names(value: str) -> frozenset[str]:
    return frozenset(name.strip() for name in value.split(",") if name.strip())
