"""Settings come from the environment, then the running stack, then the local defaults."""

from __future__ import annotations

import json
import os
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from image_etl.dataset.rules import FIRST_DAY
from image_etl.settings import FIRST_DAY_FILE, load_settings, local_first_day, project_root


def test_defaults_describe_the_local_stack_that_would_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("IMAGE_ETL_AWS_PORT", raising=False)
    settings = load_settings(tmp_path)
    assert settings.aws_endpoint_url == "http://127.0.0.1:4566" and not settings.running
    assert settings.queue_url == "http://127.0.0.1:4566/123456789012/image-etl-uploads"
    assert settings.data_dir == str(tmp_path.resolve()) and settings.is_local


def test_a_running_stack_file_sets_the_port(tmp_path: Path) -> None:
    (tmp_path / "stack.json").write_text(json.dumps({"pid": os.getpid(), "aws_port": 4999}))
    settings = load_settings(tmp_path)
    assert settings.running and settings.aws_endpoint_url == "http://127.0.0.1:4999"
    assert settings.dlq_url.startswith("http://127.0.0.1:4999/")


def test_a_stale_stack_file_is_ignored(tmp_path: Path) -> None:
    (tmp_path / "stack.json").write_text(json.dumps({"pid": 2**22 + 12345, "aws_port": 4999}))
    assert not load_settings(tmp_path).running
    assert load_settings(tmp_path).aws_endpoint_url.endswith(":4566")


def test_environment_points_everything_at_aws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMAGE_ETL_AWS_ENDPOINT_URL", "aws")
    monkeypatch.setenv("IMAGE_ETL_UPLOAD_BUCKET", "prod-uploads-1a2b")
    monkeypatch.setenv("IMAGE_ETL_TABLE_NAME", "ImageProcessing-Images")
    settings = load_settings(tmp_path)
    assert settings.aws_endpoint_url is None and not settings.is_local
    assert (settings.upload_bucket, settings.table_name) == ("prod-uploads-1a2b", "ImageProcessing-Images")


def test_the_first_upload_day_is_the_stacks_first_start_kept_across_restarts_or_the_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("IMAGE_ETL_FIRST_DAY", raising=False)
    new, old = tmp_path / "new", tmp_path / "old"
    new.mkdir(), old.mkdir()
    assert local_first_day(new, has_records=False, today=date(2026, 12, 1)) == "2026-12-01"
    # A later start keeps the day the data dir began with, records or not.
    assert local_first_day(new, has_records=True, today=date(2026, 12, 9)) == "2026-12-01"
    # A data dir with records from before the day was kept must not move them: the old fixed start.
    assert local_first_day(old, has_records=True) == FIRST_DAY
    assert (old / FIRST_DAY_FILE).read_text().strip() == FIRST_DAY

    (new / "stack.json").write_text(json.dumps({"pid": os.getpid(), "first_day": "2026-12-01"}))
    assert load_settings(new).first_day == "2026-12-01"
    assert load_settings(tmp_path).first_day == FIRST_DAY  # no stack running: the fixed default
    monkeypatch.setenv("IMAGE_ETL_FIRST_DAY", "2026-11-20")
    assert load_settings(new).first_day == "2026-11-20"
    monkeypatch.setenv("IMAGE_ETL_FIRST_DAY", "last tuesday")
    with pytest.raises(ValueError, match=r"IMAGE_ETL_FIRST_DAY.*2026-11-26.*last tuesday"):
        load_settings(new)


def test_project_root_is_found_from_a_sub_folder() -> None:
    here = Path(__file__).parent
    assert (project_root(here) / "pyproject.toml").is_file()
    assert project_root(here) == here.parents[1]


def test_one_setting_points_everything_at_a_deployed_stack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3
    from moto import mock_aws

    from image_etl.stack_outputs import stack_ids

    outputs = {
        "UploadSite": {"SiteUrl": "https://d111.cloudfront.net"},
        "Processing": {
            "UploadBucketName": "imageetl-uploads-abc",
            "UploadPrefix": "uploads/",
            "VariantsBucketName": "imageetl-variants-abc",
            "TableName": "ImageEtl-Processing-Images",
            "QueueUrl": "https://sqs.eu-west-1.amazonaws.com/111122223333/q",
            "Region": "eu-west-1",
        },
        "UploadApi": {"ApiUrl": "https://abc.execute-api.eu-west-1.amazonaws.com/prod"},
    }
    with mock_aws():
        cloudformation = boto3.client("cloudformation", region_name="eu-west-1")
        for name in stack_ids("Prod").all():
            values = outputs[name.split("-", 1)[1]]
            template = {
                "Resources": {"Nothing": {"Type": "AWS::CloudFormation::WaitConditionHandle"}},
                "Outputs": {key: {"Value": value} for key, value in values.items()},
            }
            cloudformation.create_stack(StackName=name, TemplateBody=json.dumps(template))
        monkeypatch.delenv("IMAGE_ETL_FIRST_DAY", raising=False)
        monkeypatch.setenv("IMAGE_ETL_STACK", "Prod")
        monkeypatch.setenv("AWS_REGION", "eu-west-1")
        settings = load_settings(tmp_path)

    assert settings.aws_endpoint_url is None and not settings.is_local
    assert (settings.upload_bucket, settings.table_name, settings.region) == (
        "imageetl-uploads-abc",
        "ImageEtl-Processing-Images",
        "eu-west-1",
    )
    assert settings.api_url.endswith("/prod") and settings.site_url == "https://d111.cloudfront.net"
    # No upload predates the stacks: partitions start the day they were created (moto: today).
    assert settings.first_day == datetime.now(UTC).date().isoformat()
