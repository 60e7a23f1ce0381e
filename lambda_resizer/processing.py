"""One upload in, variants and one record out: the resize function's work on a single S3 object.

AWS clients are passed in, so the same code runs in Lambda, in the local worker and in tests.
Errors split in two: anything wrong with the *bytes* (too big, corrupt, a bomb, not an image) ends
as a `failed` record and returns normally, so the message is acknowledged; anything wrong with
*AWS* (throttling, a timeout, an outage) raises, so the message is retried and, after the queue's
max receive count, lands in the DLQ. The source object is only ever read.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, BinaryIO
from urllib.parse import quote_plus

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.data_classes import S3Event, SQSRecord
from aws_lambda_powertools.utilities.data_classes.s3_event import S3EventRecord
from botocore.exceptions import ClientError

from lambda_resizer.config import ResizerConfig
from lambda_resizer.core import ImageRejected, LibraryRouteNeeded, ResizeResult, content_type, process_image
from lambda_resizer.estimate import MemoryEstimate, estimate_memory, read_header
from lambda_resizer.records import (
    SourceObject,
    base_record,
    decode_key,
    failed_record,
    from_item,
    image_id_for,
    label_from,
    normalize_timestamp,
    original_filename,
    processed_record,
    to_item,
    variant_key,
)

logger = Logger(child=True)

# Variant uploads are network-bound: a few threads hide the round trips (4 sizes x formats).
#: Threads for the S3 calls of one image that need not wait for each other: its variant PUTs, and
#: the header read that goes out beside the idempotency check.
_uploads = ThreadPoolExecutor(max_workers=4, thread_name_prefix="s3-io")

#: S3's error codes for a missing object: GetObject says NoSuchKey, HeadObject (no body) only the
#: HTTP status "404", some S3-compatible stores "NotFound". The toolkit's own copy
#: (`image_etl.manifest.S3_NOT_FOUND_CODES`: this package is deployed alone) is tested to agree.
NOT_FOUND_CODES = frozenset({"NoSuchKey", "404", "NotFound"})


@dataclass(frozen=True)
class Outcome:
    """What happened to one source object."""

    image_id: str | None
    status: str  # "processed", "failed", "skipped", "handed_over" (to the large-image tier)
    detail: str = ""


def sources_from_s3_event(event: Any) -> list[SourceObject]:
    """Return the objects an S3 event notification names; none for an ``s3:TestEvent``.

    :param event: the notification as a dict (an SQS message body, parsed, or a direct S3 event).
    :raises ValueError: saying what is wrong, when the message is neither an S3 notification nor a
        test event (the message is then retried and, like any message that keeps failing, kept in
        the DLQ for someone to look at).
    """
    # Powertools' data classes read fields, they do not check the shape: what they are handed
    # is checked here first, so a rejection says what is wrong instead of raising on an attribute.
    if not isinstance(event, Mapping):
        raise ValueError(f"not an S3 event notification: the message is a JSON {_json_type(event)}")
    if event.get("Event") == "s3:TestEvent":  # sent once when a notification is set up; no data class
        return []
    if not isinstance(event.get("Records"), list):
        raise ValueError(f"not an S3 event notification: no Records list (keys {sorted(event)[:5]})")
    sources = []
    for index, record in enumerate(S3Event(dict(event)).records):
        if not isinstance(record.raw_event, Mapping):
            raise ValueError(
                f"S3 event record {index} is a JSON {_json_type(record.raw_event)}, not an object"
            )
        event_name = record.get("eventName")  # optional here: a record without one is not a creation
        if not str(event_name or "").startswith("ObjectCreated"):
            logger.warning("ignoring S3 event that does not create an object", event_name=event_name)
            continue
        try:
            sources.append(_source_of(record))
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise ValueError(
                f"S3 event record {index} is malformed: {type(error).__name__} {error}"
            ) from error
    return sources


def _json_type(value: Any) -> str:
    """Return the JSON name of a parsed value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    names = {list: "array", str: "string", int: "number", float: "number"}
    return names.get(type(value), type(value).__name__)


