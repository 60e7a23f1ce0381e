"""Python Lambda functions built the same way: a package alone as code, its dependencies as a layer."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.bundling import LambdaPlatform, layer_code, package_code
from infra.nag import acknowledge

#: Every log (functions, API access, S3 server access) is kept this many days: long enough to debug
#: last month's failures, short enough not to pay for logs nobody reads.
LOG_RETENTION_DAYS = 30
#: The same period as CloudWatch names it (it takes only its fixed periods, not a number of days).
LOG_RETENTION = logs.RetentionDays.ONE_MONTH


class PythonFunction(Construct):
    """A function running ``<package>.handler.lambda_handler``, with a layer built from ``requirements``.

    :param package: the handler's package folder; it alone becomes the function's code.
    :param requirements: the layer's pinned requirements file (its folder is the layer's asset).
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        package: Path,
        requirements: Path,
        platform: LambdaPlatform,
        environment: Mapping[str, str],
        timeout_s: int,
        memory_mb: int,
        description: str,
    ) -> None:
        super().__init__(scope, id)
        self.layer = lambda_.LayerVersion(
            self,
            "Dependencies",
            code=layer_code(requirements, platform=platform),
            compatible_runtimes=[platform.runtime],
            compatible_architectures=[platform.architecture],
            description=f"{package.name} dependencies ({platform.machine}, Python {platform.python_version})",
        )
        # An explicit log group, so retention is set by CloudFormation and removed with the stack.
        self.log_group = logs.LogGroup(
            self, "Logs", retention=LOG_RETENTION, removal_policy=RemovalPolicy.DESTROY
        )
        self.function = lambda_.Function(
            self,
            "Function",
            runtime=platform.runtime,
            architecture=platform.architecture,
            handler=f"{package.name}.handler.lambda_handler",
            code=package_code(package, platform=platform),
            layers=[self.layer],
            environment=dict(environment),
            timeout=Duration.seconds(timeout_s),
            memory_size=memory_mb,
            log_group=self.log_group,
            description=description,
        )
        acknowledge(
            self.function,
            "AwsSolutions-L1",
            f"{platform.runtime.name} on purpose: the layer's compiled wheels (Pillow, numpy) are built "
            "and tested for this Python version; move both together.",
        )
        acknowledge(
            self.function,
            "AwsSolutions-IAM4",
            "AWSLambdaBasicExecutionRole only lets the function write its own CloudWatch logs.",
            findings=[r"Policy::.*/AWSLambdaBasicExecutionRole"],
        )
