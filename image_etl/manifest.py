"""Reading dataset manifests: the versions of the Iceberg table, by tag (CLI, notebooks, Dagster).

Layout under ``s3://<datasets bucket>/<datasets prefix>``::

    records/upload_day=YYYY-MM-DD/records.parquet   one file per upload day (Dagster `image_records`)
    iceberg/manifest/                                the manifest table (data/ and metadata/), in Glue as
                                                     <database>.manifest
    versions/<version>/report/...                    plots and summary (`dataset_report`)
    versions/<version>/imagefolder-<variant>/<split>/metadata.parquet (`imagefolder_export`)
    versions/<version>/README.md, croissant.json     the version's dataset card (`imagefolder_export`)

Every version is a snapshot tagged with its id (``YYYYMMDDTHHMMSSZ-<hash>``: they sort by build
time); the ``published`` tag names the newest version that passed its checks.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from image_etl.dataset.table import (
    ManifestNotFound,
    ManifestTable,
    Version,
    VersionExpired,
    glue_catalog,
    is_version_id,
    new_version_id,
)
from image_etl.resource_shapes import LOCAL, LOCAL_CREDENTIALS, manifest_table_location

if TYPE_CHECKING:
    import pandas as pd

    from image_etl.settings import Settings

__all__ = [
    "DatasetStore",
    "ManifestNotFound",
    "VersionExpired",
    "download_manifest",
    "is_version_id",
    "latest_version",
    "list_versions",
    "manifest_table",
    "new_version_id",
    "polars_storage_options",
    "read_manifest",
]


def manifest_table(settings: Settings) -> ManifestTable:
    """Return the manifest table of a deployment (Glue + S3; the emulator's on the local stack).

    :param settings: where to read (``load_settings()``).
    """
    catalog = glue_catalog(
        region=settings.region,
        endpoint_url=settings.aws_endpoint_url,
        local_credentials=settings.is_local,
    )
    location = manifest_table_location(settings.datasets_bucket, settings.datasets_prefix, LOCAL.catalog)
    return ManifestTable(catalog, settings.glue_database, location=location)


def polars_storage_options(settings: Settings) -> dict[str, str]:
    """Return the ``storage_options`` polars' ``scan_iceberg`` needs to read the data files.

    polars reads the files itself and ignores the catalog's S3 endpoint: on the local stack it must be
    told where the emulator is (and to allow plain HTTP); in AWS it needs only the region.
    """
    options = {"aws_region": settings.region}
    if settings.aws_endpoint_url:
        options.update(
            {
                "aws_endpoint_url": settings.aws_endpoint_url,
                "aws_allow_http": "true",
                **LOCAL_CREDENTIALS,
            }
        )
    return options


#: S3's error codes for a missing object: GetObject says NoSuchKey, HeadObject (no body) only the HTTP
#: status "404", some S3-compatible stores "NotFound". (The resize Lambda, deployed alone, keeps a copy.)
S3_NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound"})


@dataclass(frozen=True)
class DatasetStore:
    """The datasets bucket of one deployment: record files and each version's report and export."""

    s3: Any  # a boto3 S3 client
    bucket: str
    prefix: str

    @classmethod
    def from_settings(cls, settings: Settings) -> DatasetStore:
        return cls(settings.client("s3"), settings.datasets_bucket, settings.datasets_prefix)

    def records_key(self, day: str) -> str:
        return f"{self.prefix}records/upload_day={day}/records.parquet"

    def records_prefix(self) -> str:
        return f"{self.prefix}records/"

    def version_prefix(self, version: str) -> str:
        return f"{self.prefix}versions/{version}/"

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def record_files(self) -> dict[str, str]:
        """Return upload day -> ETag of every daily record file (one listing, 1,000 days a request)."""
        files: dict[str, str] = {}
        pages = self.s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.records_prefix()
        )
        for page in pages:
            for obj in page.get("Contents", []):
                key = obj["Key"]
                if key.endswith("/records.parquet") and "upload_day=" in key:
                    files[key.split("upload_day=", 1)[1].split("/", 1)[0]] = obj["ETag"].strip('"')
        return files

    def exists(self, key: str) -> bool:
        try:
            self.s3.head_object(Bucket=self.bucket, Key=key)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in S3_NOT_FOUND_CODES:
                return False
            raise
        return True

    def read_bytes(self, key: str) -> bytes:
        return self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def put(self, key: str, body: bytes, *, content_type: str = "application/octet-stream") -> None:
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType=content_type)

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object under ``prefix``; return how many."""
        deleted = 0
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        for page in pages:
            objects = [{"Key": obj["Key"]} for obj in page.get("Contents", [])]
            if objects:
                self.s3.delete_objects(Bucket=self.bucket, Delete={"Objects": objects, "Quiet": True})
                deleted += len(objects)
        return deleted

    def download_imagefolder(
        self,
        out_dir: Path,
        version: str,
        *,
        variants_bucket: str,
        variants_prefix: str,
        variant: str = "small",
        license: str | None = None,
    ) -> int:
        """Download an ``imagefolder_export`` (metadata + the variant files) into ``out_dir/<split>/``,
        with a dataset card (``README.md``, ``croissant.json``) describing the folder.

        ``datasets.load_dataset("imagefolder", data_dir=out_dir)`` (or ``load_dataset(out_dir)``,
        which reads the card) then reads it with its splits, labels as ``ClassLabel``.

        :param license: the license the folder's card states; default the version card's (the
            license the version was published under), else "unknown".
        :return: number of images written.
        """
        from image_etl.dataset.card import CardInfo, card_license, croissant, dataset_card
        from image_etl.dataset.export import CARD_FILE, CROISSANT_FILE, METADATA_FILE, export_files, export_of

        files = export_files(self, version, variant)
        if license is None:
            card_key = f"{self.version_prefix(version)}{CARD_FILE}"
            stated = card_license(self.read_bytes(card_key).decode()) if self.exists(card_key) else None
            license = stated or "unknown"
        export = export_of(files, variant=variant, images_next_to_card=True)
        written = 0
        image_bytes: dict[str, int] = {}
        for split, table in export.tables.items():
            folder = out_dir / split
            folder.mkdir(parents=True, exist_ok=True)
            image_bytes[split] = 0
            for name in table.column("file_name").to_pylist():
                target = folder / name
                target.parent.mkdir(parents=True, exist_ok=True)
                self.s3.download_file(variants_bucket, f"{variants_prefix}{name}", str(target))
                image_bytes[split] += target.stat().st_size
                written += 1
            (folder / METADATA_FILE).write_bytes(files[split])
        export = replace(export, image_bytes=image_bytes)
        info = CardInfo(version=version, license=license)
        (out_dir / CARD_FILE).write_text(dataset_card([export], info))
        (out_dir / CROISSANT_FILE).write_text(json.dumps(croissant([export], info), indent=2))
        return written


def _settings(settings: Settings | None) -> Settings:
    from image_etl.settings import load_settings

    return settings or load_settings()


def list_versions(settings: Settings | None = None) -> list[str]:
    """Return the kept manifest versions of a deployment (default ``load_settings()``), oldest first.

    Versions that failed their checks are listed too; :func:`latest_version` is the published one.
    """
    table = manifest_table(_settings(settings))
    return [v.name for v in table.versions()] if table.exists() else []


def latest_version(settings: Settings | None = None) -> str | None:
    """Return the published version (the ``published`` tag), or None before the first one."""
    table = manifest_table(_settings(settings))
    published = table.published() if table.exists() else None
    return published.name if published else None


def read_manifest(version: str | None = None, settings: Settings | None = None) -> pd.DataFrame:
    """Return a manifest version (default: the published one) as a DataFrame, its id in ``.attrs["version"]``.

    :param version: a version id (a tag), a snapshot id, or None for the published version.
    :raises VersionExpired: the retention policy expired that version.
    :raises ManifestNotFound: no such version (or nothing published yet).
    """
    return manifest_table(_settings(settings)).read(version)


def download_manifest(out: Path, version: str | None = None, settings: Settings | None = None) -> str:
    """Write a manifest version (default: the published one) to ``out`` as parquet; return its version id."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from image_etl.dataset.rows import INDEX_COLUMNS
    from image_etl.dataset.table import pandas_metadata

    resolved, arrow = manifest_table(_settings(settings)).read_arrow(version)
    arrow = arrow.drop_columns([c for c in INDEX_COLUMNS if c in arrow.column_names])
    groups = arrow.column("dup_group").combine_chunks().dictionary_encode()
    positions = groups.indices.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    sizes = np.bincount(positions, minlength=len(groups.dictionary))[positions]
    arrow = arrow.add_column(arrow.schema.get_field_index("dup_group") + 1, "dup_group_size", pa.array(sizes))
    arrow = arrow.sort_by("image_id")
    # pandas metadata: pd.read_parquet gives the integer columns back as nullable integers (Int64),
    # as read_manifest does, not as float64 once a failed image leaves a null size.
    metadata = {**pandas_metadata(arrow), b"image_etl.version": resolved.name.encode()}
    arrow = arrow.replace_schema_metadata(metadata)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    pq.write_table(arrow, tmp, compression="zstd")
    tmp.replace(out)
    return resolved.name


def version_of(table: ManifestTable, version: str | None) -> Version:
    """Return the resolved version (a helper for callers that also need its snapshot id)."""
    return table.resolve(version)
