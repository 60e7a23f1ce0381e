"""What a client was told is stored survives a restart: S3 keys (metadata and body files), DynamoDB
items and the Glue catalog, recorded by the middleware and put back by `restore`.

The emulator's own stack (moto's dispatcher behind the persistence middleware) is called in this
process: boto3's requests go to it through a botocore ``before-send`` hook instead of a socket, so
every request takes the path it takes in `image-etl up`, without a server.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
import werkzeug.test
from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from botocore.compat import HTTPHeaders
from botocore.config import Config
from botocore.exceptions import ClientError
from moto.backends import get_backend
from moto.core.botocore_stubber import MockRawResponse
from moto.server import DomainDispatcherApplication, create_backend_app

from image_etl.local import s3_disk
from image_etl.local.persistence import PersistenceMiddleware, StateStore, restore, restore_glue
from image_etl.local.provision import table_definition
from image_etl.local.s3_disk import BlobStore
from image_etl.resource_shapes import LOCAL, LOCAL_CREDENTIALS
from image_etl.settings import LOCAL_ACCOUNT_ID, OBJECTS_DIR, STATE_DB
from tests.image_etl.local.conftest import DiskFull

REGION = "us-east-1"
BUCKET = LOCAL.variants_bucket
TABLE = LOCAL.table.name
DATABASE = LOCAL.catalog.database


class InProcessEmulator:
    """The emulator's WSGI stack on ``data_dir`` with a fresh moto, as `Emulator.start` builds it."""

    def __init__(self, data_dir: Path) -> None:
        self.dispatcher = DomainDispatcherApplication(create_backend_app)
        werkzeug.test.Client(self.dispatcher).post("/moto-api/reset")  # a new process has no state
        self.blobs = BlobStore(data_dir / OBJECTS_DIR)
        s3_disk.install(self.blobs)
        self.store = StateStore(data_dir / STATE_DB, self.blobs)
        s3 = get_backend("s3")[LOCAL_ACCOUNT_ID]["aws"]
        dynamodb = get_backend("dynamodb")[LOCAL_ACCOUNT_ID][REGION]
        glue = get_backend("glue")[LOCAL_ACCOUNT_ID][REGION]
        self.http = werkzeug.test.Client(
            PersistenceMiddleware(self.dispatcher, self.store, s3=s3, dynamodb=dynamodb, glue=glue)
        )
        # the start-up order of Emulator.start: the catalog, the resources, then the stored state
        restore_glue(glue, self.store.glue())
        self.client("s3").create_bucket(Bucket=BUCKET)
        self.client("dynamodb").create_table(**table_definition(LOCAL))
        self.restored = restore(
            self.store, s3=s3, dynamodb=dynamodb, account_id=LOCAL_ACCOUNT_ID, region=REGION
        )

    def client(self, service: str) -> Any:
        """A boto3 client whose requests this emulator answers."""
        client = _client(service)
        client.meta.events.unregister("before-send", unique_id=_HOOK)
        client.meta.events.register("before-send", self._send, unique_id=_HOOK)
        return client

    def _send(self, request: AWSPreparedRequest, **_kwargs: Any) -> AWSResponse:
        url = urlsplit(request.url)
        body = request.body
        data = body if body is None or isinstance(body, str | bytes | bytearray) else body.read()
        sent = [(k, v.decode() if isinstance(v, bytes) else v) for k, v in request.headers.items()]
        answer = self.http.open(
            url.path,
            base_url=f"{url.scheme}://{url.netloc}",
            query_string=url.query,
            method=request.method,
            headers=sent,
            data=data or b"",
        )
        headers = HTTPHeaders.from_pairs(list(answer.headers.items()))
        return AWSResponse(request.url, answer.status_code, headers, MockRawResponse(answer.data))

    def stop(self) -> None:
        self.store.close()
        s3_disk.uninstall()


_HOOK = "in-process-emulator"


@cache
def _client(service: str) -> Any:
    """One client per service for the whole module: building one costs ~0.3 s of botocore's model loading."""
    session = boto3.session.Session(**LOCAL_CREDENTIALS, region_name=REGION)
    config = Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1})
    return session.client(service, endpoint_url="http://127.0.0.1:4566", config=config)


@pytest.fixture
def emulators(tmp_path: Path) -> Iterator[list[InProcessEmulator]]:
    """The emulator on ``tmp_path``; a test appends the one it restarts (the last one is stopped)."""
    started = [InProcessEmulator(tmp_path)]
    yield started
    started[-1].stop()
    werkzeug.test.Client(started[-1].dispatcher).post("/moto-api/reset")  # leave no keys to the next test


