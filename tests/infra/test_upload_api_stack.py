"""UploadApiStack: the routes the handler serves, CORS for the site alone, throttling, config.json."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from image_etl import stack_outputs
from image_etl.resource_shapes import LOCAL, site_config
from infra.bundling import REPO
from infra.components.upload_api import STAGE
from tests.function_environments import upload_api_env
from tests.infra.conftest import Cloud

pytestmark = pytest.mark.slow

OPENAPI = REPO / "lambda_upload_api" / "openapi.yaml"


def _site_origin(cloud: Cloud) -> dict[str, Any]:
    """The site's origin as the API stack sees it: https:// + the distribution's domain, imported."""
    return {
        "Fn::Join": [
            "",
            ["https://", {"Fn::ImportValue": _export(cloud, "DomainName")}],
        ]
    }


def _export(cloud: Cloud, attribute: str) -> str:
    site_outputs = cloud.template_json(cloud.site)["Outputs"]
    distribution = cloud.logical_id(cloud.site.site.distribution)
    (name,) = [
        output["Export"]["Name"]
        for output in site_outputs.values()
        if output.get("Value") == {"Fn::GetAtt": [distribution, attribute]} and "Export" in output
    ]
    return name


def _routes(cloud: Cloud) -> dict[tuple[str, str], dict[str, Any]]:
    """Return (method, path) -> method properties, paths rebuilt from the API's resources."""
    stack = cloud.upload_api
    resources = cloud.resources(stack, "AWS::ApiGateway::Resource")

    def path(ref: dict[str, Any]) -> str:
        if "Ref" not in ref or ref["Ref"] not in resources:
            return ""
        props = resources[ref["Ref"]]["Properties"]
        return f"{path(props['ParentId'])}/{props['PathPart']}"

    return {
        (props["HttpMethod"], path(props["ResourceId"]) if "Ref" in props["ResourceId"] else "/"): props
        for props in (m["Properties"] for m in cloud.resources(stack, "AWS::ApiGateway::Method").values())
    }


def test_every_route_of_the_openapi_spec_is_proxied_to_the_function(cloud: Cloud) -> None:
    spec = yaml.safe_load(OPENAPI.read_text())
    served = {(method.upper(), path) for path, item in spec["paths"].items() for method in item}
    routes = {key: props for key, props in _routes(cloud).items() if key[0] != "OPTIONS"}
    assert set(routes) == served
    function = cloud.logical_id(cloud.upload_api.handler.function)
    for props in routes.values():
        assert props["Integration"]["Type"] == "AWS_PROXY"
        assert {"Fn::GetAtt": [function, "Arn"]} in props["Integration"]["Uri"]["Fn::Join"][1]


def test_every_method_but_the_preflights_needs_a_user_pool_access_token(cloud: Cloud) -> None:
    stack = cloud.upload_api
    (authorizer_id, authorizer), *others = cloud.resources(stack, "AWS::ApiGateway::Authorizer").items()
    assert others == []
    assert authorizer["Properties"]["Type"] == "COGNITO_USER_POOLS"
    assert authorizer["Properties"]["IdentitySource"] == "method.request.header.Authorization"
    pool = cloud.logical_id(stack.identity.user_pool)
    assert authorizer["Properties"]["ProviderARNs"] == [{"Fn::GetAtt": [pool, "Arn"]}]
    for (method, path), props in _routes(cloud).items():
        if method == "OPTIONS":
            assert props["AuthorizationType"] == "NONE", path  # browsers send preflights without credentials
            continue
        assert props["AuthorizationType"] == "COGNITO_USER_POOLS", (method, path)
        assert props["AuthorizerId"] == {"Ref": authorizer_id}, (method, path)
        # With a scope, API Gateway takes access tokens only (ID tokens are refused).
        assert props["AuthorizationScopes"] == [LOCAL.identity.api_scope], (method, path)


