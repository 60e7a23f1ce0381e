"""The REST API in front of the upload function: routes, CORS for one origin, throttling, logs."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from image_etl.resources import UploadApiShape
from infra.checks import acknowledge
from infra.components.functions import LOG_RETENTION

STAGE = "v1"
#: Method -> route -> path parameters it requires; every route is proxied to the one function.
ROUTES: dict[tuple[str, str], tuple[str, ...]] = {
    ("POST", "/uploads"): (),
    ("GET", "/images"): (),
    ("GET", "/images/{image_id}"): ("image_id",),
}


class UploadApi(Construct):
    """A regional REST API proxying :data:`ROUTES` to ``function``.

    CORS allows ``allowed_origin`` only, on preflights (answered by API Gateway, no invocation) and on
    API Gateway's own error responses, so a throttled request reaches the page as a 429 and not as
    a CORS failure. The function itself sets CORS headers on its responses.

    :param allowed_origin: the site's origin, ``https://<domain>`` (no trailing slash).
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        function: lambda_.IFunction,
        allowed_origin: str,
        shape: UploadApiShape,
    ) -> None:
        super().__init__(scope, id)
        access_logs = logs.LogGroup(
            self, "AccessLogs", retention=LOG_RETENTION, removal_policy=RemovalPolicy.DESTROY
        )
        self.api = apigw.RestApi(
            self,
            "Api",
            description="image-etl upload API: presigned uploads and image records",
            endpoint_types=[apigw.EndpointType.REGIONAL],
            # Stage logging needs the account's API Gateway -> CloudWatch role.
            cloud_watch_role=True,
            deploy_options=apigw.StageOptions(
                stage_name=STAGE,
                throttling_rate_limit=shape.throttle_rate_per_s,
                throttling_burst_limit=shape.throttle_burst,
                logging_level=apigw.MethodLoggingLevel.ERROR,
                access_log_destination=apigw.LogGroupLogDestination(access_logs),
                access_log_format=apigw.AccessLogFormat.json_with_standard_fields(
                    caller=False,
                    http_method=True,
                    ip=True,
                    protocol=True,
                    request_time=True,
                    resource_path=True,
                    response_length=True,
                    status=True,
                    user=False,
                ),
            ),
            default_cors_preflight_options=apigw.CorsOptions(
                allow_origins=[allowed_origin],
                allow_methods=sorted({method for method, _ in ROUTES}),
                allow_headers=["Content-Type"],
                max_age=Duration.minutes(10),
            ),
        )
        cors_headers = {"Access-Control-Allow-Origin": f"'{allowed_origin}'", "Vary": "'Origin'"}
        for name, response_type in {
            "Cors4xx": apigw.ResponseType.DEFAULT_4_XX,
            "Cors5xx": apigw.ResponseType.DEFAULT_5_XX,
        }.items():
            self.api.add_gateway_response(name, type=response_type, response_headers=cors_headers)
        validator = self.api.add_request_validator(
            "Validator", validate_request_parameters=True, validate_request_body=True
        )
        integration = apigw.LambdaIntegration(function, allow_test_invoke=False)
        for (method, path), parameters in ROUTES.items():
            resource = self.api.root.resource_for_path(path)
            added = resource.add_method(
                method,
                integration,
                request_parameters={f"method.request.path.{name}": True for name in parameters} or None,
                request_validator=validator if parameters else None,
            )
            acknowledge(
                added,
                "AwsSolutions-APIG4",
                "Anonymous by design: the upload page has no sign-in. Abuse is bounded by stage "
                "throttling, CORS for the site only, and presigned uploads of one declared size.",
            )
            acknowledge(added, "AwsSolutions-COG4", "Anonymous by design (see AwsSolutions-APIG4).")
        stack = Stack.of(self)
        #: Base URL without a trailing slash (routes are appended as ``/uploads``).
        self.url = f"https://{self.api.rest_api_id}.execute-api.{stack.region}.{stack.url_suffix}/{STAGE}"
        for child in self.api.node.find_all():
            # The CORS preflight methods CDK adds cannot carry credentials (browsers send none).
            if child.node.id == "OPTIONS":
                acknowledge(child, "AwsSolutions-APIG4", "CORS preflights carry no credentials.")
                acknowledge(child, "AwsSolutions-COG4", "CORS preflights carry no credentials.")
        acknowledge(
            self.api,
            "AwsSolutions-IAM4",
            "The account-level role API Gateway writes stage logs with; AWS's policy is the documented one.",
            findings=[r"Policy::.*/AmazonAPIGatewayPushToCloudWatchLogs"],
        )
