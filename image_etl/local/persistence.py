"""Durable state for the moto emulator: object metadata and DynamoDB items in SQLite, bodies on disk.

moto keeps everything in memory. A WSGI middleware in front of it records what each successful
write touched in one SQLite file before the client sees the response, so whatever a client was told
is stored survives a restart, kill -9 included (WAL mode: a committed transaction survives the
process). For S3 the row holds the key's metadata and the name of its body file (`s3_disk`), never
the body: the bytes are written once, to that file, and a restart reads rows, not bodies. Only the
final state of each object and item is kept, so the file does not grow with traffic the way moto's
request recorder does. SQS messages are not kept: on restart the stack re-enqueues exactly the
uploads that have no up-to-date record (`reconcile`), which is both lossless and free of
reprocessing storms.
"""

from __future__ import annotations

import gc
import io
import json
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs
from xml.etree import ElementTree

from moto.dynamodb.models.dynamo_type import DynamoType, Item, LimitedSizeDict
from moto.s3.models import FakeKey
from moto.utilities.utils import LowercaseDict
from werkzeug.formparser import parse_form_data

from image_etl.local.s3_disk import (
    BlobStore,
    DataDirFull,
    DiskBuffer,
    InsufficientStorage,
    body_of,
    insufficient_storage_xml,
)

log = logging.getLogger("image_etl.local.persistence")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS s3_keys (
    bucket TEXT NOT NULL, key TEXT NOT NULL, body_file TEXT, size INTEGER NOT NULL, etag TEXT NOT NULL,
    metadata TEXT NOT NULL, last_modified TEXT NOT NULL, PRIMARY KEY (bucket, key));
