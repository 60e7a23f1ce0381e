"""Typed resources of the code location: the image-record table, the datasets bucket, the dataset policy.

All of them are built from ``image_etl.settings.load_settings()`` (IMAGE_ETL_* variables, else the
running local stack), the same source as ``image-etl info``, so one code location serves the
local stack and a deployed one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

import dagster as dg
from dagster_aws.s3 import S3PickleIOManager, S3Resource

from image_etl.dataset.rules import ManifestConfig, QualityThresholds, RetentionPolicy, SplitRatios
from image_etl.dataset.table import ManifestTable, glue_catalog
from image_etl.manifest import DatasetStore
from image_etl.resource_shapes import LOCAL, LOCAL_CREDENTIALS, manifest_table_location
from image_etl.settings import Settings, load_settings
from lambda_resizer.records import from_item, shard_names, to_item


class ImageRecordTable(dg.ConfigurableResource):
    """The DynamoDB table of image records, read through its ``by_processed_at`` index (never a Scan)."""

    table_name: str
    region: str = "us-east-1"
    #: Empty for AWS's own endpoint.
    endpoint_url: str = ""
    #: The index and its shard count are the table's (`image_etl.resource_shapes.TableShape`, via `Settings`).
    index_name: str
    index_shards: int
    #: Sign with dummy keys (the local emulation), instead of the default credential chain.
    local_credentials: bool = False

    @classmethod
    def from_settings(cls, settings: Settings) -> ImageRecordTable:
        return cls(
            table_name=settings.table_name,
            region=settings.region,
            endpoint_url=settings.aws_endpoint_url or "",
            index_name=settings.processed_index,
            index_shards=settings.index_shards,
            local_credentials=settings.is_local,
        )

    def client(self) -> Any:
        import boto3

        keys = LOCAL_CREDENTIALS if self.local_credentials else {}
        return boto3.session.Session(region_name=self.region, **keys).client(
            "dynamodb", endpoint_url=self.endpoint_url or None
        )

    def _query_shard(self, client: Any, shard: str, after: str) -> tuple[list[dict[str, Any]], int]:
        records: list[dict[str, Any]] = []
        read = 0
        pages = client.get_paginator("query").paginate(
            TableName=self.table_name,
            IndexName=self.index_name,
            KeyConditionExpression="processed_shard = :shard AND processed_at > :after",
            ExpressionAttributeValues={":shard": {"S": shard}, ":after": {"S": after}},
        )
        for page in pages:
            read += int(page.get("ScannedCount", len(page.get("Items", []))))
            records.extend(from_item(item) for item in page.get("Items", []))
        return records, read

    def records_processed_after(self, after: str) -> tuple[list[dict[str, Any]], int]:
        """Return the records with ``processed_at > after`` and the items DynamoDB read to find them.

        One Query per index shard (in parallel): the cost is the matching records, not the table.

        :param after: an ISO timestamp or any prefix of one (``"2026-11-26"``, ``"0"`` for all).
        :return: (records as plain dicts, items read).
        """
        client = self.client()
        shards = shard_names(self.index_shards)
        with ThreadPoolExecutor(max_workers=min(8, len(shards))) as pool:
            results = list(pool.map(lambda s: self._query_shard(client, s, after), shards))
        return [r for records, _ in results for r in records], sum(read for _, read in results)

    def scan_processed_after(self, after: str) -> tuple[list[dict[str, Any]], int]:
        """Return the same as :meth:`records_processed_after` with a full Scan: the benchmark's baseline."""
        records: list[dict[str, Any]] = []
        read = 0
        pages = (
            self.client()
            .get_paginator("scan")
            .paginate(
                TableName=self.table_name,
                FilterExpression="processed_at > :after",
                ExpressionAttributeValues={":after": {"S": after}},
            )
        )
        for page in pages:
            read += int(page["ScannedCount"])
            records.extend(from_item(item) for item in page.get("Items", []))
        return records, read

    def put_records(self, records: Iterable[Mapping[str, Any]]) -> None:
        """Write records (tests, benchmark) in batches of 25."""
        client = self.client()
        for batch in _chunks([to_item(r) for r in records], 25):
            request = {self.table_name: [{"PutRequest": {"Item": item}} for item in batch]}
            while request:
                request = client.batch_write_item(RequestItems=request).get("UnprocessedItems") or {}


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class DatasetBucket(dg.ConfigurableResource):
    """The datasets bucket (record files, the manifest's Iceberg table in Glue, each version's report
    and export) and where the variants are."""

    s3: S3Resource
    bucket: str
    #: Prefixes are the deployment's (`image_etl.resource_shapes`, via `Settings`).
    prefix: str
    variants_bucket: str
    variants_prefix: str
    glue_database: str = LOCAL.catalog.database
    region: str = "us-east-1"
    #: Empty for AWS's own endpoints.
    endpoint_url: str = ""
    local_credentials: bool = False
    #: The license the dataset cards state (``Settings.dataset_license``).
    dataset_license: str = "unknown"

    def store(self) -> DatasetStore:
        return DatasetStore(self.s3.get_client(), self.bucket, self.prefix)

    def table(self) -> ManifestTable:
        """Return the manifest table (pyiceberg's Glue catalog; the emulator's Glue and S3 when local)."""
        catalog = glue_catalog(
            region=self.region,
            endpoint_url=self.endpoint_url or None,
            local_credentials=self.local_credentials,
        )
        location = manifest_table_location(self.bucket, self.prefix, LOCAL.catalog)
        return ManifestTable(catalog, self.glue_database, location=location)

    def variants(self) -> dict[str, str]:
        return {"bucket": self.variants_bucket, "prefix": self.variants_prefix}

    def variant_keys(self) -> set[str]:
        """Return every object key under the variants prefix (one listing, 1,000 keys a request)."""
        keys: set[str] = set()
        pages = (
            self.s3.get_client()
            .get_paginator("list_objects_v2")
            .paginate(Bucket=self.variants_bucket, Prefix=self.variants_prefix)
        )
        for page in pages:
            keys.update(obj["Key"] for obj in page.get("Contents", []))
        return keys


