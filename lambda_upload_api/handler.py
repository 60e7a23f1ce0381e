"""Upload API Lambda entry point: API Gateway REST proxy events -> routes.

A thin adapter over Powertools' resolver: validation lives in `validation`, AWS work in `images`.
Errors are always JSON ``{"error": ..., "detail": ...}``; no malformed request produces a 5xx.
"""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, CORSConfig, Response, content_types
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from lambda_upload_api.auth import READ, UPLOAD, Caller, caller_from, require
from lambda_upload_api.config import ApiConfig
from lambda_upload_api.images import ImageStore
from lambda_upload_api.validation import (
    ApiError,
    decode_token,
    parse_ids,
    parse_json_object,
    parse_label_filter,
    parse_limit,
    parse_upload_request,
    validate_image_id,
)

logger = Logger()

# The routes below, for a 405 (not a 404) when a known path gets another method.
_ROUTES = [
    (re.compile(r"/uploads/?"), "POST, OPTIONS"),
    (re.compile(r"/images/?"), "GET, OPTIONS"),
    (re.compile(r"/images/[^/]+/?"), "GET, OPTIONS"),
]


def _json(status: int, body: Any) -> Response:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=json.dumps(body))


def build_resolver(store: ImageStore) -> APIGatewayRestResolver:
    """Return the API's resolver, answering from ``store``; CORS allows only the configured origin."""
    config = store.config
    app = APIGatewayRestResolver(
        cors=CORSConfig(
            allow_origin=config.allowed_origin, allow_headers=["Content-Type", "Authorization"], max_age=600
        )
    )

    def authorize(permission: str) -> Caller:
        """Return the caller, or refuse the request (401/403) before the route touches any data."""
        authorizer = (app.current_event.raw_event.get("requestContext") or {}).get("authorizer")
        caller = caller_from(authorizer, config)
        require(caller, permission, config)
        return caller

    @app.post("/uploads")
    def create_upload() -> Response:
        caller = authorize(UPLOAD)
        request = parse_upload_request(
            parse_json_object(app.current_event.body), max_bytes=config.max_upload_bytes
        )
        upload = store.presign_upload(request, uploaded_by=caller.username)
        logger.info(
            "presigned upload",
            key=upload["key"],
            content_type=request.content_type,
            size=request.size,
            user=caller.username,
        )
        return _json(201, upload)

    @app.get("/images/<image_id>")
    def get_image(image_id: str) -> Response:
        authorize(READ)
        return _json(200, store.get(validate_image_id(image_id)))

    @app.get("/images")
    def list_images() -> Response:
        authorize(READ)
        event = app.current_event
        for name, values in (event.multi_value_query_string_parameters or {}).items():
            if len(values) > 1:
                raise ApiError(400, "invalid_request", f"query parameter {name!r} is given more than once")
        params = event.query_string_parameters or {}
        label = parse_label_filter(params.get("label"))
        limit = parse_limit(params.get("limit"))
        state = decode_token(params.get("next"))
        ids = parse_ids(params.get("ids"))
        if ids is not None:
            return _json(200, store.many(ids))
        return _json(200, store.recent(label=label, limit=limit, state=state))

    @app.exception_handler(ApiError)
    def rejected(error: ApiError) -> Response:
        logger.info("rejected request", status=error.status, error=error.error, detail=error.detail)
        return _json(error.status, error.to_body())

    @app.exception_handler([ClientError, BotoCoreError])
    def aws_unavailable(error: Exception) -> Response:
        logger.exception("AWS call failed")
        return _json(503, {"error": "unavailable", "detail": "storage is unavailable; try again shortly"})

    @app.not_found
    def not_found(_: Exception) -> Response:
        event = app.current_event
        allowed = next((methods for pattern, methods in _ROUTES if pattern.fullmatch(event.path)), None)
        if allowed and event.http_method in allowed:
            # The route exists but its path parameter has characters the router does not take.
            return _json(
                400, {"error": "invalid_image_id", "detail": "image_id must be 32 lowercase hex chars"}
            )
        if allowed:
            detail = f"{event.path} accepts {allowed}"
            response = _json(405, {"error": "method_not_allowed", "detail": detail})
            response.headers["Allow"] = allowed
            return response
        return _json(404, {"error": "not_found", "detail": f"no route for {event.http_method} {event.path}"})

    return app


@cache
def default_resolver() -> APIGatewayRestResolver:
    """Return the resolver built once per execution environment from the environment."""
    config = ApiConfig.from_env()
    # SigV4 links: they cannot outlive their expiry or the function's own credentials (SigV2's can).
    s3 = boto3.client("s3", config=Config(signature_version="s3v4"))
    store = ImageStore(s3=s3, dynamodb=boto3.client("dynamodb"), config=config)
    return build_resolver(store)


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return default_resolver().resolve(event, context)
