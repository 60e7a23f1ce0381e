"""Upload API Lambda entry point (API Gateway REST proxy). Being built for the upload-API issue."""

from __future__ import annotations

from typing import Any


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return {
        "statusCode": 501,
        "headers": {"Content-Type": "application/json"},
        "body": '{"error": "not built yet"}',
    }