@dataclass(frozen=True)
class ManifestVersion:
    """What ``dataset_manifest`` hands downstream: which version (tagged snapshot) it built."""

    version: str
    snapshot_id: int
    rows: int
    unchanged: bool  # nothing changed: no new snapshot, the current version stands


#: The resource key of :class:`ManifestVersionIOManager` (the assets that hand on a version).
MANIFEST_IO_MANAGER = "manifest_io_manager"


class ManifestVersionIOManager(dg.ConfigurableIOManager):
    """Hands a :class:`ManifestVersion` to the next steps as a small JSON object in the datasets
    bucket, and gives the asset ``path``/``uri`` metadata that name the data: the Iceberg table's
    location and its current metadata file (what any Iceberg reader opens), not that hand-off."""

    datasets: DatasetBucket

    def _key(self, asset_key: dg.AssetKey) -> str:
        return f"{self.datasets.prefix}dagster/{'/'.join(asset_key.path)}.json"

    def handle_output(self, context: dg.OutputContext, obj: ManifestVersion) -> None:
        self.datasets.store().put(
            self._key(context.asset_key), json.dumps(asdict(obj)).encode(), content_type="application/json"
        )
        table = self.datasets.table().table()
        context.add_output_metadata(
            {
                "path": dg.MetadataValue.path(table.location()),
                "uri": dg.MetadataValue.path(table.metadata_location),
            }
        )

    def load_input(self, context: dg.InputContext) -> ManifestVersion:
        key = self._key(context.upstream_output.asset_key if context.upstream_output else context.asset_key)
        return ManifestVersion(**json.loads(self.datasets.store().read_bytes(key)))


def _parse_bool(value: str) -> bool:
    value = value.lower()
    if value not in ("1", "true", "yes", "0", "false", "no"):
        raise ValueError("must be 1/true/yes or 0/false/no")
    return value in ("1", "true", "yes")


def _parse_ratios(value: str) -> SplitRatios:
    parts = [float(part) for part in value.split(",")]
    if len(parts) != 3:
        raise ValueError("needs three fractions: train,val,test")
    return SplitRatios(*parts)


def _parse(variable: str, value: str, parse: Callable[[str], Any]) -> Any:
    try:
        return parse(value)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{variable}={value!r}: {error}") from error


