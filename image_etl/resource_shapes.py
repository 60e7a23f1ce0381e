"""Resource names and shapes: the one source of truth for the CDK stacks and the local stack.

Everything the cloud and the local emulation must agree on lives here: prefixes, the queue's
redrive and visibility, the table's keys and index, the resize function's limits and the
environment variables its handler reads. `infra/` builds CloudFormation from these values and
`image_etl.local` creates the same resources in moto from them, and a parity test compares both.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from lambda_resizer.recipe import DEFAULT_RECIPE

UPLOAD_PREFIX = "uploads/"
VARIANTS_PREFIX = "variants/"
#: Datasets: daily record files, the manifest's Iceberg table (``<prefix>iceberg/manifest``) and the
#: report and ImageFolder export of each version (``<prefix>versions/<version>/``).
DATASETS_PREFIX = "datasets/"
#: The keys everything signs with on the local stack (boto3's keyword names): the emulator takes any,
#: and a developer's real keys must never be sent to it.
LOCAL_CREDENTIALS: dict[str, str] = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
#: The same keys as the environment variables boto3's default chain reads (child processes, handlers).
LOCAL_CREDENTIAL_VARIABLES: dict[str, str] = {
    "AWS_ACCESS_KEY_ID": LOCAL_CREDENTIALS["aws_access_key_id"],
    "AWS_SECRET_ACCESS_KEY": LOCAL_CREDENTIALS["aws_secret_access_key"],
}
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
    """Limits of the resize Lambda and the defaults its handler applies.

    There are two tiers of the same handler code and recipe: ``standard`` takes every upload and
    hands an image whose estimated decoding memory is over its budget to ``large`` (its own queue,
    more memory), instead of being killed trying (see `LARGE_FUNCTION`).
    """

    timeout_s: int = 60
    memory_mb: int = 1024
    tier: str = "standard"
    #: No image is started with less time left than this (the rest of the batch is handed back):
    #: the largest upload the pixel cap allows takes ~2 s on one x86 core here, and a 1 GB Lambda
    #: has about 0.6 of an arm64 core.
    start_margin_s: int = 15
    max_object_bytes: int = 50 * 1024 * 1024
    # The recipe's own defaults: the core's library use and the deployed function agree by construction.
    max_pixels: int = DEFAULT_RECIPE.max_pixels
    output_formats: tuple[str, ...] = DEFAULT_RECIPE.formats
    jpeg_quality: int = DEFAULT_RECIPE.jpeg_quality
    #: Pillow keeps up to this many freed 1 MiB image blocks for the next image instead of faulting
    #: in fresh pages (about 9% faster on the benchmark photos; at most 32 MiB held between images).
    pillow_blocks_max: int = 32
    pillow_block_size: str = "1m"


#: The large-image tier: 4 GB (about 2.3 arm64 cores) and 5 minutes, one image per invocation.
LARGE_FUNCTION = ResizeFunctionShape(tier="large", timeout_s=300, memory_mb=4096, start_margin_s=120)


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
class IndexShape:
    """A global secondary index of the image-record table: string keys, every attribute projected."""

    name: str
    partition_key: str
    sort_key: str


#: "Records processed after T" with one Query per shard. The partition key `processed_shard` is a hash
#: of `image_id` into `TableShape.index_shards` values, so writes spread over that many index
#: partitions instead of piling onto one hot key (see README).
PROCESSED_INDEX = IndexShape(name="by_processed_at", partition_key="processed_shard", sort_key="processed_at")
#: "Recent images with label L, newest first" for the upload API (sparse: unlabelled items are absent).
#: Sorted by processed_at like the unfiltered listing, so both orders agree.
LABEL_INDEX = IndexShape(name="by_label", partition_key="label", sort_key="processed_at")


@dataclass(frozen=True)
class TableShape:
    """The image-record table: one item per source object, keyed by `image_id`, and its indexes."""

    name: str
    partition_key: str = "image_id"
    index_shards: int = 16
    #: Every index the table has, in any order; the CDK table and the local one are built by looping
    #: over them. It must hold the two the code queries (the properties below find them by name).
    indexes: tuple[IndexShape, ...] = (PROCESSED_INDEX, LABEL_INDEX)

    @property
    def processed_index(self) -> str:
        """Return the name of the processed-at index (the listing and the pipelines query it)."""
        return self._index_named(PROCESSED_INDEX.name).name

    @property
    def label_index(self) -> str:
        """Return the name of the label index (the upload API's listing by label queries it)."""
        return self._index_named(LABEL_INDEX.name).name

    def _index_named(self, name: str) -> IndexShape:
        for index in self.indexes:
            if index.name == name:
                return index
        have = ", ".join(index.name for index in self.indexes) or "none"
        raise ValueError(f"table {self.name} has no index {name} (its indexes: {have})")


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


#: What a signed-in user may do; each group grants some of these (see :class:`IdentityShape`).
UPLOAD = "upload"
READ = "read"


@dataclass(frozen=True)
class GroupShape:
    """A user-pool group and the API permissions its members get."""

    name: str
    description: str
    permissions: tuple[str, ...]


@dataclass(frozen=True)
class IdentityShape:
    """Who may sign in, how, and what each group may do: the Cognito user pool and the page's client.

    The same values build the CDK user pool and the local stack's pool in the emulator, and set the
    upload API's group rules, so the three cannot drift.
    """

    pool_name: str = "image-etl-users"
    client_name: str = "image-etl-upload-page"
    #: Users are created by an admin (`image-etl users add`); the CDK context flag ``selfSignUp`` opens it.
    self_sign_up: bool = False
    password_min_length: int = 12
    #: A temporary password (from `users add`) must be replaced at first sign-in within this many days.
    temporary_password_days: int = 7
    #: TOTP only (no SMS): optional, so a team can require it per user without locking the pool.
    mfa: str = "OPTIONAL"
    access_token_minutes: int = 60
    id_token_minutes: int = 60
    refresh_token_days: int = 30
    #: SRP from the page (the password never leaves the browser) and refresh; nothing else.
    auth_flows: tuple[str, ...] = ("ALLOW_USER_SRP_AUTH", "ALLOW_REFRESH_TOKEN_AUTH")
    #: The scope every access token of the pool's own sign-in carries; the API asks for it, so it takes
    #: access tokens and refuses ID tokens.
    api_scope: str = "aws.cognito.signin.user.admin"
    groups: tuple[GroupShape, ...] = (
        GroupShape("uploaders", "May create uploads and read records and variants", (UPLOAD, READ)),
        GroupShape("viewers", "May read records and variants", (READ,)),
    )
    #: The local stack's ready-made user, in every group, with a random password in the data dir.
    demo_user: str = "demo"

    def groups_with(self, permission: str) -> tuple[str, ...]:
        """Return the names of the groups whose members have ``permission``."""
        return tuple(group.name for group in self.groups if permission in group.permissions)

    @property
    def group_names(self) -> tuple[str, ...]:
        return tuple(group.name for group in self.groups)


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
    identity: IdentityShape = field(default_factory=IdentityShape)
    catalog: CatalogShape = field(default_factory=CatalogShape)
    #: The large-image tier's queue (own DLQ) and function; only the standard function sends to it.
    large_queue: QueueShape | None = None
    large_function: ResizeFunctionShape = LARGE_FUNCTION


LOCAL = StackNames(
    upload_bucket="image-etl-uploads",
    variants_bucket="image-etl-variants",
    datasets_bucket="image-etl-datasets",
    queue=QueueShape(name="image-etl-uploads", dlq_name="image-etl-uploads-dlq"),
    table=TableShape(name="image-etl-images"),
    large_queue=QueueShape(
        name="image-etl-uploads-large",
        dlq_name="image-etl-uploads-large-dlq",
        visibility_timeout_s=6 * LARGE_FUNCTION.timeout_s,
        batch_size=1,
    ),
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
    large_queue_url: str | None = None,
    large_function: ResizeFunctionShape | None = None,
) -> dict[str, str]:
    """Return the environment variables the resize handler reads (`lambda_resizer.config`).

    :param upload_prefix: keys outside it are ignored by the handler.
    :param variants_bucket: where variants are written (a bucket with no notification).
    :param variants_prefix: key prefix of the variants.
    :param table_name: the image-record table (a CloudFormation token in the CDK app).
    :param table: shape of the table, for the index shard count.
    :param function: limits of the function.
    :param queue: the function's queue, for the receive count at which a message is dead-lettered.
    :param large_queue_url: the standard tier only: where it hands images too large for itself.
    :param large_function: the standard tier only: the large tier, whose memory size it compares with.
    :return: name -> value, identical for the Lambda and the local worker.
    """
    handover = (
        {"LARGE_QUEUE_URL": large_queue_url, "LARGE_MEMORY_MB": str(large_function.memory_mb)}
        if large_queue_url and large_function
        else {}
    )
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
        "RESIZER_TIER": function.tier,
        "PILLOW_BLOCKS_MAX": str(function.pillow_blocks_max),
        "PILLOW_BLOCK_SIZE": function.pillow_block_size,
        **handover,
        "POWERTOOLS_SERVICE_NAME": "image-etl-resizer",
    }


