"""The upload page: a private bucket behind CloudFront, its files, and its deploy-time config.json."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aws_cdk import aws_cloudfront as cloudfront
from aws_cdk import aws_cloudfront_origins as origins
from aws_cdk import aws_s3_deployment as s3deploy
from constructs import Construct

from infra.components.storage import AccessLogs, private_bucket
from infra.nag import acknowledge, acknowledge_bucket_deployment_handler

#: Written by :class:`SiteConfig` at deploy time; never taken from the site folder.
CONFIG_FILE = "config.json"


class StaticSite(Construct):
    """``files`` served over HTTPS by CloudFront from a bucket only CloudFront can read (OAC).

    The files are synced on every deploy (removed ones are deleted, except ``config.json``) and
    CloudFront's cache is invalidated.
    """

    def __init__(self, scope: Construct, id: str, *, files: Path) -> None:
        super().__init__(scope, id)
        self.logs = AccessLogs(self, "Logs", cloudfront=True)
        self.bucket = private_bucket(self, "Bucket", access_logs=self.logs.bucket)
        self.distribution = cloudfront.Distribution(
            self,
            "Distribution",
            comment="image-etl upload page",
            default_root_object="index.html",
            default_behavior=cloudfront.BehaviorOptions(
                origin=origins.S3BucketOrigin.with_origin_access_control(self.bucket),
                viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.REDIRECT_TO_HTTPS,
                cache_policy=cloudfront.CachePolicy.CACHING_OPTIMIZED,
                response_headers_policy=cloudfront.ResponseHeadersPolicy.SECURITY_HEADERS,
            ),
            # North America and Europe edges only: the cheapest class, plenty for an upload page.
            price_class=cloudfront.PriceClass.PRICE_CLASS_100,
            http_version=cloudfront.HttpVersion.HTTP2_AND_3,
            enable_logging=True,
            log_bucket=self.logs.bucket,
            log_file_prefix="cloudfront/",
        )
        acknowledge(
            self.distribution,
            "AwsSolutions-CFR4",
            "The default *.cloudfront.net certificate cannot pin a minimum TLS version; a custom "
            "domain with an ACM certificate can (TLSv1.2_2021).",
        )
        #: The page's URL and the one origin CORS allows: ``https://<distribution domain>``, no slash.
        self.origin = f"https://{self.distribution.distribution_domain_name}"
        self.files = s3deploy.BucketDeployment(
            self,
            "Files",
            sources=[s3deploy.Source.asset(str(files), exclude=[CONFIG_FILE])],
            destination_bucket=self.bucket,
            # Excluded files are neither uploaded nor pruned: config.json is SiteConfig's.
            exclude=[CONFIG_FILE],
            distribution=self.distribution,
            distribution_paths=["/*"],
        )
        acknowledge_bucket_deployment_handler(self.files)


class SiteConfig(Construct):
    """``config.json`` in ``site``'s bucket, its values (tokens included) filled in at deploy time.

    The page reads it on load, so a new API URL reaches it with the deploy that made it: there is
    no paste-the-URL-and-redeploy step.
    """

    def __init__(self, scope: Construct, id: str, *, site: StaticSite, config: Mapping[str, Any]) -> None:
        super().__init__(scope, id)
        self.deployment = s3deploy.BucketDeployment(
            self,
            "ConfigJson",
            sources=[s3deploy.Source.json_data(CONFIG_FILE, dict(config))],
            destination_bucket=site.bucket,
            # Leave the page's files alone; they are StaticSite's.
            prune=False,
            cache_control=[s3deploy.CacheControl.no_cache()],
            distribution=site.distribution,
            distribution_paths=[f"/{CONFIG_FILE}"],
        )
        acknowledge_bucket_deployment_handler(self.deployment)
