"""Presigned uploads and image records for the upload API: the AWS side, with clients passed in."""

from __future__ import annotations

import hashlib
from decimal import Decimal
from typing import Any, TypeGuard
from urllib.parse import quote

from boto3.dynamodb.types import TypeDeserializer

from lambda_upload_api.config import ApiConfig
from lambda_upload_api.validation import (
    ApiError,
    UploadRequest,
    encode_token,
    metadata_filename,
    upload_key,
)

_deserializer = TypeDeserializer()
#: The record attribute the pipeline writes the dataset's annotations into, and what the API shows
#: of it (the same names as image_etl.dataset.annotations; this Lambda imports nothing of the toolkit).
DATASET_ATTRIBUTE = "dataset"
DATASET_FIELDS = ("split", "dup_group", "dup_group_size", "quality_flags", "keep")
_DONE = "done"


def image_id_for(bucket: str, key: str) -> str:
    """Return the id the resizer gives the record of ``s3://bucket/key`` (same rule as lambda_resizer)."""
    return hashlib.sha256(f"s3://{bucket}/{key}".encode()).hexdigest()[:32]


def shard_names(shards: int) -> list[str]:
    """Return the `by_processed_at` partition keys (same format as lambda_resizer.records.shard_names)."""
    return [f"{shard:02d}" for shard in range(shards)]


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


