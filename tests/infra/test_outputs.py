"""The stack outputs map onto image-etl's settings, so one setting can point everything at a deployment."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

import pytest

from image_etl.settings import Settings, load_settings
from image_etl.stack_outputs import (
    API_URL,
    SETTINGS_FIELDS,
    environment_from_outputs_file,
    settings_fields_from_outputs,
    stack_ids,
)
from tests.infra.conftest import Cloud


def test_outputs_of_a_deployment_become_settings_fields() -> None:
    described = {
        "UploadBucketName": "imageetl-processing-uploads4f6eb0fd-abc",
        "UploadPrefix": "uploads/",
        "TableName": "ImageEtl-Processing-ImagesTableA82C56A4-XYZ",
        "QueueUrl": "https://sqs.eu-west-1.amazonaws.com/111111111111/q",
        "Region": "eu-west-1",
        "ApiUrl": "https://abc.execute-api.eu-west-1.amazonaws.com/v1",
        "SiteUrl": "https://d111.cloudfront.net",
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
        "site_url": "https://d111.cloudfront.net",
    }


def test_every_mapped_field_is_a_settings_field() -> None:
    assert set(SETTINGS_FIELDS.values()) <= {field.name for field in fields(Settings)}
    assert {
        "upload_bucket",
        "variants_bucket",
        "datasets_bucket",
        "table_name",
        "queue_url",
        "dlq_url",
    } <= set(SETTINGS_FIELDS.values())


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
    assert API_URL in cloud.template_json(cloud.upload_api)["Outputs"]


def test_the_outputs_file_of_a_deploy_points_the_settings_at_aws(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deployed = {
        "ImageEtl-UploadSite": {"SiteUrl": "https://d111.cloudfront.net", "DistributionId": "E1"},
        "ImageEtl-Processing": {
            "UploadBucketName": "up-1",
            "UploadPrefix": "uploads/",
            "VariantsBucketName": "var-1",
            "VariantsPrefix": "variants/",
            "DatasetsBucketName": "data-1",
            "DatasetsPrefix": "datasets/",
            "TableName": "table-1",
            "QueueUrl": "https://sqs.eu-west-1.amazonaws.com/111111111111/q-1",
            "DlqUrl": "https://sqs.eu-west-1.amazonaws.com/111111111111/dlq-1",
            "Region": "eu-west-1",
        },
        "ImageEtl-UploadApi": {"ApiUrl": "https://a1.execute-api.eu-west-1.amazonaws.com/v1"},
    }
    path = tmp_path / "cdk-outputs.json"
    path.write_text(json.dumps(deployed))
    for name, value in environment_from_outputs_file(path).items():
        monkeypatch.setenv(name, value)
    settings = load_settings(tmp_path / "no-local-stack")
    assert settings.aws_endpoint_url is None
    assert (settings.upload_bucket, settings.variants_bucket, settings.datasets_bucket) == (
        "up-1",
        "var-1",
        "data-1",
    )
    assert (settings.table_name, settings.region) == ("table-1", "eu-west-1")
    assert settings.dlq_url.endswith("/dlq-1")
    assert settings.api_url == "https://a1.execute-api.eu-west-1.amazonaws.com/v1"
    assert settings.site_url == "https://d111.cloudfront.net"
