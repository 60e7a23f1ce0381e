"""Where dataset manifests live in S3, and helpers to list and download them (CLI, notebooks, Dagster).

Layout under ``s3://<datasets bucket>/<datasets prefix>``::

    records/upload_day=YYYY-MM-DD/records.parquet   one file per upload day (Dagster `image_records`)
    versions/<version>/manifest.parquet              immutable: a version is written once, never again
    versions/<version>/report/...                    plots and summary (`dataset_report`)
    versions/<version>/imagefolder/<split>/metadata.jsonl   (`imagefolder_export`)
    latest.json                                      pointer to the newest version that passed its checks

Version ids are ``YYYYMMDDTHHMMSSZ-<content hash>``: they sort by build time, and the same
content always carries the same hash.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

if TYPE_CHECKING:
    import pandas as pd

    from image_etl.settings import Settings

MANIFEST_FILE = "manifest.parquet"
LATEST_FILE = "latest.json"
_VERSION = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{6,64}$")


class ManifestNotFound(LookupError):
    """No manifest (or not the version asked for) exists yet."""


class VersionExists(FileExistsError):
    """A version's file is already written; versions are immutable."""


def new_version_id(content_hash: str, *, now: datetime | None = None) -> str:
    """Return a version id: build time (UTC, to the second), then the content hash."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return f"{moment:%Y%m%dT%H%M%SZ}-{content_hash}"


def is_version_id(value: str) -> bool:
    return bool(_VERSION.match(value))


@dataclass(frozen=True)
class DatasetStore:
    """The datasets bucket of one deployment: record files, manifest versions and the latest pointer."""

    s3: Any  # a boto3 S3 client
    bucket: str
    prefix: str

    @classmethod
    def from_settings(cls, settings: Settings) -> DatasetStore:
        return cls(settings.client("s3"), settings.datasets_bucket, settings.datasets_prefix)

    # ------------------------------------------------------------ keys

    def records_key(self, day: str) -> str:
        return f"{self.prefix}records/upload_day={day}/records.parquet"

    def version_prefix(self, version: str) -> str:
        return f"{self.prefix}versions/{version}/"

    def manifest_key(self, version: str) -> str:
        return f"{self.version_prefix(version)}{MANIFEST_FILE}"

    def latest_key(self) -> str:
        return f"{self.prefix}{LATEST_FILE}"

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    # ------------------------------------------------------------ reading

    def list_versions(self) -> list[str]:
        """Return every manifest version written, oldest first (including ones that failed checks)."""
        versions = []
        pages = self.s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=f"{self.prefix}versions/", Delimiter="/"
        )
        for page in pages:
            for common in page.get("CommonPrefixes", []):
                name = common["Prefix"].rstrip("/").rsplit("/", 1)[-1]
                if is_version_id(name):
                    versions.append(name)
        return sorted(versions)

    def latest(self) -> dict[str, Any] | None:
        """Return the latest pointer (``version``, ``key``, ``rows``, ...) or None before the first one."""
        try:
            body = self.s3.get_object(Bucket=self.bucket, Key=self.latest_key())["Body"].read()
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in {"NoSuchKey", "404"}:
                return None
            raise
        return json.loads(body)

    def resolve(self, version: str | None = None) -> str:
        """Return ``version`` if it exists, or the latest one when None; raise ManifestNotFound."""
        if version is None or version == "latest":
            pointer = self.latest()
            if pointer is None:
                raise ManifestNotFound(
                    f"no manifest published yet in s3://{self.bucket}/{self.prefix} "
                    "(the Dagster sensor builds one after the first processed image)"
                )
            return str(pointer["version"])
        if not self.exists(self.manifest_key(version)):
            known = self.list_versions()
            hint = f"; known versions: {', '.join(known[-5:])}" if known else ""
            raise ManifestNotFound(f"no manifest version {version!r}{hint}")
        return version

    def exists(self, key: str) -> bool:
        try:
            self.s3.head_object(Bucket=self.bucket, Key=key)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}:
                return False
            raise
        return True

    def read_bytes(self, key: str) -> bytes:
        return self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def read_manifest(self, version: str | None = None) -> pd.DataFrame:
        """Return a manifest version (default latest) as a DataFrame."""
        import io

        import pandas as pd

        key = self.manifest_key(self.resolve(version))
        return pd.read_parquet(io.BytesIO(self.read_bytes(key)))

    def download_manifest(self, out: Path, version: str | None = None) -> str:
        """Write a manifest version (default latest) to ``out``; return the version id."""
        resolved = self.resolve(version)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".part")
        self.s3.download_file(self.bucket, self.manifest_key(resolved), str(tmp))
        tmp.replace(out)
        return resolved

    def download_imagefolder(
        self, out_dir: Path, version: str | None = None, *, variant: str = "small"
    ) -> int:
        """Download an ``imagefolder_export`` (metadata + the variant files) into ``out_dir/<split>/``.

        ``datasets.load_dataset("imagefolder", data_dir=out_dir)`` then reads it with its splits.

        :return: number of images written.
        """
        resolved = self.resolve(version)
        pointer = self.latest() or {}
        variants_bucket = pointer.get("variants_bucket")
        variants_prefix = pointer.get("variants_prefix", "variants/")
        if not variants_bucket:
            raise ManifestNotFound("the latest pointer does not name the variants bucket")
        prefix = f"{self.version_prefix(resolved)}imagefolder-{variant}/"
        written = 0
        for split in ("train", "val", "test"):
            key = f"{prefix}{split}/metadata.jsonl"
            if not self.exists(key):
                raise ManifestNotFound(f"no ImageFolder export of variant {variant!r} for version {resolved}")
            text = self.read_bytes(key).decode()
            folder = out_dir / split
            folder.mkdir(parents=True, exist_ok=True)
            for line in text.splitlines():
                name = json.loads(line)["file_name"]
                target = folder / name
                target.parent.mkdir(parents=True, exist_ok=True)
                self.s3.download_file(variants_bucket, f"{variants_prefix}{name}", str(target))
                written += 1
            (folder / "metadata.jsonl").write_text(text)
        return written

    # ------------------------------------------------------------ writing

    def put_immutable(self, key: str, body: bytes, *, content_type: str = "application/octet-stream") -> None:
        """Write ``key`` only if it does not exist (S3 conditional write); raise VersionExists otherwise."""
        try:
            self.s3.put_object(
                Bucket=self.bucket, Key=key, Body=body, ContentType=content_type, IfNoneMatch="*"
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in {"PreconditionFailed", "412"}:
                raise VersionExists(
                    f"s3://{self.bucket}/{key} already exists; versions are never rewritten"
                ) from error
            raise

    def put(self, key: str, body: bytes, *, content_type: str = "application/octet-stream") -> None:
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType=content_type)

    def set_latest(self, pointer: dict[str, Any]) -> None:
        self.put(self.latest_key(), json.dumps(pointer, indent=2).encode(), content_type="application/json")


def _store(settings: Settings | None) -> DatasetStore:
    from image_etl.settings import load_settings

    return DatasetStore.from_settings(settings or load_settings())


def list_versions(settings: Settings | None = None) -> list[str]:
    """Return the manifest versions of a deployment (default: ``load_settings()``), oldest first."""
    return _store(settings).list_versions()


def latest_version(settings: Settings | None = None) -> str | None:
    """Return the version the ``latest`` pointer names, or None before the first manifest."""
    pointer = _store(settings).latest()
    return None if pointer is None else str(pointer["version"])


def read_manifest(version: str | None = None, settings: Settings | None = None) -> pd.DataFrame:
    """Return a manifest version (default latest) as a DataFrame, e.g. in a notebook."""
    return _store(settings).read_manifest(version)


def download_manifest(out: Path, version: str | None = None, settings: Settings | None = None) -> str:
    """Download a manifest version (default latest) to ``out``; return the version id."""
    return _store(settings).download_manifest(out, version)
