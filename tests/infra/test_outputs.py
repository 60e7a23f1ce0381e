"""The stack outputs map onto image-etl's settings, so one setting can point everything at a deployment."""

from __future__ import annotations

from dataclasses import fields

import pytest

from image_etl.settings import Settings
from infra import outputs
from infra.outputs import SETTINGS_FIELDS, settings_fields_from_outputs, stack_ids
from tests.infra.conftest import Cloud


def test_outputs_of_a_deployment_become_settings_fields() -> None:
    described = {
        "UploadBucketName": "imageetl-processing-uploads4f6eb0fd-abc",
        "UploadPrefix": "uploads/",
        "TableName": "ImageEtl-Processing-ImagesTableA82C56A4-XYZ",
        "QueueUrl": "https://sqs.eu-west-1.amazonaws.com/111111111111/q",
        "Region": "eu-west-1",
        "ApiUrl": "https://abc.execute-api.eu-west-1.amazonaws.com/v1",
        "SiteUrl": "https://d111.cloudfront.net/",
        "ResizeFunctionName": "not a setting",
        "ExportsOutputRefUploads4F6EB0FDCD8CB653": "CDK's cross-stack export, not a setting",
    }
    assert settings_fields_from_outputs(described) == {
        "upload_bucket": "imageetl-processing-uploads4f6eb0fd-abc",
        "upload_prefix": "uploads/",
        "table_name": "ImageEtl-Processing-ImagesTableA82C56A4-XYZ",
        "queue_url": "https://sqs.eu-west-1.amazonaws.com/111111111111/q",
        "region": "eu-west-1",
        "api_url": "https://abc.execute-api.eu-west-1.amazonaws.com/v1",
        "site_url": "https://d111.cloudfront.net/",
    }


def test_every_mapped_field_is_a_settings_field() -> None:
    assert set(SETTINGS_FIELDS.values()) <= {field.name for field in fields(Settings)}
    assert {"upload_bucket", "variants_bucket", "datasets_bucket", "table_name", "queue_url", "dlq_url"} <= set(
        SETTINGS_FIELDS.values()
    )


def test_stack_names_follow_the_prefix_in_deploy_order() -> None:
    assert stack_ids("Dev").all() == ("Dev-UploadSite", "Dev-Processing", "Dev-UploadApi")


@pytest.mark.slow
def test_every_settings_output_is_declared_by_a_stack_without_an_export(cloud: Cloud) -> None:
    declared = {}
    for stack in cloud.stacks:
        assert stack.stack_name in stack_ids().all()
        declared.update(cloud.template_json(stack)["Outputs"])
    assert set(SETTINGS_FIELDS) <= set(declared)
    assert all("Export" not in declared[key] for key in SETTINGS_FIELDS)
    assert outputs.API_URL in cloud.template_json(cloud.upload_api)["Outputs"]
