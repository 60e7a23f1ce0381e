"""Resource names and shapes: the one source of truth for the CDK stacks and the local stack.

Everything the cloud and the local emulation must agree on lives here: prefixes, the queue's
redrive and visibility, the table's keys and index, the resize function's limits and the
environment variables its handler reads. `infra/` builds CloudFormation from these values and
`image_etl.local` creates the same resources in moto from them, and a parity test compares both.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

UPLOAD_PREFIX = "uploads/"
VARIANTS_PREFIX = "variants/"
#: Datasets: daily record files, the manifest's Iceberg table (``<prefix>iceberg/manifest``) and the
#: report and ImageFolder export of each version (``<prefix>versions/<version>/``).
DATASETS_PREFIX = "datasets/"
#: S3 events that start a resize; the filter is the upload prefix, so variants (written to their
#: own bucket) can never trigger the function again.
NOTIFICATION_EVENTS: tuple[str, ...] = ("s3:ObjectCreated:*",)


#: Image types the upload API accepts and the page offers (the resizer reads all of them).
ACCEPTED_IMAGE_TYPES: tuple[str, ...] = (
    "image/jpeg",
    "image/png",
    "image/webp",
    "image/gif",
    "image/tiff",
    "image/bmp",
    "image/heic",
    "image/heif",
    "image/avif",
)


@dataclass(frozen=True)
class ResizeFunctionShape:
    """Limits of the resize Lambda and the defaults its handler applies."""

    timeout_s: int = 60
    memory_mb: int = 1024
    #: No image is started with less time left than this (the rest of the batch is handed back):
    #: the largest upload the pixel cap allows takes ~2 s on one x86 core here, and a 1 GB Lambda
    #: has about 0.6 of an arm64 core.
    start_margin_s: int = 15
    max_object_bytes: int = 50 * 1024 * 1024
    max_pixels: int = 100_000_000
    output_formats: tuple[str, ...] = ("jpeg",)
    jpeg_quality: int = 85


@dataclass(frozen=True)
class QueueShape:
    """The upload queue between S3 and the resize function, and the event source mapping's batching."""

    name: str
    dlq_name: str
    #: AWS asks for at least 6x the function timeout so a slow batch is not redelivered mid-flight.
    visibility_timeout_s: int = 6 * ResizeFunctionShape.timeout_s
    #: Receives before a message moves to the DLQ: transient AWS errors get retried this often.
    max_receive_count: int = 5
    retention_s: int = 4 * 24 * 3600
    dlq_retention_s: int = 14 * 24 * 3600
    batch_size: int = 10
    max_batching_window_s: int = 0
    long_poll_s: int = 20


@dataclass(frozen=True)
class TableShape:
    """The image-record table: one item per source object, keyed by `image_id`.

    The `by_processed_at` index answers "records processed after T" with one Query per shard.
    Its partition key is `processed_shard`, a hash of `image_id` into `index_shards` values, so
    writes spread over that many index partitions instead of piling onto one hot key (see README).
    """

    name: str
    partition_key: str = "image_id"
    processed_index: str = "by_processed_at"
    processed_index_partition_key: str = "processed_shard"
    processed_index_sort_key: str = "processed_at"
    index_shards: int = 16
    #: "Recent images with label L, newest first" for the upload API (sparse: unlabelled items are absent).
    #: Sorted by processed_at like the unfiltered listing, so both orders agree.
    label_index: str = "by_label"
    label_index_partition_key: str = "label"
    label_index_sort_key: str = "processed_at"


@dataclass(frozen=True)
class UploadApiShape:
    """The upload API function and the REST API in front of it."""

    timeout_s: int = 10
    memory_mb: int = 256
    presign_expiry_s: int = 300
    max_upload_bytes: int = ResizeFunctionShape.max_object_bytes
    throttle_rate_per_s: int = 20
    throttle_burst: int = 40
    #: Variant GET URLs handed to the page live this long.
    variant_url_expiry_s: int = 900


@dataclass(frozen=True)
class CatalogShape:
    """The Glue database that registers the manifest's Iceberg table, and the Athena workgroup over it."""

    #: The Glue database of the default deployment (others: :func:`glue_database_name` of their prefix).
    database: str = "image_etl"
    table: str = "manifest"
    #: Key prefix under the datasets prefix where the Iceberg tables' files live.
    warehouse_prefix: str = "iceberg/"
    #: Athena refuses (and bills no more than) a query that would scan more than this.
    bytes_scanned_cutoff_per_query: int = 10 * 1024**3
    #: Query results are kept this long in the workgroup's own bucket.
    results_retention_days: int = 30


def glue_database_name(stack_prefix: str) -> str:
    """Return a deployment's Glue database name: its stack prefix in snake case (``ImageEtl``: ``image_etl``).

    :param stack_prefix: the CDK ``stackPrefix`` (Glue names are lowercase, one per account and region).
    """
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", stack_prefix).replace("-", "_").lower()


def athena_workgroup_name(stack_prefix: str) -> str:
    """Return the Athena workgroup name of a deployment (``ImageEtl`` -> ``ImageEtl-datasets``)."""
    return f"{stack_prefix}-datasets"


def warehouse_location(bucket: str, datasets_prefix: str, catalog: CatalogShape) -> str:
    """Return the Glue database's location: where its Iceberg tables' files go (``s3://.../iceberg/``)."""
    return f"s3://{bucket}/{datasets_prefix}{catalog.warehouse_prefix}"


