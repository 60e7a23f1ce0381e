"""UploadSiteStack: the page, served by CloudFront over HTTPS from a bucket only CloudFront reads."""

from __future__ import annotations

import pytest

from image_etl import stack_outputs
from infra.bundling import REPO
from infra.components.site import CONFIG_FILE
from tests.infra.conftest import Cloud

pytestmark = pytest.mark.slow


def test_cloudfront_reads_the_private_bucket_through_origin_access_control(cloud: Cloud) -> None:
    stack = cloud.site
    bucket = cloud.logical_id(stack.site.bucket)
    (distribution,) = cloud.resources(stack, "AWS::CloudFront::Distribution").values()
    config = distribution["Properties"]["DistributionConfig"]
    (origin,) = config["Origins"]
    assert origin["DomainName"] == {"Fn::GetAtt": [bucket, "RegionalDomainName"]}
    (oac,) = cloud.resources(stack, "AWS::CloudFront::OriginAccessControl")
    assert origin["OriginAccessControlId"] == {"Fn::GetAtt": [oac, "Id"]}
    assert origin["S3OriginConfig"] == {"OriginAccessIdentity": ""}  # OAC, not the legacy OAI
    assert config["DefaultCacheBehavior"]["ViewerProtocolPolicy"] == "redirect-to-https"
    assert config["DefaultRootObject"] == "index.html"
    policies = [
        p["Properties"]["PolicyDocument"]["Statement"]
        for p in cloud.resources(stack, "AWS::S3::BucketPolicy").values()
        if p["Properties"]["Bucket"] == {"Ref": bucket}
    ]
    (statements,) = policies
    (allow,) = [s for s in statements if s["Effect"] == "Allow"]
    assert allow["Principal"] == {"Service": "cloudfront.amazonaws.com"}
    assert allow["Action"] == "s3:GetObject"
    source = allow["Condition"]["StringEquals"]["AWS:SourceArn"]["Fn::Join"][1]
    assert {"Ref": cloud.logical_id(stack.site.distribution)} in source


def test_site_files_are_deployed_but_config_json_is_left_to_the_api_stack(cloud: Cloud) -> None:
    stack = cloud.site
    (files,) = [d["Properties"] for d in cloud.resources(stack, "Custom::CDKBucketDeployment").values()]
    assert files["DestinationBucketName"] == {"Ref": cloud.logical_id(stack.site.bucket)}
    assert files["Exclude"] == [CONFIG_FILE]  # neither uploaded nor pruned
    assert files["DistributionPaths"] == ["/*"]
    (key,) = files["SourceObjectKeys"]
    deployed = sorted(path.name for path in cloud.asset_dir(key).iterdir())
    local = sorted(path.name for path in (REPO / "site").iterdir() if path.name != CONFIG_FILE)
    assert deployed == local
    assert "index.html" in deployed


def test_site_url_is_the_distribution_origin_over_https(cloud: Cloud) -> None:
    stack = cloud.site
    value = cloud.template_json(stack)["Outputs"][stack_outputs.SITE_URL]["Value"]
    distribution = cloud.logical_id(stack.site.distribution)
    assert value == {"Fn::Join": ["", ["https://", {"Fn::GetAtt": [distribution, "DomainName"]}]]}