class DatasetPolicy(dg.ConfigurableResource):
    """The dataset's rules: duplicates, quality flags, split ratios, check thresholds, refresh windows.

    Changing the split ratios only affects groups that never had a split (splits are sticky);
    build ``dataset_manifest`` with ``resplit: true`` to re-split everything.
    """

    near_dup_distance: int = ManifestConfig.near_dup_distance
    #: Quality-flag bounds: the defaults (and what they mean) are in ``image_etl.dataset.rules``.
    min_side: int = QualityThresholds.min_side
    max_aspect: float = QualityThresholds.max_aspect
    dark_below: float = QualityThresholds.dark_below
    bright_above: float = QualityThresholds.bright_above
    blurry_below: float = QualityThresholds.blurry_below
    train: float = SplitRatios.train
    val: float = SplitRatios.val
    test: float = SplitRatios.test
    #: The failed-image rate check warns above this share of failed records.
    max_failed_rate: float = 0.2
    #: Label conflicts (one picture under two labels) stop publishing instead of only warning.
    label_conflicts_block: bool = False
    #: The nightly schedule re-materializes this many days before today, and today.
    nightly_days: int = 3
    #: The sensor re-reads this many seconds before its cursor, for records that became visible late.
    sensor_overlap_s: float = 30.0
    #: Retention: keep every published version of the last this many days...
    retain_days: int = RetentionPolicy.keep_days
    #: ...and the last this many published versions, however old.
    retain_versions: int = RetentionPolicy.keep_last
    #: Files younger than this are never deleted (a commit may be in flight).
    retain_min_file_age_s: float = RetentionPolicy.min_file_age_s

    @classmethod
    def from_env(cls) -> DatasetPolicy:
        """Return the defaults, overridden by IMAGE_ETL_NEAR_DUP_DISTANCE, IMAGE_ETL_SPLIT_RATIOS
        (``0.8,0.1,0.1``), IMAGE_ETL_MAX_FAILED_RATE, IMAGE_ETL_LABEL_CONFLICTS_BLOCK (``1``/``true``),
        IMAGE_ETL_NIGHTLY_DAYS, IMAGE_ETL_SENSOR_OVERLAP_S, IMAGE_ETL_RETAIN_DAYS, IMAGE_ETL_RETAIN_VERSIONS.

        Only the variables that are set are passed on: every default stays the field's own (and so
        the dataset rules' in ``image_etl.dataset.rules``).
        """
        values: dict[str, Any] = {}
        ratios = os.environ.get("IMAGE_ETL_SPLIT_RATIOS")
        if ratios:
            # Checked here: fail at load time, not in the middle of a run.
            split = _parse("IMAGE_ETL_SPLIT_RATIOS", ratios, _parse_ratios)
            values.update(train=split.train, val=split.val, test=split.test)
        for field_name, variable, parse in (
            ("near_dup_distance", "IMAGE_ETL_NEAR_DUP_DISTANCE", int),
            ("max_failed_rate", "IMAGE_ETL_MAX_FAILED_RATE", float),
            ("label_conflicts_block", "IMAGE_ETL_LABEL_CONFLICTS_BLOCK", _parse_bool),
            ("nightly_days", "IMAGE_ETL_NIGHTLY_DAYS", int),
            ("sensor_overlap_s", "IMAGE_ETL_SENSOR_OVERLAP_S", float),
            ("retain_days", "IMAGE_ETL_RETAIN_DAYS", int),
            ("retain_versions", "IMAGE_ETL_RETAIN_VERSIONS", int),
        ):
            value = os.environ.get(variable, "").strip()
            if value:
                values[field_name] = _parse(variable, value, parse)
        return cls(**values)

    def retention(self) -> RetentionPolicy:
        return RetentionPolicy(
            keep_days=self.retain_days,
            keep_last=self.retain_versions,
            min_file_age_s=self.retain_min_file_age_s,
        )

    def manifest_config(self) -> ManifestConfig:
        return ManifestConfig(
            near_dup_distance=self.near_dup_distance,
            thresholds=QualityThresholds(
                min_side=self.min_side,
                max_aspect=self.max_aspect,
                dark_below=self.dark_below,
                bright_above=self.bright_above,
                blurry_below=self.blurry_below,
            ),
            ratios=SplitRatios(self.train, self.val, self.test),
        )


def s3_resource(settings: Settings) -> S3Resource:
    """Return dagster-aws's S3 resource for a deployment (the emulator's endpoint when local)."""
    keys: dict[str, Any] = LOCAL_CREDENTIALS if settings.is_local else {}
    return S3Resource(endpoint_url=settings.aws_endpoint_url, region_name=settings.region, **keys)


def build_resources(settings: Settings | None = None, policy: DatasetPolicy | None = None) -> dict[str, Any]:
    """Return the code location's resources for ``settings`` (default ``load_settings()``).

    The IO managers keep Dagster's small hand-offs (the built version's id, the retention facts)
    next to the data, in the datasets bucket, so runs in separate processes or machines see them.
    """
    settings = settings or load_settings()
    s3 = s3_resource(settings)
    datasets = DatasetBucket(
        s3=s3,
        bucket=settings.datasets_bucket,
        prefix=settings.datasets_prefix,
        variants_bucket=settings.variants_bucket,
        variants_prefix=settings.variants_prefix,
        glue_database=settings.glue_database,
        region=settings.region,
        endpoint_url=settings.aws_endpoint_url or "",
        local_credentials=settings.is_local,
        dataset_license=settings.dataset_license,
    )
    return {
        "s3": s3,
        "record_table": ImageRecordTable.from_settings(settings),
        "datasets": datasets,
        MANIFEST_IO_MANAGER: ManifestVersionIOManager(datasets=datasets),
        "policy": policy or DatasetPolicy.from_env(),
        "io_manager": S3PickleIOManager(
            s3_resource=s3, s3_bucket=settings.datasets_bucket, s3_prefix=f"{settings.datasets_prefix}dagster"
        ),
    }