def test_refusals_are_the_apis_json_errors_readable_by_the_page(cloud: Cloud) -> None:
    quoted = {"Fn::Join": ["", ["'https://", {"Fn::ImportValue": _export(cloud, "DomainName")}, "'"]]}
    responses = {
        r["Properties"]["ResponseType"]: r["Properties"]
        for r in cloud.resources(cloud.upload_api, "AWS::ApiGateway::GatewayResponse").values()
    }
    for kind, error in (
        ("UNAUTHORIZED", "unauthorized"),
        ("ACCESS_DENIED", "forbidden"),
        ("MISSING_AUTHENTICATION_TOKEN", "not_found"),
    ):
        template = responses[kind]["ResponseTemplates"]["application/json"]
        assert json.loads(template.replace("$context.", "context."))["error"] == error
        assert (
            responses[kind]["ResponseParameters"]["gatewayresponse.header.Access-Control-Allow-Origin"]
            == quoted
        )
    preflight = next(props for (method, _), props in _routes(cloud).items() if method == "OPTIONS")
    (response,) = preflight["Integration"]["IntegrationResponses"]
    allowed = response["ResponseParameters"]["method.response.header.Access-Control-Allow-Headers"]
    assert "Authorization" in allowed


def test_cors_allows_the_site_origin_only(cloud: Cloud) -> None:
    origin = _site_origin(cloud)
    quoted = {"Fn::Join": ["", ["'https://", {"Fn::ImportValue": _export(cloud, "DomainName")}, "'"]]}
    preflights = [props for (method, _), props in _routes(cloud).items() if method == "OPTIONS"]
    assert len(preflights) == 4  # /, /uploads, /images, /images/{image_id}
    for props in preflights:
        (response,) = props["Integration"]["IntegrationResponses"]
        assert response["ResponseParameters"]["method.response.header.Access-Control-Allow-Origin"] == quoted
    gateway_responses = cloud.resources(cloud.upload_api, "AWS::ApiGateway::GatewayResponse").values()
    assert {r["Properties"]["ResponseType"] for r in gateway_responses} >= {"DEFAULT_4XX", "DEFAULT_5XX"}
    for response in gateway_responses:
        header = response["Properties"]["ResponseParameters"][
            "gatewayresponse.header.Access-Control-Allow-Origin"
        ]
        assert header == quoted
    function = cloud.resources(cloud.upload_api, "AWS::Lambda::Function")[
        cloud.logical_id(cloud.upload_api.handler.function)
    ]
    assert function["Properties"]["Environment"]["Variables"]["ALLOWED_ORIGIN"] == origin


def test_stage_throttles_and_logs_every_method(cloud: Cloud) -> None:
    api = LOCAL.upload_api
    (stage,) = cloud.resources(cloud.upload_api, "AWS::ApiGateway::Stage").values()
    (settings,) = stage["Properties"]["MethodSettings"]
    assert (settings["HttpMethod"], settings["ResourcePath"]) == ("*", "/*")
    assert settings["ThrottlingRateLimit"] == api.throttle_rate_per_s
    assert settings["ThrottlingBurstLimit"] == api.throttle_burst
    assert settings["LoggingLevel"] == "ERROR"
    assert "DestinationArn" in stage["Properties"]["AccessLogSetting"]