def _source_of(record: S3EventRecord) -> SourceObject:
    """Return the object an ``ObjectCreated`` record names; raises on a missing or mistyped field."""
    bucket, obj = record.s3.bucket.name, record.s3.get_object
    # `S3Object.key` is the key as S3 sends it, quote_plus-encoded: `decode_key` decodes it. Size
    # and time are optional in a notification, so they are read with get(): Powertools' `size`
    # would int() a string ("12", True) and raise on a missing one, `event_time` raises on none.
    key, size, etag = obj.key, obj.get("size"), obj.etag  # etag: "" when there is none
    if not isinstance(bucket, str) or not bucket or not isinstance(key, str) or not key:
        raise ValueError("bucket name and object key must be non-empty strings")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
        raise ValueError(f"object size must be a byte count, got {size!r}")
    event_time = record.get("eventTime")
    if event_time is not None:
        normalize_timestamp(event_time)  # raises ValueError on a time that is not ISO 8601
    return SourceObject(
        bucket=bucket,
        key=decode_key(key),
        size=size,
        etag=etag if isinstance(etag, str) and etag else None,
        event_time=event_time,
    )


def sources_from_sqs_record(record: SQSRecord) -> list[SourceObject]:
    """Return the objects named by the S3 notification an SQS message carries in its body.

    :raises ValueError: the body is not JSON, or not an S3 notification (see `sources_from_s3_event`).
    """
    try:
        parsed = record.json_body
    except json.JSONDecodeError as error:
        raise ValueError(f"SQS message body is not JSON: {error}") from error
    return sources_from_s3_event(parsed)