def upload_api_environment(
    *,
    upload_bucket: str,
    upload_prefix: str,
    variants_bucket: str,
    table_name: str,
    allowed_origin: str,
    app_client_id: str,
    table: TableShape,
    api: UploadApiShape,
    identity: IdentityShape,
) -> dict[str, str]:
    """Return the environment variables the upload API handler reads (`lambda_upload_api`).

    :param allowed_origin: the one origin CORS allows (the site's URL, no trailing slash).
    :param app_client_id: the user-pool app client whose tokens the API accepts (a token in AWS).
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
        "APP_CLIENT_ID": app_client_id,
        "UPLOAD_GROUPS": ",".join(identity.groups_with(UPLOAD)),
        "READ_GROUPS": ",".join(identity.groups_with(READ)),
        "POWERTOOLS_SERVICE_NAME": "image-etl-upload-api",
    }


def site_config(
    *,
    api_url: str,
    api: UploadApiShape,
    region: str,
    user_pool_id: str,
    user_pool_client_id: str,
    cognito_endpoint: str | None = None,
    sign_in_hint: str | None = None,
) -> dict[str, object]:
    """Return the upload page's ``config.json``: where the API and the sign-in are and what it accepts.

    :param api_url: the API's base URL (a deploy-time token in the CDK app), no trailing slash.
    :param cognito_endpoint: where the page sends its Cognito calls; default Cognito's own regional
        endpoint (the local stack passes the emulator's).
    :param sign_in_hint: a line the sign-in form shows (the local stack says how to sign in).
    """
    config: dict[str, object] = {
        "apiUrl": api_url,
        "maxUploadBytes": api.max_upload_bytes,
        "acceptedTypes": list(ACCEPTED_IMAGE_TYPES),
        "cognito": {
            "region": region,
            "userPoolId": user_pool_id,
            "clientId": user_pool_client_id,
            "endpoint": cognito_endpoint or cognito_idp_endpoint(region),
        },
    }
    if sign_in_hint:
        config["signInHint"] = sign_in_hint
    return config


def cognito_idp_endpoint(region: str) -> str:
    """Return Cognito's regional endpoint, the one place its host name is written."""
    return f"https://cognito-idp.{region}.amazonaws.com/"


def token_issuer(region: str, user_pool_id: str) -> str:
    """Return the ``iss`` claim of the pool's tokens (the emulator's tokens name the same AWS host)."""
    return f"{cognito_idp_endpoint(region)}{user_pool_id}"


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