def test_upload_function_environment_names_the_deployed_resources(cloud: Cloud) -> None:
    stack = cloud.upload_api
    function = cloud.resources(stack, "AWS::Lambda::Function")[cloud.logical_id(stack.handler.function)]
    props = function["Properties"]
    assert (props["Runtime"], props["Architectures"]) == ("python3.12", ["arm64"])
    assert props["Handler"] == "lambda_upload_api.handler.lambda_handler"
    variables = props["Environment"]["Variables"]
    expected = upload_api_env()  # made-up resource names: only the values besides them are compared
    assert set(variables) == set(expected)
    tokens = {"UPLOAD_BUCKET", "VARIANTS_BUCKET", "TABLE_NAME", "ALLOWED_ORIGIN", "APP_CLIENT_ID"}
    assert {k: v for k, v in variables.items() if k not in tokens} == {
        k: v for k, v in expected.items() if k not in tokens
    }
    imports = {
        name: value["Fn::ImportValue"] for name, value in variables.items() if "Fn::ImportValue" in value
    }
    assert imports.keys() == {"UPLOAD_BUCKET", "VARIANTS_BUCKET", "TABLE_NAME"}
    processing = cloud.processing
    for name, construct in {
        "UPLOAD_BUCKET": processing.upload_bucket,
        "VARIANTS_BUCKET": processing.variants_bucket,
        "TABLE_NAME": processing.table,
    }.items():
        assert f"Ref{cloud.logical_id(construct)}" in imports[name]
    assert variables["APP_CLIENT_ID"] == {"Ref": cloud.logical_id(stack.identity.client)}


def test_config_json_gets_the_api_url_and_the_user_pool_at_deploy_time(cloud: Cloud) -> None:
    stack = cloud.upload_api
    deployments = cloud.resources(stack, "Custom::CDKBucketDeployment")
    (config,) = [
        d["Properties"] for d in deployments.values() if d["Properties"].get("SourceMarkers") != [{}]
    ]
    (markers,) = config["SourceMarkers"]
    pool, client = cloud.logical_id(stack.identity.user_pool), cloud.logical_id(stack.identity.client)
    placeholders: dict[str, str] = {}
    for marker, value in markers.items():
        # Each a JSON string filled in by the deployment.
        parts = value["Fn::Join"][1]
        if parts[0] == '"https://':  # https://<api id>.execute-api.<region>.<suffix>/<stage>
            assert parts[-1] == f'/{STAGE}"' and {"Ref": cloud.logical_id(stack.api.api)} in parts
            placeholders[marker] = "<api url>"
        else:
            assert parts[0] == parts[2] == '"'
            placeholders[marker] = {pool: "<pool id>", client: "<client id>"}[parts[1]["Ref"]]
    assert sorted(placeholders.values()) == ["<api url>", "<client id>", "<pool id>"]
    (key,) = config["SourceObjectKeys"]
    text = (cloud.asset_dir(key) / "config.json").read_text()
    for marker, placeholder in placeholders.items():
        text = text.replace(marker, json.dumps(placeholder))
    written = json.loads(text)
    assert written == site_config(
        api_url="<api url>",
        api=LOCAL.upload_api,
        region="eu-west-1",
        user_pool_id="<pool id>",
        user_pool_client_id="<client id>",
    )
    assert written["cognito"]["endpoint"] == "https://cognito-idp.eu-west-1.amazonaws.com/"
    site_bucket = cloud.logical_id(cloud.site.site.bucket)
    assert site_bucket in config["DestinationBucketName"]["Fn::ImportValue"]
    assert config["Prune"] is False  # the page's own files stay
    assert config["DistributionPaths"] == ["/config.json"]


def test_outputs_name_the_user_pool_and_the_pages_client(cloud: Cloud) -> None:
    stack = cloud.upload_api
    found = cloud.template_json(stack)["Outputs"]
    assert found[stack_outputs.USER_POOL_ID]["Value"] == {"Ref": cloud.logical_id(stack.identity.user_pool)}
    assert found[stack_outputs.USER_POOL_CLIENT_ID]["Value"] == {
        "Ref": cloud.logical_id(stack.identity.client)
    }


def test_api_url_output_is_the_stage_url_without_trailing_slash(cloud: Cloud) -> None:
    stack = cloud.upload_api
    parts = cloud.template_json(stack)["Outputs"][stack_outputs.API_URL]["Value"]["Fn::Join"][1]
    assert (parts[0], parts[-1]) == ("https://", f"/{STAGE}")
    assert {"Ref": cloud.logical_id(stack.api.api)} in parts
