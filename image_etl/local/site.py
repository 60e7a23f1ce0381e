"""The local upload site: the files of `site/`, its `config.json`, and the upload API under `/api`.

`/api/...` requests become API Gateway REST proxy events for the same `lambda_upload_api` handler
that runs in AWS, so there is no second implementation of the API.
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import mimetypes
import os
import sys
import uuid
from pathlib import Path
from typing import Any

from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from image_etl.local.authorizer import CognitoAuthorizer, Unauthorized
from image_etl.local.go import wait_for_go
from image_etl.local.signals import exit_on_stop
from image_etl.local.worker import FakeLambdaContext
from image_etl.resource_shapes import LOCAL, site_config, upload_api_environment
from image_etl.settings import LOCAL_HOST, Settings, load_settings
from image_etl.users import DEMO_PASSWORD_FILE

SITE_DIR = Path(__file__).resolve().parents[2] / "site"
API_PREFIX = "/api"


def api_environment(settings: Settings) -> dict[str, str]:
    """Return the environment the upload API handler runs with locally: the Lambda's, plus the endpoint."""
    return {
        **upload_api_environment(
            upload_bucket=settings.upload_bucket,
            upload_prefix=settings.upload_prefix,
            variants_bucket=settings.variants_bucket,
            table_name=settings.table_name,
            allowed_origin=settings.site_url or "",
            app_client_id=settings.user_pool_client_id or "",
            table=LOCAL.table,
            api=LOCAL.upload_api,
            identity=LOCAL.identity,
        ),
        **settings.lambda_environment(),
    }


def proxy_event(request: Request, *, path: str, claims: dict[str, str] | None = None) -> dict[str, Any]:
    """Return the API Gateway REST (v1) proxy event for ``request``, with ``path`` below the stage.

    :param claims: the verified token's claims, as API Gateway's Cognito authorizer passes them.
    """
    body = request.get_data()
    try:
        text, encoded = body.decode("utf-8"), False
    except UnicodeDecodeError:
        text, encoded = base64.b64encode(body).decode(), True
    query = request.args
    return {
        "resource": "/{proxy+}",
        "path": path,
        "httpMethod": request.method,
        "headers": dict(request.headers.items()),
        "multiValueHeaders": {k: request.headers.getlist(k) for k in request.headers.keys()},  # noqa: SIM118
        "queryStringParameters": {k: query[k] for k in query} or None,
        "multiValueQueryStringParameters": {k: query.getlist(k) for k in query} or None,
        "pathParameters": {"proxy": path.lstrip("/")},
        "stageVariables": None,
        "requestContext": {
            "resourcePath": "/{proxy+}",
            "httpMethod": request.method,
            "path": f"{API_PREFIX}{path}",
            "stage": API_PREFIX.strip("/"),
            "requestId": str(uuid.uuid4()),
            "identity": {"sourceIp": request.remote_addr or LOCAL_HOST},
            **({"authorizer": {"claims": claims}} if claims is not None else {}),
        },
        "body": text or None,
        "isBase64Encoded": encoded,
    }


class SiteApp:
    """WSGI app: static files, config.json, and the API through API Gateway's checks and the Lambda
    handler."""

    def __init__(self, settings: Settings, *, site_dir: Path = SITE_DIR) -> None:
        if not (settings.user_pool_id and settings.user_pool_client_id and settings.jwks_url):
            raise ValueError("the local site needs the user pool: start it through `image-etl up`")
        os.environ.update(api_environment(settings))
        from lambda_upload_api.handler import lambda_handler  # reads its environment on first use

        self.handler = lambda_handler
        self.settings = settings
        self.site_dir = site_dir.resolve()
        self.authorizer = CognitoAuthorizer(
            issuer=str(settings.token_issuer), jwks_url=settings.jwks_url, scope=LOCAL.identity.api_scope
        )
        self.config = site_config(
            api_url=settings.api_url or f"{API_PREFIX}",
            api=LOCAL.upload_api,
            region=settings.region,
            user_pool_id=settings.user_pool_id,
            user_pool_client_id=settings.user_pool_client_id,
            cognito_endpoint=f"{settings.aws_endpoint_url}/",
            sign_in_hint=(
                f"Local stack: sign in as {LOCAL.identity.demo_user} with the password `make up` printed "
                f"(also in {Path(settings.data_dir) / DEMO_PASSWORD_FILE})."
            ),
        )

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        if request.path == API_PREFIX or request.path.startswith(f"{API_PREFIX}/"):
            response = self.api(request)
        elif request.path == "/config.json":
            response = Response(json.dumps(self.config), content_type="application/json")
        else:
            response = self.static(request)
        return response(environ, start_response)

    def api(self, request: Request) -> Response:
        claims = None
        # API Gateway answers preflights itself and authorizes everything else before the function.
        if request.method != "OPTIONS":
            try:
                claims = self.authorizer.claims(request.headers.get("Authorization"))
            except Unauthorized as refused:
                return self.unauthorized(str(refused))
        event = proxy_event(request, path=request.path[len(API_PREFIX) :] or "/", claims=claims)
        result = self.handler(event, FakeLambdaContext(function_name="image-etl-upload-api-local"))
        body = result.get("body") or ""
        data = base64.b64decode(body) if result.get("isBase64Encoded") else body.encode()
        response = Response(data, status=result["statusCode"])
        response.headers.clear()
        for name, value in (result.get("headers") or {}).items():
            response.headers[name] = value
        for name, values in (result.get("multiValueHeaders") or {}).items():
            for value in values:
                response.headers.add(name, value)
        return response

    def unauthorized(self, detail: str) -> Response:
        """Return API Gateway's refusal of an unauthorized request, as the API's usual JSON error."""
        body = json.dumps({"error": "unauthorized", "detail": detail})
        response = Response(body, status=401, content_type="application/json")
        response.headers["WWW-Authenticate"] = 'Bearer realm="image-etl"'
        if self.settings.site_url:
            response.headers["Access-Control-Allow-Origin"] = self.settings.site_url
            response.headers["Vary"] = "Origin"
        return response

    def static(self, request: Request) -> Response:
        if request.method not in {"GET", "HEAD"}:
            return Response("method not allowed\n", status=405, content_type="text/plain")
        relative = request.path.lstrip("/") or "index.html"
        target = (self.site_dir / relative).resolve()
        if not target.is_relative_to(self.site_dir) or not target.is_file():
            return Response("not found\n", status=404, content_type="text/plain")
        content_type = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        # No caching: the page is edited while the stack runs.
        return Response(target.read_bytes(), content_type=content_type, headers={"Cache-Control": "no-store"})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="image-etl local upload site + API")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    wait_for_go()
    settings = load_settings(args.data_dir)
    try:
        server = make_server(LOCAL_HOST, args.port, SiteApp(settings), threaded=True)
    except OSError as error:
        print(
            json.dumps({"error": f"cannot listen on {LOCAL_HOST}:{args.port}: {error.strerror}"}), flush=True
        )
        sys.exit(2)
    exit_on_stop()
    print(json.dumps({"ready": True, "site_url": settings.site_url, "api_url": settings.api_url}), flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
