"""DatasetCatalog: the Glue database, an Athena workgroup that enforces its settings, its own encrypted
result bucket, and reader and pipeline roles limited to the table's files and database."""

from __future__ import annotations

import json

import pytest

from image_etl.resource_shapes import LOCAL
from tests.infra.conftest import Cloud

pytestmark = pytest.mark.slow


def test_workgroup_enforces_encrypted_results_in_its_own_bucket_and_caps_bytes_scanned(cloud: Cloud) -> None:
    stack = cloud.processing
    (workgroup,) = cloud.resources(stack, "AWS::Athena::WorkGroup").values()
    config = workgroup["Properties"]["WorkGroupConfiguration"]
    assert config["EnforceWorkGroupConfiguration"] is True
    assert config["BytesScannedCutoffPerQuery"] == LOCAL.catalog.bytes_scanned_cutoff_per_query
    assert config["EngineVersion"]["SelectedEngineVersion"] == "Athena engine version 3"
    result = config["ResultConfiguration"]
    assert result["EncryptionConfiguration"]["EncryptionOption"] == "SSE_S3"
    results_bucket = cloud.logical_id(stack.catalog.results)
    assert results_bucket in json.dumps(result["OutputLocation"])
    bucket = cloud.resources(stack, "AWS::S3::Bucket")[results_bucket]["Properties"]
    assert bucket["BucketEncryption"] and bucket["PublicAccessBlockConfiguration"]["BlockPublicAcls"] is True


def test_reader_may_query_and_read_but_not_write_and_the_pipeline_may_write_the_table(cloud: Cloud) -> None:
    stack = cloud.processing
    policies = cloud.resources(stack, "AWS::IAM::Policy")

    def actions_of(role: object) -> set[str]:
        logical = cloud.logical_id(role)
        found: set[str] = set()
        for policy in policies.values():
            if {"Ref": logical} in policy["Properties"].get("Roles", []):
                for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
                    actions = statement["Action"]
                    found |= set(actions if isinstance(actions, list) else [actions])
        return found

    reader = actions_of(stack.catalog.reader_role)
    pipeline = actions_of(stack.catalog.pipeline_role)
    assert {"athena:StartQueryExecution", "athena:GetQueryResults", "glue:GetTable", "s3:GetObject"} <= reader
    assert not {a for a in reader if a.startswith(("glue:Update", "glue:Create"))}
    assert not any(a.startswith("s3:Delete") for a in reader)
    assert {"glue:CreateTable", "glue:UpdateTable", "s3:GetObject*"} <= pipeline
    assert any(a.startswith("s3:DeleteObject") for a in pipeline)  # retention deletes unreferenced files
    assert not any(a == "*" or a.endswith(":*") for a in reader | pipeline)