class ImageStore:
    """Answers the API's questions from S3 and the image-record table."""

    def __init__(self, *, s3: Any, dynamodb: Any, config: ApiConfig) -> None:
        self.s3 = s3
        self.dynamodb = dynamodb
        self.config = config

    def presign_upload(self, request: UploadRequest, *, uploaded_by: str) -> dict[str, Any]:
        """Return a presigned POST for a fresh key, limited to the declared type and size.

        :param uploaded_by: the signed-in user, kept on the object so a record says who added it.
        """
        key = upload_key(self.config.upload_prefix, request)
        fields = {
            "Content-Type": request.content_type,
            # Metadata values travel as HTTP headers: keep them ASCII.
            "x-amz-meta-original-filename": metadata_filename(request.filename),
            "x-amz-meta-uploaded-by": quote(uploaded_by, safe=""),
        }
        if request.label:
            fields["x-amz-meta-label"] = request.label
        conditions: list[Any] = [{name: value} for name, value in fields.items()]
        conditions.append(["content-length-range", request.size, request.size])
        post = self.s3.generate_presigned_post(
            Bucket=self.config.upload_bucket,
            Key=key,
            Fields=fields,
            Conditions=conditions,
            ExpiresIn=self.config.presign_expiry_s,
        )
        return {
            "image_id": image_id_for(self.config.upload_bucket, key),
            "key": key,
            "upload": {"method": "POST", "url": post["url"], "fields": post["fields"]},
            "expires_in": self.config.presign_expiry_s,
        }

    def get(self, image_id: str) -> dict[str, Any]:
        """Return the public view of one record, with short-lived variant URLs; 404 when unknown."""
        item = self.dynamodb.get_item(
            TableName=self.config.table_name, Key={"image_id": {"S": image_id}}
        ).get("Item")
        if not item:
            raise ApiError(
                404, "not_found", f"no record for image {image_id} (yet: it may still be processing)"
            )
        return self.public(item)

    def many(self, image_ids: list[str]) -> dict[str, Any]:
        """Return the records of ``image_ids`` that exist (one BatchGetItem) and the ids that do not, yet."""
        request: dict[str, Any] = {
            self.config.table_name: {"Keys": [{"image_id": {"S": image_id}} for image_id in image_ids]}
        }
        found: dict[str, dict[str, Any]] = {}
        while request:
            response = self.dynamodb.batch_get_item(RequestItems=request)
            for item in response["Responses"].get(self.config.table_name, []):
                found[item["image_id"]["S"]] = self.public(item)
            request = response.get("UnprocessedKeys") or {}
        return {
            "items": [found[i] for i in image_ids if i in found],
            "missing": [i for i in image_ids if i not in found],
            "next": None,
        }

    def public(self, item: dict[str, Any]) -> dict[str, Any]:
        record = _plain({k: _deserializer.deserialize(v) for k, v in item.items()})
        dataset = record.get(DATASET_ATTRIBUTE) or {}
        variants = {
            name: {
                "width": variant.get("width"),
                "height": variant.get("height"),
                "bytes": variant.get("bytes"),
                "url": self.s3.generate_presigned_url(
                    "get_object",
                    Params={"Bucket": self.config.variants_bucket, "Key": variant["key"]},
                    ExpiresIn=self.config.variant_url_expiry_s,
                ),
            }
            for name, variant in (record.get("variants") or {}).items()
        }
        return {
            "image_id": record["image_id"],
            "status": record.get("status"),
            "error": record.get("error"),
            "error_code": record.get("error_code"),
            "label": record.get("label"),
            "filename": record.get("original_filename") or record.get("source_key", "").rsplit("/", 1)[-1],
            "size": record.get("source_bytes"),
            "width": record.get("width"),
            "height": record.get("height"),
            "format": record.get("format"),
            "uploaded_at": record.get("uploaded_at"),
            "processed_at": record.get("processed_at"),
            "variants": variants,
            # Written back by the pipeline from the published dataset version (absent until then).
            **{name: dataset.get(name) for name in DATASET_FIELDS},
        }

    def recent(self, *, label: str | None, limit: int, state: dict[str, Any] | None) -> dict[str, Any]:
        """Return a page of records, newest processed first, and the token of the next page (or None).

        With a label: one Query on the label index. Without: one Query per shard of the processed-at
        index, merged; the token remembers where each shard stopped. Never a Scan.
        """
        if label:
            return self._recent_with_label(label, limit, state)
        return self._recent_all(limit, state or {})

    def _recent_with_label(self, label: str, limit: int, state: dict[str, Any] | None) -> dict[str, Any]:
        query: dict[str, Any] = {
            "TableName": self.config.table_name,
            "IndexName": self.config.label_index,
            "KeyConditionExpression": "#label = :label",
            "ExpressionAttributeNames": {"#label": "label"},
            "ExpressionAttributeValues": {":label": {"S": label}},
            "ScanIndexForward": False,
            "Limit": limit,
        }
        if state:
            start = state.get("start")
            if not _is_key(start) or start.get("label") != {"S": label}:
                raise ApiError(400, "invalid_token", "next does not belong to this label filter")
            query["ExclusiveStartKey"] = start
        response = self._query(query)
        last = response.get("LastEvaluatedKey")
        return {
            "items": [self.public(item) for item in response.get("Items", [])],
            "next": encode_token({"start": last}) if last else None,
        }

    def _recent_all(self, limit: int, state: dict[str, Any]) -> dict[str, Any]:
        shards = shard_names(self.config.index_shards)
        if any(
            shard not in shards or not (value == _DONE or _is_key(value)) for shard, value in state.items()
        ):
            raise ApiError(400, "invalid_token", "next is not a token this API returned")
        candidates: list[tuple[str, dict[str, Any]]] = []
        exhausted: dict[str, bool] = {}
        for shard in shards:
            if state.get(shard) == _DONE:
                continue
            query: dict[str, Any] = {
                "TableName": self.config.table_name,
                "IndexName": self.config.processed_index,
                "KeyConditionExpression": "processed_shard = :shard",
                "ExpressionAttributeValues": {":shard": {"S": shard}},
                "ScanIndexForward": False,
                "Limit": limit,
            }
            if state.get(shard):
                query["ExclusiveStartKey"] = state[shard]
            response = self._query(query)
            candidates += [(shard, item) for item in response.get("Items", [])]
            exhausted[shard] = "LastEvaluatedKey" not in response
        candidates.sort(key=lambda pair: pair[1]["processed_at"]["S"], reverse=True)
        page = candidates[:limit]
        next_state = dict(state)
        for shard, finished in exhausted.items():
            taken = [item for s, item in page if s == shard]
            offered = sum(1 for s, _ in candidates if s == shard)
            if taken:
                next_state[shard] = {k: taken[-1][k] for k in ("image_id", "processed_shard", "processed_at")}
            if finished and len(taken) == offered:
                next_state[shard] = _DONE
        more = any(next_state.get(shard) != _DONE for shard in shards)
        return {
            "items": [self.public(item) for _, item in page],
            "next": encode_token(next_state) if more else None,
        }

    def _query(self, query: dict[str, Any]) -> dict[str, Any]:
        try:
            return self.dynamodb.query(**query)
        except self.dynamodb.exceptions.ClientError as error:
            # A forged start key DynamoDB cannot use is the client's mistake, not ours.
            if (
                error.response.get("Error", {}).get("Code") == "ValidationException"
                and "ExclusiveStartKey" in query
            ):
                raise ApiError(400, "invalid_token", "next is not a token this API returned") from error
            raise


def _is_key(value: Any) -> TypeGuard[dict[str, Any]]:
    """True when ``value`` looks like a DynamoDB key we put in a token: string attributes only."""
    return (
        isinstance(value, dict)
        and 0 < len(value) <= 4
        and all(
            isinstance(k, str) and isinstance(v, dict) and set(v) == {"S"} and isinstance(v["S"], str)
            for k, v in value.items()
        )
    )
