"""The functions' environments as the stacks set them (`image_etl.resource_shapes`), for tests: the
local stack's shapes, made-up resource names."""

from __future__ import annotations

from image_etl.resource_shapes import LOCAL, upload_api_environment

#: The page's user-pool app client in these environments.
APP_CLIENT_ID = "page-client"


def upload_api_env(*, allowed_origin: str = "http://127.0.0.1:8000") -> dict[str, str]:
    """Return the upload API function's environment with the local shapes and made-up names.

    :param allowed_origin: the CORS origin, as given to the stack (a trailing slash is allowed).
    """
    return upload_api_environment(
        upload_bucket="uploads-1a2b",
        upload_prefix=LOCAL.upload_prefix,
        variants_bucket="variants-1a2b",
        table_name="Images-1a2b",
        allowed_origin=allowed_origin,
        app_client_id=APP_CLIENT_ID,
        table=LOCAL.table,
        api=LOCAL.upload_api,
        identity=LOCAL.identity,
    )
