"""UploadApiStack: the upload function behind API Gateway, and the site's config.json."""

from __future__ import annotations

import re
from typing import Any

from aws_cdk import CfnOutput, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_s3 as s3
from constructs import Construct

from image_etl import stack_outputs
from image_etl.resource_shapes import LOCAL, StackNames, site_config, upload_api_environment
from infra.bundling import REPO, UPLOAD_API_PLATFORM, UPLOAD_API_REQUIREMENTS, LambdaPlatform
from infra.components.functions import PythonFunction
from infra.components.identity import Identity
from infra.components.monitoring import Alarms
from infra.components.site import SiteConfig, StaticSite
from infra.components.upload_api import UploadApi
from infra.nag import acknowledge


class UploadApiStack(Stack):
    """The user pool, the upload API behind it, granted exactly what its function touches, and the
    page's ``config.json``.

    :param upload_bucket: presigned POSTs go here, under the upload prefix only.
    :param variants_bucket: presigned GETs of variants come from here.
    :param table: the image records and their indexes, read only.
    :param site: the page: its origin is the one CORS allows, its bucket gets ``config.json``.
    :param alarm_topic_arn: an SNS topic the alarm on function errors notifies.
    :param cognito_plus_tier: see :class:`Identity`.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        upload_bucket: s3.IBucket,
        variants_bucket: s3.IBucket,
        table: dynamodb.ITable,
        site: StaticSite,
        names: StackNames = LOCAL,
        platform: LambdaPlatform = UPLOAD_API_PLATFORM,
        alarm_topic_arn: str | None = None,
        cognito_plus_tier: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, id, **kwargs)
        self.identity = Identity(self, "Identity", shape=names.identity, plus_tier=cognito_plus_tier)
        self.handler = PythonFunction(
            self,
            "UploadApiFunction",
            package=REPO / "lambda_upload_api",
            requirements=UPLOAD_API_REQUIREMENTS,
            platform=platform,
            environment=upload_api_environment(
                upload_bucket=upload_bucket.bucket_name,
                upload_prefix=names.upload_prefix,
                variants_bucket=variants_bucket.bucket_name,
                table_name=table.table_name,
                allowed_origin=site.origin,
                app_client_id=self.identity.client.user_pool_client_id,
                table=names.table,
                api=names.upload_api,
                identity=names.identity,
            ),
            timeout_s=names.upload_api.timeout_s,
            memory_mb=names.upload_api.memory_mb,
            description="Upload API: presigned uploads and image records",
        )
        function = self.handler.function
        s3.BucketGrants.from_bucket(upload_bucket).actions_on_object_keys(
            function, f"{names.upload_prefix}*", "s3:PutObject"
        )
        s3.BucketGrants.from_bucket(variants_bucket).actions_on_object_keys(
            function, f"{names.variants_prefix}*", "s3:GetObject"
        )
        table.grant_read_data(function)
        acknowledge(
            function,
            "AwsSolutions-IAM5",
            "Presigned POSTs under the upload prefix, presigned GETs under the variants prefix, and "
            "Queries on the table's indexes (grant_read_data).",
            findings=[
                rf"Resource::.*Uploads.*/{re.escape(names.upload_prefix)}\*",
                rf"Resource::.*Variants.*/{re.escape(names.variants_prefix)}\*",
                r"Resource::.*ImagesTable.*/index/\*",
            ],
        )
        self.api = UploadApi(
            self,
            "UploadApi",
            function=function,
            allowed_origin=site.origin,
            shape=names.upload_api,
            user_pool=self.identity.user_pool,
            token_scope=names.identity.api_scope,
        )
        self.site_config = SiteConfig(
            self,
            "SiteConfig",
            site=site,
            config=site_config(
                api_url=self.api.url,
                api=names.upload_api,
                region=self.region,
                user_pool_id=self.identity.user_pool.user_pool_id,
                user_pool_client_id=self.identity.client.user_pool_client_id,
            ),
        )
        Alarms(
            self,
            "Alarms",
            functions={"UploadApi": function},
            topic_arn=alarm_topic_arn,
        )

        CfnOutput(self, stack_outputs.API_URL, value=self.api.url, description="Base URL of the upload API")
        CfnOutput(self, stack_outputs.UPLOAD_API_FUNCTION, value=function.function_name)
        CfnOutput(self, stack_outputs.USER_POOL_ID, value=self.identity.user_pool.user_pool_id)
        CfnOutput(self, stack_outputs.USER_POOL_CLIENT_ID, value=self.identity.client.user_pool_client_id)
