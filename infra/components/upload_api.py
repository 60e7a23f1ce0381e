"""The REST API in front of the upload function: routes, CORS for one origin, throttling, logs."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cognito as cognito
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from image_etl.resource_shapes import UploadApiShape
from infra.components.functions import LOG_RETENTION
from infra.nag import acknowledge

STAGE = "v1"
#: Method -> route -> path parameters it requires; every route is proxied to the one function.
ROUTES: dict[tuple[str, str], tuple[str, ...]] = {
    ("POST", "/uploads"): (),
    ("GET", "/images"): (),
    ("GET", "/images/{image_id}"): ("image_id",),
}


#: API Gateway's own refusals, in the API's JSON error shape (it does not say which check failed).
_REFUSALS = {
    "Unauthorized": (
        apigw.ResponseType.UNAUTHORIZED,
        "unauthorized",
        "sign in: a valid access token of the image-etl user pool is required ($context.error.message)",
    ),
    "AccessDenied": (apigw.ResponseType.ACCESS_DENIED, "forbidden", "$context.error.message"),
    "MissingToken": (
        apigw.ResponseType.MISSING_AUTHENTICATION_TOKEN,
        "not_found",
        "no such route ($context.httpMethod $context.path)",
    ),
}


class UploadApi(Construct):
    """A regional REST API proxying :data:`ROUTES` to ``function``, every route behind the user pool.

    Every method except the CORS preflights needs an access token of ``user_pool`` carrying
    ``token_scope`` (API Gateway's Cognito authorizer checks signature, issuer, expiry and scope before
    the function runs; the function checks the app client and the caller's groups).
    CORS allows ``allowed_origin`` only, on preflights (answered by API Gateway, no invocation) and on
    API Gateway's own error responses, so a throttled or refused request reaches the page as a 429
    or 401 and not as a CORS failure. The function itself sets CORS headers on its responses.

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
        user_pool: cognito.IUserPool,
        token_scope: str,
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
                allow_headers=["Content-Type", "Authorization"],
                max_age=Duration.minutes(10),
            ),
        )
        cors_headers = {"Access-Control-Allow-Origin": f"'{allowed_origin}'", "Vary": "'Origin'"}
        for name, response_type in {
            "Cors4xx": apigw.ResponseType.DEFAULT_4_XX,
            "Cors5xx": apigw.ResponseType.DEFAULT_5_XX,
        }.items():
            self.api.add_gateway_response(name, type=response_type, response_headers=cors_headers)
        for name, (response_type, error, detail) in _REFUSALS.items():
            self.api.add_gateway_response(
                name,
                type=response_type,
                response_headers=cors_headers,
                templates={"application/json": f'{{"error": "{error}", "detail": "{detail}"}}'},
            )
        self.authorizer = apigw.CognitoUserPoolsAuthorizer(
            self, "Authorizer", cognito_user_pools=[user_pool], results_cache_ttl=Duration.minutes(5)
        )
        validator = self.api.add_request_validator(
            "Validator", validate_request_parameters=True, validate_request_body=True
        )
        integration = apigw.LambdaIntegration(function, allow_test_invoke=False)
        for (method, path), parameters in ROUTES.items():
            resource = self.api.root.resource_for_path(path)
            resource.add_method(
                method,
                integration,
                authorization_type=apigw.AuthorizationType.COGNITO,
                authorizer=self.authorizer,
                authorization_scopes=[token_scope],
                request_parameters={f"method.request.path.{name}": True for name in parameters} or None,
                request_validator=validator if parameters else None,
            )
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