class ImageProcessor:
    """Turns upload objects into variants and records, with the clients and config it is given."""

    def __init__(self, *, s3: Any, dynamodb: Any, config: ResizerConfig, sqs: Any = None) -> None:
        self.s3 = s3
        self.dynamodb = dynamodb
        self.sqs = sqs  # the standard tier's way to the large tier's queue
        self.config = config
        self._recipe_record = config.recipe.to_record()
        #: The next image's body, read while this one is resized (see :meth:`read_ahead`).
        self._ahead: tuple[SourceObject, Future[tuple[Mapping[str, Any], bytes | None]]] | None = None

    def read_ahead(self, source: SourceObject | None) -> None:
        """Start reading ``source``'s body now, for the :meth:`process` call that comes next.

        The handler calls this with the next image of its batch before resizing the current one,
        so the next body arrives while the CPU is busy instead of after. Only a body small enough
        to be fetched whole (``WHOLE_BODY_BYTES``) is read ahead, and only one: the extra memory
        is bounded by that size. ``None`` drops what was read ahead (end of a batch).
        """
        self._ahead = None
        if source is None or not self._fetched_whole(source):
            return
        if not source.key.startswith(self.config.upload_prefix):
            return
        self._ahead = (source, _uploads.submit(self._get, source))

    def _fetched_whole(self, source: SourceObject) -> bool:
        """Return whether the notification says the upload is small enough to fetch whole at once
        (``WHOLE_BODY_BYTES``, and within the byte limit); else its header is read first."""
        return source.size is not None and source.size <= min(WHOLE_BODY_BYTES, self.config.max_object_bytes)

    def _take_ahead(self, source: SourceObject) -> Future[tuple[Mapping[str, Any], bytes | None]] | None:
        ahead, self._ahead = self._ahead, None
        return ahead[1] if ahead is not None and ahead[0] == source else None

    def process(
        self,
        source: SourceObject,
        *,
        attempt: int = 1,
        memory_mb: int | None = None,
        then: SourceObject | None = None,
    ) -> Outcome:
        """Return the outcome of processing one object; raises only on AWS errors worth a retry.

        :param source: the uploaded object.
        :param attempt: how many times its message has been received (SQS's receive count).
        :param memory_mb: the function's memory size; with it, the image's estimated decoding
            memory (from its header, read with ranged GETs) is compared with what this function
            has left before the body is read: over it, the image goes to the large-image tier, or
            fails as ``too_large_to_decode`` when it is over the large tier's budget too.
        :param then: the image that will be processed next, if known: its body is read ahead
            while this one is resized (:meth:`read_ahead`).
        """
        config = self.config
        if not source.key.startswith(config.upload_prefix):
            logger.warning(
                "ignoring key outside the upload prefix", key=source.key, prefix=config.upload_prefix
            )
            return Outcome(None, "skipped", f"key outside upload prefix {config.upload_prefix!r}")
        image_id = image_id_for(source.bucket, source.key)
        # The first read goes out while the idempotency check runs: two independent reads, one
        # round trip of waiting instead of two (the rare redelivery of a done image wastes it).
        # An upload the notification says is small is fetched whole at once and estimated from
        # its bytes (one request fewer per image); a larger one has its header read first, with
        # ranged GETs, so a body that could not be decoded here is never downloaded.
        too_big = source.size is not None and source.size > config.max_object_bytes
        header = None
        body = self._take_ahead(source)
        if body is None and self._fetched_whole(source):
            body = _uploads.submit(self._get, source)
        elif body is None and memory_mb is not None and not too_big:
            header = _uploads.submit(self._estimate, source)
        self.read_ahead(then)
        if self._already_done(image_id, source.etag):
            logger.info("already processed, skipping redelivery", image_id=image_id, key=source.key)
            return Outcome(image_id, "skipped", "already processed with this recipe")
        if attempt >= config.max_receive_count > 1:
            self._mark_last_attempt(source, image_id, attempt)

        if source.size is not None and source.size > config.max_object_bytes:
            head = self._head(source)
            return self._fail(
                source, image_id, head, "too_large", _too_large(source.size, config.max_object_bytes)
            )
        estimate = None
        fetched: tuple[Mapping[str, Any], bytes | None] | None = None
        try:
            if body is not None:
                fetched = body.result()
                if memory_mb is not None and fetched[1] is not None:
                    estimate = self._estimate_from(io.BytesIO(fetched[1]), len(fetched[1]), source.key)
            elif header is not None:
                try:
                    estimate = header.result()
                except ClientError as error:
                    if error.response.get("Error", {}).get("Code") != "InvalidRange":
                        raise
            if estimate is not None and memory_mb is not None:
                refused = self._route_by_memory(source, image_id, estimate, memory_mb)
                if refused is not None:
                    return refused
            response, data = fetched if fetched is not None else self._get(source)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in NOT_FOUND_CODES:
                return self._fail(
                    source, image_id, {}, "missing", "the object was deleted before it was processed"
                )
            raise
        size = int(response["ContentLength"])
        if data is None:  # checked from the headers: the body was never downloaded
            return self._fail(
                source, image_id, response, "too_large", _too_large(size, config.max_object_bytes)
            )
        try:
            try:
                result = process_image(data, config.recipe, library_fallback=memory_mb is None)
            except LibraryRouteNeeded as declined:
                # A damaged file our decoder declined: libjpeg's route holds more than the header's
                # estimate, so its memory is checked as the header's was, then it decodes.
                assert memory_mb is not None
                estimate = self._estimate_from(io.BytesIO(data), size, source.key, library_route=True)
                logger.info("library route for a damaged file", key=source.key, reason=str(declined))
                if estimate is not None:
                    refused = self._route_by_memory(source, image_id, estimate, memory_mb)
                    if refused is not None:
                        return refused
                result = process_image(data, config.recipe)
        except ImageRejected as rejected:
            return self._fail(source, image_id, response, rejected.code, str(rejected))

        keys = self._put_variants(image_id, result)
        base = self._base(source, image_id, response, size)
        record = processed_record(base, result, keys, primary=config.recipe.formats[0])
        if estimate is not None:
            record["memory_estimate_mb"] = round(estimate.peak_mb, 1)
        self.dynamodb.put_item(TableName=config.table_name, Item=to_item(record))
        logger.info(
            "processed",
            image_id=image_id,
            key=source.key,
            label=record["label"],
            width=result.info.width,
            height=result.info.height,
        )
        return Outcome(image_id, "processed")

    def _get(self, source: SourceObject) -> tuple[Mapping[str, Any], bytes | None]:
        """Return the object's GET response and its body, or None for a body over the byte limit
        (judged from the headers, so such a body is never downloaded)."""
        response = self.s3.get_object(Bucket=source.bucket, Key=source.key)
        if int(response["ContentLength"]) > self.config.max_object_bytes:
            response["Body"].close()
            return response, None
        return response, response["Body"].read()

    def _estimate(self, source: SourceObject) -> MemoryEstimate | None:
        """Return the image's estimated peak decoding memory from its header, or None if unreadable.

        Only the header is fetched (ranged GETs of 64 KiB blocks, usually one).
        """
        reader = RangedObject(self.s3, source.bucket, source.key)
        return self._estimate_from(io.BufferedReader(reader, buffer_size=_BLOCK), reader.size, source.key)

    def _estimate_from(
        self, header_bytes: BinaryIO, size: int, key: str, *, library_route: bool = False
    ) -> MemoryEstimate | None:
        """Return the estimated peak decoding memory of an image of ``size`` bytes whose header
        ``header_bytes`` holds, or None if unreadable: bad bytes are left for the full decode to
        judge and name. ``library_route``: see :func:`estimate_memory`."""
        try:
            header = read_header(header_bytes)
        except (OSError, ValueError, EOFError, TypeError, IndexError, KeyError, SyntaxError) as error:
            logger.debug("header not readable for an estimate", key=key, reason=str(error))
            return None
        return estimate_memory(header, self.config.recipe, source_bytes=size, library_route=library_route)

    def _route_by_memory(
        self, source: SourceObject, image_id: str, estimate: MemoryEstimate, memory_mb: int
    ) -> Outcome | None:
        """Return None when this function has the memory the image needs; else hand it to the large
        tier (Outcome ``handed_over``) or record it as ``too_large_to_decode``."""
        config = self.config
        in_use = resident_mb()
        budget = memory_mb - in_use - config.headroom_mb
        if estimate.peak_mb <= budget:
            return None
        tier, memory = config.tier, memory_mb
        if config.tier == "standard" and config.large_queue_url and config.large_memory_mb:
            large_budget = config.large_memory_mb - in_use - config.headroom_mb
            if estimate.peak_mb <= large_budget:
                self.s3_event_to(config.large_queue_url, source)
                logger.info(
                    "handed to the large-image tier",
                    image_id=image_id,
                    key=source.key,
                    estimate_mb=round(estimate.peak_mb),
                    budget_mb=round(budget),
                )
                return Outcome(image_id, "handed_over", f"estimated {estimate.peak_mb:.0f} MB")
            tier, memory, budget = "large", config.large_memory_mb, large_budget
        reason = (
            f"decoding this {estimate.describe()} needs an estimated {estimate.peak_mb:.0f} MB, over the "
            f"{max(0.0, budget):.0f} MB budget of the {tier} resize function ({memory} MB memory less "
            f"{in_use + config.headroom_mb:.0f} MB for the runtime)"
        )
        return self._fail(source, image_id, self._head(source), "too_large_to_decode", reason)

    def s3_event_to(self, queue_url: str, source: SourceObject) -> None:
        """Send ``source`` to another queue as the S3 notification it came in (an AWS error raises)."""
        record: dict[str, Any] = {
            "eventVersion": "2.1",
            "eventSource": "aws:s3",
            "eventName": "ObjectCreated:Put",
            "s3": {
                "bucket": {"name": source.bucket},
                "object": {"key": quote_plus(source.key, safe="/"), "size": source.size, "eTag": source.etag},
            },
        }
        if source.event_time:
            record["eventTime"] = source.event_time
        self.sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps({"Records": [record]}))

    def _already_done(self, image_id: str, etag: str | None) -> bool:
        if not etag:
            return False
        item = self.dynamodb.get_item(
            TableName=self.config.table_name,
            Key={"image_id": {"S": image_id}},
            ProjectionExpression="source_etag, recipe",
            ConsistentRead=True,
        ).get("Item")
        if not item:
            return False
        existing = from_item(item)
        return (
            existing.get("source_etag") == etag.strip('"') and existing.get("recipe") == self._recipe_record
        )

    def _mark_last_attempt(self, source: SourceObject, image_id: str, attempt: int) -> None:
        """Record the upload as failed before its last delivery is processed.

        Earlier deliveries ended without an answer: the function was killed by its timeout or
        memory limit, or AWS calls failed. If this one ends the same way the message goes to the
        DLQ, and without this record the upload would vanish from the dataset without a reason.
        A success, or a rejection of the bytes, overwrites it.
        """
        reason = (
            f"processing did not finish in {attempt} attempts (the function ran out of time or memory, "
            "or AWS calls kept failing); the event is in the dead-letter queue"
        )
        self._fail(source, image_id, self._head(source), "did_not_finish", reason, until_done=True)

    def _head(self, source: SourceObject) -> Mapping[str, Any]:
        try:
            return self.s3.head_object(Bucket=source.bucket, Key=source.key)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in NOT_FOUND_CODES:
                return {}
            raise

    def _base(
        self, source: SourceObject, image_id: str, response: Mapping[str, Any], size: int | None
    ) -> dict[str, Any]:
        label = label_from(source.key, self.config.upload_prefix, response.get("Metadata"))
        etag = response.get("ETag", source.etag)
        return base_record(
            SourceObject(source.bucket, source.key, size, etag, source.event_time),
            image_id=image_id,
            label=label,
            recipe=self.config.recipe,
            shards=self.config.index_shards,
            source_bytes=size,
            filename=original_filename(source.key, response.get("Metadata")),
            tier=self.config.tier,
        )

    def _fail(
        self,
        source: SourceObject,
        image_id: str,
        response: Mapping[str, Any],
        code: str,
        reason: str,
        *,
        until_done: bool = False,
    ) -> Outcome:
        """Write the failed record; ``until_done`` marks a last delivery, which a success overwrites."""
        size = response.get("ContentLength", source.size)
        record = failed_record(self._base(source, image_id, response, size), code=code, reason=reason)
        self.dynamodb.put_item(TableName=self.config.table_name, Item=to_item(record))
        if until_done:
            logger.info(
                "last delivery: recorded as failed until it finishes", image_id=image_id, key=source.key
            )
        else:
            logger.warning("image failed", image_id=image_id, key=source.key, code=code, reason=reason)
        return Outcome(image_id, "failed", reason)

    def _put_variants(self, image_id: str, result: ResizeResult) -> dict[str, dict[str, str]]:
        keys: dict[str, dict[str, str]] = {}
        uploads = []
        for variant in result.variants:
            keys[variant.name] = {}
            for fmt, data in variant.encoded.items():
                key = variant_key(self.config.variants_prefix, image_id, variant.name, fmt)
                keys[variant.name][fmt] = key
                uploads.append(
                    _uploads.submit(
                        self.s3.put_object,
                        Bucket=self.config.variants_bucket,
                        Key=key,
                        Body=data,
                        ContentType=content_type(fmt),
                        # Keys are per image and rewritten only when the source changes.
                        CacheControl="public, max-age=86400",
                    )
                )
        for upload in uploads:
            upload.result()  # re-raises an AWS error so the message is retried
        return keys

    def process_all(
        self,
        sources: Iterable[SourceObject],
        *,
        attempt: int = 1,
        memory_mb: int | None = None,
        then: SourceObject | None = None,
    ) -> list[Outcome]:
        """Return the outcomes of processing each object in turn (the first AWS error raises);
        each image's successor (the next of ``sources``, then ``then``) is read ahead."""
        queue = list(sources)
        following = [*queue[1:], then][: len(queue)]
        return [
            self.process(source, attempt=attempt, memory_mb=memory_mb, then=after)
            for source, after in zip(queue, following, strict=True)
        ]


