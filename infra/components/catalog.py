"""DatasetCatalog: the Glue database of the manifest table, an Athena workgroup over it, and the roles
that read it (Athena) or write it (the pipeline)."""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_athena as athena
from aws_cdk import aws_glue as glue
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from image_etl.resource_shapes import CatalogShape, glue_database_input, warehouse_location
from infra.components.storage import private_bucket
from infra.nag import acknowledge


class DatasetCatalog(Construct):
    """Glue database (location: the datasets bucket's warehouse prefix), Athena workgroup with its own
    encrypted result bucket (settings enforced, bytes scanned capped per query), reader and pipeline roles.

    :param datasets: the datasets bucket holding the table's files.
    :param datasets_prefix: its key prefix (``datasets/``).
    :param database_name: the Glue database (one per deployment: ``glue_database_name(prefix)``).
    :param workgroup_name: the Athena workgroup's name.
    :param access_logs: where the result bucket's access logs go.
    :param shape: table name, warehouse prefix, query limits.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        datasets: s3.IBucket,
        datasets_prefix: str,
        database_name: str,
        workgroup_name: str,
        access_logs: s3.IBucket,
        shape: CatalogShape,
    ) -> None:
        super().__init__(scope, id)
        stack = Stack.of(self)
        self.database_name = database_name
        self.warehouse = warehouse_location(datasets.bucket_name, datasets_prefix, shape)
        self.table_location = f"{self.warehouse}{shape.table}"
        database_input = glue_database_input(name=database_name, location=self.warehouse)
        self.database = glue.CfnDatabase(
            self,
            "Database",
            catalog_id=stack.account,
            database_input=glue.CfnDatabase.DatabaseInputProperty(
                name=database_input["Name"],
                location_uri=database_input["LocationUri"],
                description=database_input["Description"],
            ),
        )
        self.results = private_bucket(self, "AthenaResults", access_logs=access_logs)
        self.results.add_lifecycle_rule(expiration=Duration.days(shape.results_retention_days))
        self.workgroup = athena.CfnWorkGroup(
            self,
            "WorkGroup",
            name=workgroup_name,
            description="image-etl: queries over the dataset manifest (Iceberg)",
            state="ENABLED",
            recursive_delete_option=True,
            work_group_configuration=athena.CfnWorkGroup.WorkGroupConfigurationProperty(
                enforce_work_group_configuration=True,
                publish_cloud_watch_metrics_enabled=True,
                bytes_scanned_cutoff_per_query=shape.bytes_scanned_cutoff_per_query,
                engine_version=athena.CfnWorkGroup.EngineVersionProperty(
                    selected_engine_version="Athena engine version 3"
                ),
                result_configuration=athena.CfnWorkGroup.ResultConfigurationProperty(
                    output_location=f"s3://{self.results.bucket_name}/results/",
                    encryption_configuration=athena.CfnWorkGroup.EncryptionConfigurationProperty(
                        encryption_option="SSE_S3"
                    ),
                ),
            ),
        )
        catalog_arn = stack.format_arn(service="glue", resource="catalog")
        database_arn = stack.format_arn(service="glue", resource="database", resource_name=database_name)
        tables_arn = stack.format_arn(service="glue", resource="table", resource_name=f"{database_name}/*")
        workgroup_arn = stack.format_arn(service="athena", resource="workgroup", resource_name=workgroup_name)
        warehouse_keys = f"{datasets_prefix}{shape.warehouse_prefix}*"
        account = iam.AccountRootPrincipal()

        self.reader_role = iam.Role(
            self, "ReaderRole", assumed_by=account, description="Query the dataset manifest with Athena"
        )
        iam.Grant.add_to_principal(
            grantee=self.reader_role,
            actions=["athena:StartQueryExecution", "athena:GetQueryExecution", "athena:GetQueryResults",
                     "athena:StopQueryExecution", "athena:GetWorkGroup"],
            resource_arns=[workgroup_arn],
        )  # fmt: skip
        iam.Grant.add_to_principal(
            grantee=self.reader_role,
            actions=["glue:GetDatabase", "glue:GetTable", "glue:GetTables", "glue:GetPartitions"],
            resource_arns=[catalog_arn, database_arn, tables_arn],
        )
        s3.BucketGrants.from_bucket(datasets).actions_on_bucket_and_object_keys(
            self.reader_role, warehouse_keys, "s3:GetObject", "s3:ListBucket"
        )
        self.results.grant_read(self.reader_role)
        self.results.grant_put(self.reader_role)

        self.pipeline_role = iam.Role(
            self, "PipelineRole", assumed_by=account, description="Write the dataset manifest table (Dagster)"
        )
        iam.Grant.add_to_principal(
            grantee=self.pipeline_role,
            actions=[
                "glue:GetDatabase",
                "glue:GetTable",
                "glue:GetTables",
                "glue:CreateTable",
                "glue:UpdateTable",
            ],
            resource_arns=[catalog_arn, database_arn, tables_arn],
        )
        datasets.grant_read_write(self.pipeline_role, f"{datasets_prefix}*")
        datasets.grant_delete(self.pipeline_role, f"{datasets_prefix}*")
        for role in (self.reader_role, self.pipeline_role):
            acknowledge(
                role,
                "AwsSolutions-IAM5",
                "Objects under the datasets prefix (the table's files), the Glue tables of this database, "
                "query results in the workgroup's own bucket.",
                findings=[
                    r"Resource::arn:<AWS::Partition>:glue:.*:table/.*/\*",
                    r"Resource::<.*Datasets[0-9A-F]{8}\.Arn>/.*\*",
                    r"Resource::<.*AthenaResults[0-9A-F]{8}\.Arn>/\*",
                    r"Action::s3:(GetObject|GetBucket|List|DeleteObject|Abort|PutObjectLegalHold|PutObjectRetention|PutObjectTagging|PutObjectVersionTagging)\*",
                    r"Action::s3:\*Object\*?",
                ],
            )
