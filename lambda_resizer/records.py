"""The image record: one DynamoDB item per source object, built as plain dicts.

Pure functions, no AWS calls: the callers read and write the table. boto3 is used only for its
DynamoDB type (de)serializer (`to_item`, `from_item`).

Attribute names are a contract read by the upload API, the Dagster sensor and the notebooks.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import unquote, unquote_plus

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from lambda_resizer.recipe import Recipe, ResizeResult, extension

STATUS_PROCESSED = "processed"
STATUS_FAILED = "failed"

#: Object metadata key (x-amz-meta-label) that carries a label when the key has none.
LABEL_METADATA_KEY = "label"
#: Object metadata key the upload API sets to the uploader's file name (percent-encoded ASCII).
FILENAME_METADATA_KEY = "original-filename"


@dataclass(frozen=True)
class SourceObject:
    """An object in the upload bucket, as an S3 event (or a listing) describes it."""

    bucket: str
    key: str
    size: int | None = None
    etag: str | None = None
    event_time: str | None = None


def image_id_for(bucket: str, key: str) -> str:
    """Return the deterministic id of the record for ``s3://bucket/key`` (32 hex chars).

    The same object always maps to the same id, so a redelivered event rewrites the same item.
    """
    return hashlib.sha256(f"s3://{bucket}/{key}".encode()).hexdigest()[:32]


def shard_name(shard: int) -> str:
    """Return the `by_processed_at` index partition key of shard number ``shard`` (``"00"``, ``"01"``...)."""
    return f"{shard:02d}"


def shard_names(shards: int) -> list[str]:
    """Return every `by_processed_at` partition key of a table with ``shards`` shards: one Query each."""
    return [shard_name(shard) for shard in range(shards)]


def processed_shard(image_id: str, shards: int) -> str:
    """Return the `by_processed_at` index partition of an image: a stable hash into ``shards`` values."""
    return shard_name(int(image_id[:8], 16) % shards)


def decode_key(raw_key: str) -> str:
    """Return the object key of an S3 event (S3 sends keys ``quote_plus``-encoded)."""
    return unquote_plus(raw_key)


def label_from(key: str, upload_prefix: str, metadata: Mapping[str, str] | None = None) -> str | None:
    """Return the label of an upload: the folder in ``<prefix><label>/<file>``, else the ``label`` metadata.

    :param key: decoded object key.
    :param upload_prefix: the upload prefix the key starts with.
    :param metadata: the object's user metadata (x-amz-meta-*), if read.
    :return: the label, or None for an unlabelled upload.
    """
    rest = key[len(upload_prefix) :] if key.startswith(upload_prefix) else key
    folder, sep, _ = rest.partition("/")
    if sep and folder:
        return folder
    label = (metadata or {}).get(LABEL_METADATA_KEY)
    return label or None


def original_filename(key: str, metadata: Mapping[str, str] | None = None) -> str:
    """Return the file name the uploader had: the ``original-filename`` metadata, else the key's last part."""
    named = (metadata or {}).get(FILENAME_METADATA_KEY)
    return unquote(named) if named else key.rsplit("/", 1)[-1]


def utc_timestamp(moment: datetime | None = None) -> str:
    """Return an ISO 8601 UTC timestamp with microseconds and ``Z``, sortable as a string."""
    moment = moment or datetime.now(UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def normalize_timestamp(value: str | datetime | None) -> str:
    """Return ``value`` (an S3 eventTime, a datetime, or None for now) in the record's timestamp format."""
    if value is None:
        return utc_timestamp()
    if isinstance(value, datetime):
        return utc_timestamp(value)
    return utc_timestamp(datetime.fromisoformat(value.replace("Z", "+00:00")))


def variant_key(variants_prefix: str, image_id: str, name: str, fmt: str) -> str:
    """Return where a variant is stored: ``<variants prefix><image_id>/<name>.<ext>``."""
    return f"{variants_prefix}{image_id}/{name}.{extension(fmt)}"


def base_record(
    source: SourceObject,
    *,
    image_id: str,
    label: str | None,
    recipe: Recipe,
    shards: int,
    source_bytes: int | None,
    filename: str | None = None,
    tier: str | None = None,
) -> dict[str, Any]:
    """Return the attributes every record has, processed or failed.

    :param tier: the resize function that wrote it: ``standard``, or ``large`` for the large-image tier.
    """
    return {
        "image_id": image_id,
        "source_bucket": source.bucket,
        "source_key": source.key,
        "original_filename": filename or source.key.rsplit("/", 1)[-1],
        "source_etag": (source.etag or "").strip('"'),
        "source_bytes": source_bytes,
        "label": label,
        "recipe": recipe.to_record(),
        "uploaded_at": normalize_timestamp(source.event_time),
        "processed_at": utc_timestamp(),
        "processed_shard": processed_shard(image_id, shards),
        "tier": tier,
    }


def processed_record(
    base: Mapping[str, Any],
    result: ResizeResult,
    variant_keys: Mapping[str, Mapping[str, str]],
    *,
    primary: str,
) -> dict[str, Any]:
    """Return the record of an image that became variants.

    :param base: from :func:`base_record`.
    :param result: the resize core's output.
    :param variant_keys: variant name -> format -> object key, as written.
    :param primary: the recipe's first format; its key and size are the variant's `key` and `bytes`,
        other formats sit beside them under their own name (e.g. ``webp: {key, bytes}``).
    """
    info = result.info
    variants: dict[str, Any] = {}
    for variant in result.variants:
        keys = variant_keys[variant.name]
        entry: dict[str, Any] = {
            "key": keys[primary],
            "width": variant.width,
            "height": variant.height,
            "bytes": len(variant.encoded[primary]),
            "format": primary,
        }
        for fmt, data in variant.encoded.items():
            if fmt != primary:
                entry[fmt] = {"key": keys[fmt], "bytes": len(data)}
        variants[variant.name] = entry
    return {
        **base,
        "status": STATUS_PROCESSED,
        "width": info.width,
        "height": info.height,
        "format": info.format,
        "mode": info.mode,
        "source_bytes": info.bytes,
        "sha256": info.sha256,
        "phash": info.phash,
        "frame_count": info.frame_count,
        "exif_orientation": info.exif_orientation,
        "brightness": info.brightness,
        "blur_score": info.blur_score,
        "variants": variants,
    }


def failed_record(base: Mapping[str, Any], *, code: str, reason: str) -> dict[str, Any]:
    """Return the record of an upload that can never become variants, with the reason why."""
    return {**base, "status": STATUS_FAILED, "error": reason, "error_code": code}


_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def _to_dynamo_value(value: Any) -> Any:
    if isinstance(value, float):
        # DynamoDB numbers are decimals; round-tripping through str keeps what a reader expects.
        return Decimal(repr(value))
    if isinstance(value, Mapping):
        return {k: _to_dynamo_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_to_dynamo_value(v) for v in value]
    return value


def to_item(record: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``record`` in DynamoDB's attribute-value JSON; None-valued attributes are left out."""
    return {k: _serializer.serialize(_to_dynamo_value(v)) for k, v in record.items() if v is not None}


def _from_dynamo_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _from_dynamo_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_dynamo_value(v) for v in value]
    return value


def from_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """Return a record read from DynamoDB as plain Python values (ints and floats, not Decimals)."""
    return {k: _from_dynamo_value(_deserializer.deserialize(v)) for k, v in item.items()}
