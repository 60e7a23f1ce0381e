"""UploadSiteStack: the upload page on CloudFront. Deployed first: the others need its origin."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aws_cdk import CfnOutput, Stack
from constructs import Construct

from image_etl import stack_outputs
from infra.bundling import REPO
from infra.components.site import StaticSite


class UploadSiteStack(Stack):
    """The private site bucket behind CloudFront, with the files of ``site/``.

    Its ``config.json`` is written by the UploadApiStack, which knows the API's URL: the API allows
    CORS from this site's origin only, and the upload bucket too, so the origin must exist before
    both (the other way round is a cycle between the stacks).
    """

    def __init__(self, scope: Construct, id: str, *, files: Path = REPO / "site", **kwargs: Any) -> None:
        super().__init__(scope, id, **kwargs)
        self.site = StaticSite(self, "Site", files=files)
        CfnOutput(self, stack_outputs.SITE_URL, value=self.site.origin, description="The upload page")
        CfnOutput(self, stack_outputs.SITE_BUCKET, value=self.site.bucket.bucket_name)
        CfnOutput(self, stack_outputs.DISTRIBUTION_ID, value=self.site.distribution.distribution_id)