CREATE TABLE IF NOT EXISTS glue_catalog (id INTEGER PRIMARY KEY CHECK (id = 1), state TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS dynamodb_items (
    table_name TEXT NOT NULL, item_key TEXT NOT NULL, item TEXT NOT NULL, PRIMARY KEY (table_name, item_key));
"""

_DYNAMODB_WRITES = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}
#: Glue calls that change databases or tables (the Iceberg catalog's commits are UpdateTable).
_GLUE_WRITES = {
    "CreateDatabase",
    "UpdateDatabase",
    "DeleteDatabase",
    "CreateTable",
    "UpdateTable",
    "DeleteTable",
    "BatchDeleteTable",
}


@dataclass(frozen=True)
class StoredObject:
    """One S3 key as recorded: its body is the file ``body_file`` in the BlobStore (None: empty)."""

    bucket: str
    key: str
    body_file: str | None
    size: int
    etag: str
    metadata: dict[str, Any]
    last_modified: datetime


class StateStore:
    """The SQLite file that holds the emulator's object metadata and items."""

    def __init__(self, path: Path, blobs: BlobStore) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()
        self.blobs = blobs
        self._move_bodies_out()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def put_object(self, obj: StoredObject) -> str | None:
        """Record ``obj``; return the body file the key had before (the caller removes it)."""
        with self._lock:
            old = self._body_file(obj.bucket, obj.key)
            self._db.execute(
                "INSERT OR REPLACE INTO s3_keys VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    obj.bucket,
                    obj.key,
                    obj.body_file,
                    obj.size,
                    obj.etag,
                    json.dumps(obj.metadata),
                    obj.last_modified.isoformat(),
                ),
            )
        return old if old != obj.body_file else None

    def delete_object(self, bucket: str, key: str) -> str | None:
        """Forget a key; return its body file (the caller removes it)."""
        with self._lock:
            old = self._body_file(bucket, key)
            self._db.execute("DELETE FROM s3_keys WHERE bucket = ? AND key = ?", (bucket, key))
        return old

    def _body_file(self, bucket: str, key: str) -> str | None:
        row = self._db.execute(
            "SELECT body_file FROM s3_keys WHERE bucket = ? AND key = ?", (bucket, key)
        ).fetchone()
        return row[0] if row else None

    def objects(self) -> Iterator[StoredObject]:
        cursor = self._db.execute(
            "SELECT bucket, key, body_file, size, etag, metadata, last_modified FROM s3_keys"
        )
        for bucket, key, body_file, size, etag, metadata, last_modified in cursor:
            modified = datetime.fromisoformat(last_modified)
            yield StoredObject(bucket, key, body_file, size, etag, json.loads(metadata), modified)

    def body_files(self) -> Iterator[str]:
        for (name,) in self._db.execute("SELECT body_file FROM s3_keys WHERE body_file IS NOT NULL"):
            yield name

    def put_item(self, table: str, key: dict[str, Any], item: dict[str, Any]) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO dynamodb_items VALUES (?, ?, ?)",
                (table, json.dumps(key, sort_keys=True), json.dumps(item)),
            )

    def delete_item(self, table: str, key: dict[str, Any]) -> None:
        with self._lock:
            self._db.execute(
                "DELETE FROM dynamodb_items WHERE table_name = ? AND item_key = ?",
                (table, json.dumps(key, sort_keys=True)),
            )

    def put_glue(self, state: dict[str, Any]) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO glue_catalog VALUES (1, ?)", (json.dumps(state),))

    def glue(self) -> dict[str, Any]:
        row = self._db.execute("SELECT state FROM glue_catalog WHERE id = 1").fetchone()
        return json.loads(row[0]) if row else {}

    def get_item(self, table: str, key: dict[str, Any]) -> dict[str, Any] | None:
        """Return the recorded item with ``key`` (its attributes as DynamoDB JSON), or None."""
        row = self._db.execute(
            "SELECT item FROM dynamodb_items WHERE table_name = ? AND item_key = ?",
            (table, json.dumps(key, sort_keys=True)),
        ).fetchone()
        return json.loads(row[0]) if row else None

    def items(self) -> Iterator[tuple[str, dict[str, Any]]]:
        for table, item in self._db.execute("SELECT table_name, item FROM dynamodb_items"):
            yield table, json.loads(item)

    def _move_bodies_out(self) -> None:
        """Move bodies out of a state file written before bodies lived on disk (one-time, per row)."""
        tables = {row[0] for row in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "s3_objects" not in tables:
            return
        moved = 0
        while True:
            rows = self._db.execute(
                "SELECT rowid, bucket, key, body, etag, metadata, last_modified FROM s3_objects LIMIT 100"
            ).fetchall()
            if not rows:
                break
            for rowid, bucket, key, body, etag, metadata, last_modified in rows:
                name = self.blobs.write(body) if body else None
                with self._lock:
                    self._db.execute("BEGIN")
                    self._db.execute(
                        "INSERT OR REPLACE INTO s3_keys VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (bucket, key, name, len(body), etag, metadata, last_modified),
                    )
                    self._db.execute("DELETE FROM s3_objects WHERE rowid = ?", (rowid,))
                    self._db.execute("COMMIT")
                moved += 1
        self._db.execute("DROP TABLE s3_objects")
        self._db.execute("VACUUM")  # give the bodies' space back
        log.warning("moved %d object bodies out of the state file into %s", moved, self.blobs.root)


class _KeyLocks:
    """Striped locks: read-back + store of one key happen in order, so the newest state is stored last."""

    def __init__(self, stripes: int = 64) -> None:
        self._locks = [threading.Lock() for _ in range(stripes)]

    def __call__(self, *parts: str) -> threading.Lock:
        return self._locks[hash(parts) % len(self._locks)]


class PersistenceMiddleware:
    """WSGI middleware that mirrors what each successful S3/DynamoDB write changed into a StateStore."""

    def __init__(
        self, app: Callable[..., Any], store: StateStore, *, s3: Any, dynamodb: Any, glue: Any = None
    ) -> None:
        """:param s3: moto's S3 backend; :param dynamodb: and :param glue: its DynamoDB and Glue
        backends for the stack's region."""
        self.app = app
        self.store = store
        self.s3 = s3
        self.dynamodb = dynamodb
        self.glue = glue
        self._glue_lock = threading.Lock()
        self._locks = _KeyLocks()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ["REQUEST_METHOD"] in {"GET", "HEAD", "OPTIONS"}:
            return self.app(environ, start_response)
        body = _buffer_body(environ)
        answer: list[Any] = []

        def capture(status_line: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            answer[:] = [status_line, headers, exc_info]
            return lambda _data: None  # moto never writes through the legacy write() callable

        # The client is answered only after the state file holds what the write changed.
        iterable = self.app(environ, capture)
        try:
            response = b"".join(iterable)
        finally:
            if hasattr(iterable, "close"):
                iterable.close()
        status_line, headers, exc_info = answer
        if 200 <= int(status_line.split(" ", 1)[0]) < 300:
            target = environ.get("HTTP_X_AMZ_TARGET", "")
            try:
                if target.startswith("DynamoDB_"):
                    self._mirror_dynamodb(target.split(".", 1)[-1], body)
                elif target.startswith("AWSGlue."):
                    self._mirror_glue(target.split(".", 1)[-1])
                else:
                    self._mirror_s3(environ, body)
            except (sqlite3.OperationalError, DataDirFull) as error:
                log.error("a write was refused, the data dir cannot hold its record: %s", error)
                status_line, headers, response = _insufficient_storage(str(error))
        start_response(status_line, headers, exc_info) if exc_info else start_response(status_line, headers)
        return [response]

    # --- S3 -------------------------------------------------------------------------------------
    def _mirror_s3(self, environ: dict[str, Any], body: bytes) -> None:
        path = environ.get("PATH_INFO", "").encode("latin-1").decode("utf-8", "replace")
        bucket, _, key = path.lstrip("/").partition("/")
        if bucket not in self.s3.buckets:
            return
        query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        method = environ["REQUEST_METHOD"]
        if "partNumber" in query:
            return  # a part is not an object until the upload completes
        if key:
            self._store_object(bucket, key, deleted=method == "DELETE")
        elif method == "POST" and "delete" in query:
            for deleted_key in _keys_in_delete_request(body):
                self._store_object(bucket, deleted_key, deleted=True)
        elif method == "POST":
            form_key = _key_in_form_upload(environ, body)
            if form_key:
                self._store_object(bucket, form_key, deleted=False)

    def _store_object(self, bucket: str, key: str, *, deleted: bool) -> None:
        with self._locks("s3", bucket, key):
            while True:
                fake = self.s3.buckets[bucket].keys.get(key)
                if fake is None:
                    if deleted:
                        self._remove_body(self.store.delete_object(bucket, key))
                    return
                body = body_of(fake)
                if body.commit():
                    break
                # replaced by a newer write between the lookup and the commit: record that one
            try:
                old = self.store.put_object(
                    StoredObject(
                        bucket,
                        key,
                        body.name,
                        body.size,
                        fake.etag,
                        dict(fake.metadata),
                        fake.last_modified,
                    )
                )
            except sqlite3.OperationalError:
                # not recorded, so not stored: the key goes (its file with it) and the client hears why
                self.s3.buckets[bucket].keys.pop(key)
                raise
            self._remove_body(old)

    def _remove_body(self, name: str | None) -> None:
        if name:
            self.store.blobs.remove(name)

    # --- Glue -----------------------------------------------------------------------------------
    def _mirror_glue(self, operation: str) -> None:
        """Keep the whole catalog (a few databases and tables: small) after each change to it."""
        if operation not in _GLUE_WRITES or self.glue is None:
            return
        with self._glue_lock:
            self.store.put_glue(glue_state(self.glue))

    # --- DynamoDB -------------------------------------------------------------------------------
    def _mirror_dynamodb(self, operation: str, body: bytes) -> None:
        if operation not in _DYNAMODB_WRITES:
            return
        request = json.loads(body or b"{}")
        for table, key in self._touched_keys(operation, request):
            with self._locks("dynamodb", table, json.dumps(key, sort_keys=True)):
                item = self.dynamodb.get_item(table, key)
                try:
                    if item is None:
                        self.store.delete_item(table, key)
                    else:
                        self.store.put_item(table, key, item.to_json()["Attributes"])
                except (sqlite3.OperationalError, DataDirFull):
                    # The client is told the write failed: moto's memory must not say otherwise
                    # (a reader, e.g. the resizer's idempotency check, would trust it).
                    self._revert_item(table, key)
                    raise

    def _revert_item(self, table_name: str, key: dict[str, Any]) -> None:
        """Put moto's copy of the item with ``key`` back to what the state file holds."""
        table = self.dynamodb.get_table(table_name)
        recorded = self.store.get_item(table_name, key)
        if recorded is not None:
            _put_item(table, recorded)
            return
        hash_key = DynamoType(key[table.hash_key_attr])
        if table.range_key_attr:
            table.items.get(hash_key, {}).pop(DynamoType(key[table.range_key_attr]), None)
        else:
            table.items.pop(hash_key, None)

    def _touched_keys(self, operation: str, request: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
        if operation in {"UpdateItem", "DeleteItem"}:
            yield request["TableName"], request["Key"]
        elif operation == "PutItem":
            yield request["TableName"], self._key_of(request["TableName"], request["Item"])
        elif operation == "BatchWriteItem":
            for table, writes in request.get("RequestItems", {}).items():
                for write in writes:
                    if "PutRequest" in write:
                        yield table, self._key_of(table, write["PutRequest"]["Item"])
                    elif "DeleteRequest" in write:
                        yield table, write["DeleteRequest"]["Key"]
        elif operation == "TransactWriteItems":
            for entry in request.get("TransactItems", []):
                for kind, spec in entry.items():
                    if kind == "Put":
                        yield spec["TableName"], self._key_of(spec["TableName"], spec["Item"])
                    elif kind in {"Update", "Delete"}:
                        yield spec["TableName"], spec["Key"]

    def _key_of(self, table_name: str, item: dict[str, Any]) -> dict[str, Any]:
        table = self.dynamodb.get_table(table_name)
        names = [table.hash_key_attr] + ([table.range_key_attr] if table.range_key_attr else [])
        return {name: item[name] for name in names}


def restore(store: StateStore, *, s3: Any, dynamodb: Any, account_id: str, region: str) -> tuple[int, int]:
    """Put every recorded key and item back into fresh moto backends, firing no S3 events.

    Keys get their body files by name: no body is read, so the time this takes follows the number
    of keys, not their bytes. Files no record names are deleted first (see s3_disk).

    :return: (objects, items) restored.
    """
    gc.disable()  # a restore allocates ~10 objects per key and record, none of them garbage
    try:
        return _restore(store, s3=s3, dynamodb=dynamodb, account_id=account_id, region=region)
    finally:
        gc.enable()
        gc.freeze()  # and later collections need not walk them again


def _restore(store: StateStore, *, s3: Any, dynamodb: Any, account_id: str, region: str) -> tuple[int, int]:
    swept = store.blobs.sweep(store.body_files())
    if swept:
        log.warning("removed %d body files no record named (writes cut short by a kill)", swept)
    objects = items = 0
    # Every restored key starts as a copy of one blank key: FakeKey() builds a fresh ACL and state
    # machine per key (a third of a restart's time); a copy shares the blank key's, and moto only
    # ever replaces those, never changes them in place.
    blank = FakeKey("", b"", account_id, region)
    for obj in store.objects():
        bucket = s3.buckets.get(obj.bucket)
        if bucket is None:
            continue
        # moto's __new__ tracks the key, so a reset disposes it; its hints say it returns a BaseModel.
        fake: FakeKey = FakeKey.__new__(FakeKey)  # type: ignore[assignment]
        fake.__dict__.update(blank.__dict__)
        fake.name, fake.bucket_name, fake._etag = obj.key, obj.bucket, obj.etag.strip('"')
        fake._metadata = LowercaseDict(obj.metadata)
        fake.lock = threading.Lock()
        body = DiskBuffer(store.blobs)
        body.adopt(obj.body_file, obj.size)
        fake._value_buffer = body  # type: ignore[assignment]  # stands in for moto's SpooledTemporaryFile
        fake.contentsize = obj.size
        fake.last_modified = obj.last_modified
        bucket.keys.setlist(obj.key, [fake])
        objects += 1
    tables: dict[str, Any] = {}
    for table_name, attrs in store.items():
        if table_name not in tables:
            tables[table_name] = dynamodb.get_table(table_name)
        _put_item(tables[table_name], attrs)
        items += 1
    return objects, items


def glue_state(glue: Any) -> dict[str, Any]:
    """Return moto's Glue catalog as JSON: each database's input and each table's current version
    (its number matters: an Iceberg commit is an UpdateTable conditional on it)."""
    return {
        name: {
            "input": database.input,
            "tables": {
                table.name: {
                    "version": table._current_version,
                    "input": table.get_version(str(table._current_version)),
                }
                for table in database.tables.values()
            },
        }
        for name, database in glue.databases.items()
    }


def restore_glue(glue: Any, state: dict[str, Any]) -> None:
    """Put the databases and tables of :func:`glue_state` back (a database provisioned already is kept)."""
    for name, database in state.items():
        if name not in glue.databases:
            glue.create_database(name, database["input"])
        for table_name, table in database["tables"].items():
            if table_name in glue.databases[name].tables:
                glue.delete_table(name, table_name)
            fake = glue.create_table(name, table_name, table["input"])
            fake._current_version = table["version"]
            fake.versions = {str(table["version"]): table["input"]}


def _put_item(table: Any, attrs: dict[str, Any]) -> None:
    """Put a recorded item back as moto's put_item would, without its per-attribute checks.

    moto's Item re-checks the 400 KB limit as each attribute is added (quadratic in the number of
    attributes): 0.36 ms per record here, most of a restart. A recorded item passed those checks
    when it was written.
    """
    item: Item = Item.__new__(Item)  # type: ignore[assignment]  # moto's hints: a BaseModel
    item.hash_key = DynamoType(attrs[table.hash_key_attr])
    item.range_key = DynamoType(attrs[table.range_key_attr]) if table.range_key_attr else None
    item.attrs = LimitedSizeDict({name: DynamoType(value) for name, value in attrs.items()})
    if item.range_key is not None:
        table.items[item.hash_key][item.range_key] = item
    else:
        table.items[item.hash_key] = item


def _insufficient_storage(message: str) -> tuple[str, list[tuple[str, str]], bytes]:
    xml = insufficient_storage_xml(message)
    return (
        f"{InsufficientStorage.code} Insufficient Storage",
        [("Content-Type", "application/xml"), ("Content-Length", str(len(xml)))],
        xml,
    )


def _buffer_body(environ: dict[str, Any]) -> bytes:
    stream = environ["wsgi.input"]
    length = environ.get("CONTENT_LENGTH")
    if environ.get("wsgi.input_terminated") or not length:
        body = stream.read() if environ.get("wsgi.input_terminated") else b""
    else:
        body = stream.read(int(length))
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    return body


def _keys_in_delete_request(body: bytes) -> list[str]:
    root = ElementTree.fromstring(body)
    return [element.text or "" for element in root.iter() if element.tag.endswith("Key") and element.text]


def _key_in_form_upload(environ: dict[str, Any], body: bytes) -> str | None:
    copy = dict(environ, **{"wsgi.input": io.BytesIO(body)})
    _, form, files = parse_form_data(copy)
    key = form.get("key")
    if not key:
        return None
    upload = files.get("file")
    return key.replace("${filename}", upload.filename or "") if upload else key