_BLOCK = 64 * 1024

#: Uploads up to this size (from the notification) are fetched whole in one GET and estimated from
#: their bytes: holding 16 MiB costs less than the extra request a separate header read takes, and
#: the estimate counts the body as held during decoding anyway.
WHOLE_BODY_BYTES = 16 * 2**20


class RangedObject(io.RawIOBase):
    """A read-only, seekable S3 object that fetches what is read in 64 KiB-aligned ranged GETs.

    Header parsers read a few hundred bytes to a few blocks (a TIFF's directory may sit at the end
    of the file), so the estimate costs one or two requests, never the body. At most
    ``max_fetch`` bytes are fetched: a header needing more is not worth estimating.
    """

    def __init__(self, s3: Any, bucket: str, key: str, *, max_fetch: int = 4 * 2**20) -> None:
        super().__init__()
        self.s3, self.bucket, self.key, self.max_fetch = s3, bucket, key, max_fetch
        self.blocks: dict[int, bytes] = {}
        self.position = 0
        self.fetched = 0
        self._size = 0
        self._block(0)
        self.size = self._size

    def _block(self, index: int) -> bytes:
        if index not in self.blocks:
            if self.fetched >= self.max_fetch:
                raise OSError(f"header needs more than {self.max_fetch} bytes")
            start = index * _BLOCK
            response = self.s3.get_object(
                Bucket=self.bucket, Key=self.key, Range=f"bytes={start}-{start + _BLOCK - 1}"
            )
            data = response["Body"].read()
            total = response.get("ContentRange", "").rpartition("/")[2]
            self._size = int(total) if total.isdigit() else int(response["ContentLength"])
            self.fetched += len(data)
            self.blocks[index] = data
        return self.blocks[index]

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.size}[whence]
        self.position = max(0, base + offset)
        return self.position

    def tell(self) -> int:
        return self.position

    def readinto(self, buffer: Any) -> int:
        if self.position >= self.size:
            return 0
        view = memoryview(buffer).cast("B")
        wanted = min(len(view), self.size - self.position)
        done = 0
        while done < wanted:
            index, offset = divmod(self.position, _BLOCK)
            chunk = self._block(index)[offset : offset + wanted - done]
            if not chunk:
                break
            view[done : done + len(chunk)] = chunk
            done += len(chunk)
            self.position += len(chunk)
        return done


def resident_mb() -> float:
    """Return this process's resident memory in MB (the interpreter, libraries and caches)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:  # not Linux: assume a typical Python runtime with boto3 loaded
        return 100.0


def _too_large(size: int, limit: int) -> str:
    return f"object is {size / 2**20:.1f} MiB, over the {limit / 2**20:g} MiB limit"
