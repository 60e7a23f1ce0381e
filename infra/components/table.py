"""The image-record table: one item per source object, with the indexes its shape lists."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from constructs import Construct

from image_etl.resource_shapes import TableShape

_STRING = dynamodb.AttributeType.STRING


class ImageTable(Construct):
    """An on-demand table with point-in-time recovery, keyed and indexed as ``shape`` says.

    Kept when the stack is destroyed (RETAIN): the records are the product.
    """

    def __init__(self, scope: Construct, id: str, *, shape: TableShape) -> None:
        super().__init__(scope, id)
        self.table = dynamodb.Table(
            self,
            "Table",
            partition_key=dynamodb.Attribute(name=shape.partition_key, type=_STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            removal_policy=RemovalPolicy.RETAIN,
        )
        for index in shape.indexes:
            self.table.add_global_secondary_index(
                index_name=index.name,
                partition_key=dynamodb.Attribute(name=index.partition_key, type=_STRING),
                sort_key=dynamodb.Attribute(name=index.sort_key, type=_STRING),
                projection_type=dynamodb.ProjectionType.ALL,
            )