def restart(emulators: list[InProcessEmulator], data_dir: Path) -> InProcessEmulator:
    emulators[-1].stop()
    emulators.append(InProcessEmulator(data_dir))
    return emulators[-1]


def body_files(data_dir: Path) -> list[bytes]:
    return sorted(path.read_bytes() for path in (data_dir / OBJECTS_DIR).glob("??/*"))


def full_database() -> sqlite3.OperationalError:
    """Return what SQLite raises when the state file's disk is full."""
    return sqlite3.OperationalError("database or disk is full")


def table_input(**parameters: str) -> dict[str, Any]:
    return {"Name": "manifest", "TableType": "EXTERNAL_TABLE", "Parameters": parameters}


def test_keys_items_and_the_catalog_come_back_after_a_restart(
    emulators: list[InProcessEmulator], tmp_path: Path
) -> None:
    first = emulators[0]
    s3, dynamodb, glue = first.client("s3"), first.client("dynamodb"), first.client("glue")
    put = s3.put_object(
        Bucket=BUCKET, Key="v/a.jpg", Body=b"jpeg bytes", ContentType="image/jpeg", Metadata={"label": "cat"}
    )
    for version in (b"first", b"second"):
        s3.put_object(Bucket=BUCKET, Key="v/b.bin", Body=version)
    for key in ("v/c.bin", "v/d.bin", "v/e.bin"):
        s3.put_object(Bucket=BUCKET, Key=key, Body=key.encode())
    s3.put_object(Bucket=BUCKET, Key="v/empty", Body=b"")
    s3.delete_object(Bucket=BUCKET, Key="v/c.bin")
    s3.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": "v/d.bin"}, {"Key": "v/never.bin"}]})

    def item(image_id: str, status: str = "processed") -> dict[str, Any]:
        return {"image_id": {"S": image_id}, "status": {"S": status}}

    dynamodb.put_item(TableName=TABLE, Item=item("x1", "pending"))
    dynamodb.update_item(
        TableName=TABLE,
        Key={"image_id": {"S": "x1"}},
        UpdateExpression="SET #s = :s, width = :w",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":s": {"S": "processed"}, ":w": {"N": "640"}},
    )
    dynamodb.put_item(TableName=TABLE, Item=item("x2"))
    dynamodb.delete_item(TableName=TABLE, Key={"image_id": {"S": "x2"}})
    dynamodb.batch_write_item(
        RequestItems={TABLE: [{"PutRequest": {"Item": item("x3")}}, {"PutRequest": {"Item": item("x4")}}]}
    )
    dynamodb.batch_write_item(RequestItems={TABLE: [{"DeleteRequest": {"Key": {"image_id": {"S": "x4"}}}}]})
    dynamodb.transact_write_items(TransactItems=[{"Put": {"TableName": TABLE, "Item": item("x5")}}])

    glue.create_database(DatabaseInput={"Name": DATABASE, "LocationUri": "s3://datasets/iceberg/"})
    glue.create_table(DatabaseName=DATABASE, TableInput=table_input(metadata_location="s3://m/1.json"))
    glue.update_table(DatabaseName=DATABASE, TableInput=table_input(metadata_location="s3://m/2.json"))

    second = restart(emulators, tmp_path)
    s3, dynamodb, glue = second.client("s3"), second.client("dynamodb"), second.client("glue")

    assert second.restored == (4, 3)  # (objects, items)
    listed = s3.list_objects_v2(Bucket=BUCKET)["Contents"]
    assert {o["Key"]: o["Size"] for o in listed} == {"v/a.jpg": 10, "v/b.bin": 6, "v/e.bin": 7, "v/empty": 0}
    got = s3.get_object(Bucket=BUCKET, Key="v/a.jpg")
    assert got["Body"].read() == b"jpeg bytes"
    assert (got["ContentType"], got["Metadata"], got["ETag"]) == ("image/jpeg", {"label": "cat"}, put["ETag"])
    assert got["ETag"] == f'"{hashlib.md5(b"jpeg bytes").hexdigest()}"'
    assert s3.get_object(Bucket=BUCKET, Key="v/b.bin")["Body"].read() == b"second"
    assert s3.get_object(Bucket=BUCKET, Key="v/empty")["Body"].read() == b""
    # one file per kept body: overwritten and deleted bodies are gone, the empty one never had one
    assert body_files(tmp_path) == [b"jpeg bytes", b"second", b"v/e.bin"]

    items = {i["image_id"]["S"]: i for i in dynamodb.scan(TableName=TABLE)["Items"]}
    assert set(items) == {"x1", "x3", "x5"}
    assert items["x1"]["status"] == {"S": "processed"} and items["x1"]["width"] == {"N": "640"}
    # restored items are moto's own: a conditional write sees them
    with pytest.raises(ClientError, match="ConditionalCheckFailed"):
        dynamodb.put_item(
            TableName=TABLE, Item=item("x3"), ConditionExpression="attribute_not_exists(image_id)"
        )

    table = glue.get_table(DatabaseName=DATABASE, Name="manifest")["Table"]
    assert table["Parameters"] == {"metadata_location": "s3://m/2.json"}
    assert table["VersionId"] == "2"  # an Iceberg commit is conditional on it
    assert glue.get_database(Name=DATABASE)["Database"]["LocationUri"] == "s3://datasets/iceberg/"


