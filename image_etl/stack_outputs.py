"""Stack names and output keys of a deployment, and how they map onto `image_etl.settings.Settings`.

Imports nothing from the CDK, so the settings loader can use it to read a deployed stack: list
the stacks of a prefix (:func:`stack_ids`), call CloudFormation's DescribeStacks for each, merge
their ``Outputs`` (OutputKey -> OutputValue) and pass them to :func:`settings_fields_from_outputs`.
Output keys are plain CfnOutput ids at stack level (no exports, no hash suffix), so they are stable
across deployments and refactors of the constructs behind them.
"""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DEFAULT_PREFIX = "ImageEtl"

# ImageProcessingStack
UPLOAD_BUCKET = "UploadBucketName"
UPLOAD_PREFIX = "UploadPrefix"
VARIANTS_BUCKET = "VariantsBucketName"
VARIANTS_PREFIX = "VariantsPrefix"
DATASETS_BUCKET = "DatasetsBucketName"
DATASETS_PREFIX = "DatasetsPrefix"
TABLE_NAME = "TableName"
QUEUE_URL = "QueueUrl"
DLQ_URL = "DlqUrl"
REGION = "Region"
RESIZE_FUNCTION = "ResizeFunctionName"
GLUE_DATABASE = "GlueDatabaseName"
MANIFEST_TABLE_LOCATION = "ManifestTableLocation"
ATHENA_WORKGROUP = "AthenaWorkGroupName"
ATHENA_RESULTS_BUCKET = "AthenaResultsBucketName"
DATASET_READER_ROLE = "DatasetReaderRoleArn"
DATASET_PIPELINE_ROLE = "DatasetPipelineRoleArn"
LARGE_QUEUE_URL = "LargeQueueUrl"  # the large-image tier's queue, its DLQ and its function
LARGE_DLQ_URL = "LargeDlqUrl"
LARGE_RESIZE_FUNCTION = "LargeResizeFunctionName"
# UploadApiStack
API_URL = "ApiUrl"
UPLOAD_API_FUNCTION = "UploadApiFunctionName"
USER_POOL_ID = "UserPoolId"
USER_POOL_CLIENT_ID = "UserPoolClientId"
# UploadSiteStack
SITE_URL = "SiteUrl"
SITE_BUCKET = "SiteBucketName"
DISTRIBUTION_ID = "DistributionId"

#: Output key -> the `Settings` field it fills.
SETTINGS_FIELDS: dict[str, str] = {
    UPLOAD_BUCKET: "upload_bucket",
    UPLOAD_PREFIX: "upload_prefix",
    VARIANTS_BUCKET: "variants_bucket",
    VARIANTS_PREFIX: "variants_prefix",
    DATASETS_BUCKET: "datasets_bucket",
    DATASETS_PREFIX: "datasets_prefix",
    TABLE_NAME: "table_name",
    QUEUE_URL: "queue_url",
    DLQ_URL: "dlq_url",
    REGION: "region",
    GLUE_DATABASE: "glue_database",
    ATHENA_WORKGROUP: "athena_workgroup",
    API_URL: "api_url",
    SITE_URL: "site_url",
    USER_POOL_ID: "user_pool_id",
    USER_POOL_CLIENT_ID: "user_pool_client_id",
}


@dataclass(frozen=True)
class StackIds:
    """CloudFormation stack names of one deployment, in deploy order."""

    site: str
    processing: str
    upload_api: str

    def all(self) -> tuple[str, str, str]:
        return (self.site, self.processing, self.upload_api)


def stack_ids(prefix: str = DEFAULT_PREFIX) -> StackIds:
    """Return the stack names of the deployment called ``prefix`` (``cdk deploy -c stackPrefix=...``)."""
    return StackIds(
        site=f"{prefix}-UploadSite", processing=f"{prefix}-Processing", upload_api=f"{prefix}-UploadApi"
    )


def settings_fields_from_outputs(outputs: Mapping[str, str]) -> dict[str, str]:
    """Return the `Settings` fields that the stacks' outputs set (field name -> value).

    :param outputs: OutputKey -> OutputValue, merged over the deployment's stacks; keys that are not
        settings (function names, CDK's own cross-stack exports) are ignored.
    :return: only the fields present in ``outputs``; the caller keeps its defaults for the rest and
        sets ``aws_endpoint_url`` to None (AWS's own endpoints).
    """
    return {field: outputs[key] for key, field in SETTINGS_FIELDS.items() if key in outputs}


def environment_from_outputs_file(path: Path) -> dict[str, str]:
    """Return the IMAGE_ETL_* variables that point image-etl at the deployment in ``path``.

    :param path: the file `make deploy` writes (``cdk deploy --outputs-file``): stack -> key -> value.
    """
    merged: dict[str, str] = {}
    for stack_outputs in json.loads(path.read_text()).values():
        merged.update(stack_outputs)
    fields = settings_fields_from_outputs(merged)
    # AWS's own endpoints and the usual credential chain, not the local emulator.
    return {"IMAGE_ETL_AWS_ENDPOINT_URL": "aws"} | {f"IMAGE_ETL_{k.upper()}": v for k, v in fields.items()}


def main(argv: list[str] | None = None) -> None:
    """Print ``export`` lines for a shell: ``eval "$(make -s stack-env)"``."""
    path = Path((argv if argv is not None else sys.argv[1:])[0])
    for name, value in environment_from_outputs_file(path).items():
        print(f"export {name}={shlex.quote(value)}")


if __name__ == "__main__":
    main()