def manifest_table_location(bucket: str, datasets_prefix: str, catalog: CatalogShape) -> str:
    """Return the manifest table's location (the database's location + the table name)."""
    return f"{warehouse_location(bucket, datasets_prefix, catalog)}{catalog.table}"


def glue_database_input(*, name: str, location: str) -> dict[str, str]:
    """Return Glue's ``DatabaseInput`` for the datasets database (the CDK and the local stack use it).

    :param name: the database name (:func:`glue_database_name`).
    :param location: :func:`warehouse_location` (a CloudFormation token in the CDK app).
    """
    return {
        "Name": name,
        "LocationUri": location,
        "Description": "image-etl datasets: the manifest as an Apache Iceberg table",
    }


@dataclass(frozen=True)
class StackNames:
    """Concrete names of one deployment's resources (fixed locally, generated by CloudFormation in AWS)."""

    upload_bucket: str
    variants_bucket: str
    datasets_bucket: str
    queue: QueueShape
    table: TableShape
    upload_prefix: str = UPLOAD_PREFIX
    variants_prefix: str = VARIANTS_PREFIX
    datasets_prefix: str = DATASETS_PREFIX
    function: ResizeFunctionShape = field(default_factory=ResizeFunctionShape)
    upload_api: UploadApiShape = field(default_factory=UploadApiShape)
    catalog: CatalogShape = field(default_factory=CatalogShape)


LOCAL = StackNames(
    upload_bucket="image-etl-uploads",
    variants_bucket="image-etl-variants",
    datasets_bucket="image-etl-datasets",
    queue=QueueShape(name="image-etl-uploads", dlq_name="image-etl-uploads-dlq"),
    table=TableShape(name="image-etl-images"),
)


def resizer_environment(
    *,
    upload_prefix: str,
    variants_bucket: str,
    variants_prefix: str,
    table_name: str,
    table: TableShape,
    function: ResizeFunctionShape,
    queue: QueueShape,
) -> dict[str, str]:
    """Return the environment variables the resize handler reads (`lambda_resizer.config`).

    :param upload_prefix: keys outside it are ignored by the handler.
    :param variants_bucket: where variants are written (a bucket with no notification).
    :param variants_prefix: key prefix of the variants.
    :param table_name: the image-record table (a CloudFormation token in the CDK app).
    :param table: shape of the table, for the index shard count.
    :param function: limits of the function.
    :param queue: the upload queue, for the receive count at which a message is dead-lettered.
    :return: name -> value, identical for the Lambda and the local worker.
    """
    return {
        "UPLOAD_PREFIX": upload_prefix,
        "VARIANTS_BUCKET": variants_bucket,
        "VARIANTS_PREFIX": variants_prefix,
        "TABLE_NAME": table_name,
        "INDEX_SHARDS": str(table.index_shards),
        "MAX_OBJECT_BYTES": str(function.max_object_bytes),
        "MAX_PIXELS": str(function.max_pixels),
        "OUTPUT_FORMATS": ",".join(function.output_formats),
        "JPEG_QUALITY": str(function.jpeg_quality),
        "MAX_RECEIVE_COUNT": str(queue.max_receive_count),
        "START_MARGIN_MS": str(function.start_margin_s * 1000),
        "POWERTOOLS_SERVICE_NAME": "image-etl-resizer",
    }


def upload_api_environment(
    *,
    upload_bucket: str,
    upload_prefix: str,
    variants_bucket: str,
    table_name: str,
    allowed_origin: str,
    table: TableShape,
    api: UploadApiShape,
) -> dict[str, str]:
    """Return the environment variables the upload API handler reads (`lambda_upload_api`).

    :param allowed_origin: the one origin CORS allows (the site's URL, no trailing slash).
    """
    return {
        "UPLOAD_BUCKET": upload_bucket,
        "UPLOAD_PREFIX": upload_prefix,
        "VARIANTS_BUCKET": variants_bucket,
        "TABLE_NAME": table_name,
        "INDEX_SHARDS": str(table.index_shards),
        "PROCESSED_INDEX": table.processed_index,
        "LABEL_INDEX": table.label_index,
        "ALLOWED_ORIGIN": allowed_origin,
        "MAX_UPLOAD_BYTES": str(api.max_upload_bytes),
        "PRESIGN_EXPIRY_S": str(api.presign_expiry_s),
        "VARIANT_URL_EXPIRY_S": str(api.variant_url_expiry_s),
        "POWERTOOLS_SERVICE_NAME": "image-etl-upload-api",
    }


def site_config(*, api_url: str, api: UploadApiShape) -> dict[str, object]:
    """Return the upload page's ``config.json``: where the API is and what it accepts.

    :param api_url: the API's base URL (a deploy-time token in the CDK app), no trailing slash.
    """
    return {
        "apiUrl": api_url,
        "maxUploadBytes": api.max_upload_bytes,
        "acceptedTypes": list(ACCEPTED_IMAGE_TYPES),
    }


def upload_cors_rules(site_origin: str) -> list[dict[str, object]]:
    """Return the upload bucket's CORS rules: the page may POST/PUT presigned uploads, nobody else."""
    return [
        {
            "AllowedOrigins": [site_origin],
            "AllowedMethods": ["POST", "PUT"],
            "AllowedHeaders": ["*"],
            "ExposeHeaders": ["ETag"],
            "MaxAgeSeconds": 3000,
        }
    ]