def test_restore_sweeps_the_files_no_record_names(emulators: list[InProcessEmulator], tmp_path: Path) -> None:
    emulators[0].client("s3").put_object(Bucket=BUCKET, Key="v/kept.bin", Body=b"kept")
    orphan = emulators[0].blobs.write(b"written, then killed before its record")
    (tmp_path / OBJECTS_DIR / "tmp" / "half").write_bytes(b"half a bo")
    restart(emulators, tmp_path)
    assert body_files(tmp_path) == [b"kept"]
    assert not emulators[-1].blobs.path(orphan).exists()
    assert not list((tmp_path / OBJECTS_DIR / "tmp").iterdir())


def test_a_state_file_that_cannot_be_written_refuses_the_write_with_507_and_keeps_nothing(
    emulators: list[InProcessEmulator], tmp_path: Path, disk_full: DiskFull
) -> None:
    s3 = emulators[0].client("s3")
    s3.put_object(Bucket=BUCKET, Key="v/before.bin", Body=b"before")

    with disk_full(StateStore, "put_object", full_database()), pytest.raises(ClientError) as refused:
        s3.put_object(Bucket=BUCKET, Key="v/after.bin", Body=b"after")

    error = refused.value.response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 507
    assert error["Error"] == {"Code": "InsufficientStorage", "Message": "database or disk is full"}
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]] == ["v/before.bin"]
    restart(emulators, tmp_path)
    assert [o["Key"] for o in emulators[-1].client("s3").list_objects_v2(Bucket=BUCKET)["Contents"]] == [
        "v/before.bin"
    ]
    assert body_files(tmp_path) == [b"before"]


def test_a_refused_item_write_is_not_visible_either(
    emulators: list[InProcessEmulator], disk_full: DiskFull
) -> None:
    dynamodb = emulators[0].client("dynamodb")

    with (
        disk_full(StateStore, "put_item", full_database()),
        pytest.raises(ClientError, match="InsufficientStorage"),
    ):
        dynamodb.put_item(TableName=TABLE, Item={"image_id": {"S": "x"}, "status": {"S": "processed"}})
    assert "Item" not in dynamodb.get_item(TableName=TABLE, Key={"image_id": {"S": "x"}})


def test_a_state_file_from_before_bodies_on_disk_has_its_bodies_moved_out(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / STATE_DB) as db:
        db.execute(
            "CREATE TABLE s3_objects (bucket TEXT NOT NULL, key TEXT NOT NULL, body BLOB NOT NULL, "
            "etag TEXT NOT NULL, metadata TEXT NOT NULL, last_modified TEXT NOT NULL, "
            "PRIMARY KEY (bucket, key))"
        )
        for key, body in (("v/old.jpg", b"old body"), ("v/empty", b"")):
            db.execute(
                "INSERT INTO s3_objects VALUES (?, ?, ?, ?, ?, ?)",
                (
                    BUCKET,
                    key,
                    body,
                    '"etag"',
                    json.dumps({"Content-Type": "image/jpeg"}),
                    "2026-11-01T10:00:00+00:00",
                ),
            )
    store = StateStore(tmp_path / STATE_DB, BlobStore(tmp_path / OBJECTS_DIR))
    try:
        objects = {o.key: o for o in store.objects()}
        old, empty = objects["v/old.jpg"], objects["v/empty"]
        assert (old.size, old.etag, old.metadata) == (8, '"etag"', {"Content-Type": "image/jpeg"})
        assert old.body_file is not None and store.blobs.read(old.body_file) == b"old body"
        assert (empty.size, empty.body_file) == (0, None)
        assert str(old.last_modified) == "2026-11-01 10:00:00+00:00"
    finally:
        store.close()
    with sqlite3.connect(tmp_path / STATE_DB) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "s3_objects" not in tables  # the old rows (and their bodies' space) are gone
    assert body_files(tmp_path) == [b"old body"]
