"""Object bodies live on disk under the data dir, once, through every S3 call the stack makes."""

from __future__ import annotations

import errno
import hashlib
import os
import sqlite3
import subprocess
from pathlib import Path

import pytest
import requests
from botocore.exceptions import ClientError

from image_etl.local import s3_disk
from image_etl.local.emulator import Emulator
from image_etl.local.s3_disk import BlobStore, DiskBuffer
from image_etl.settings import OBJECTS_DIR, STATE_DB, local_settings
from tests.image_etl.local.conftest import DiskFull
from tests.image_etl.local.emulators import restart, stop_clean

pytestmark = pytest.mark.slow  # each test starts (and most restart) the emulator


def body_files(data_dir: Path) -> dict[str, bytes]:
    root = data_dir / OBJECTS_DIR
    return {
        path.name: path.read_bytes()
        for shard in root.iterdir()
        if shard.name != "tmp"
        for path in shard.iterdir()
    }


def referenced(data_dir: Path) -> set[str]:
    with sqlite3.connect(data_dir / STATE_DB) as db:
        return {row[0] for row in db.execute("SELECT body_file FROM s3_keys WHERE body_file IS NOT NULL")}


def test_each_body_is_one_file_and_never_in_the_state_file_or_in_memory(
    emulator: dict[str, Emulator], tmp_path: Path
) -> None:
    settings = emulator["current"].settings
    s3 = settings.client("s3")
    bodies = {f"v/{i}.bin": os.urandom(300_000 + i) for i in range(3)}
    for key, body in bodies.items():
        s3.put_object(Bucket=settings.variants_bucket, Key=key, Body=body)

    files = body_files(tmp_path)
    assert sorted(files.values()) == sorted(bodies.values())
    assert set(files) == referenced(tmp_path)
    state_bytes = sum(p.stat().st_size for p in tmp_path.glob(f"{STATE_DB}*"))
    assert state_bytes < sum(map(len, bodies.values())) / 4  # metadata only
    fake = emulator["current"]._s3.buckets[settings.variants_bucket].keys["v/0.bin"]
    assert isinstance(fake._value_buffer, DiskBuffer)  # moto holds a file name, not the bytes
    for key, body in bodies.items():
        assert s3.get_object(Bucket=settings.variants_bucket, Key=key)["Body"].read() == body


def test_overwrite_and_delete_leave_no_orphan_file(emulator: dict[str, Emulator], tmp_path: Path) -> None:
    settings = emulator["current"].settings
    s3, bucket = settings.client("s3"), settings.variants_bucket
    for version in range(3):
        s3.put_object(Bucket=bucket, Key="v/again.jpg", Body=f"version {version}".encode() * 1000)
    for name in ("a", "b", "c"):
        s3.put_object(Bucket=bucket, Key=f"v/{name}.jpg", Body=name.encode() * 1000)
    s3.delete_object(Bucket=bucket, Key="v/a.jpg")
    s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "v/b.jpg"}, {"Key": "v/missing.jpg"}]})
    s3.copy_object(Bucket=bucket, Key="v/copy.jpg", CopySource={"Bucket": bucket, "Key": "v/c.jpg"})

    files = body_files(tmp_path)
    assert sorted(files.values()) == sorted([b"version 2" * 1000, b"c" * 1000, b"c" * 1000])
    assert set(files) == referenced(tmp_path)
    assert not list((tmp_path / OBJECTS_DIR / "tmp").iterdir())


def test_range_gets_multipart_and_presigned_uploads_work_and_survive_a_restart(
    emulator: dict[str, Emulator], tmp_path: Path
) -> None:
    settings = emulator["current"].settings
    s3, bucket = settings.client("s3"), settings.variants_bucket
    parts = [os.urandom(5 * 2**20), os.urandom(5 * 2**20), os.urandom(1234)]
    upload = s3.create_multipart_upload(Bucket=bucket, Key="big/file.bin")
    etags = [
        s3.upload_part(Bucket=bucket, Key="big/file.bin", UploadId=upload["UploadId"], PartNumber=n, Body=p)[
            "ETag"
        ]
        for n, p in enumerate(parts, start=1)
    ]
    done = s3.complete_multipart_upload(
        Bucket=bucket,
        Key="big/file.bin",
        UploadId=upload["UploadId"],
        MultipartUpload={"Parts": [{"ETag": e, "PartNumber": n} for n, e in enumerate(etags, start=1)]},
    )
    assert done["ETag"].endswith('-3"')
    whole = b"".join(parts)
    post = s3.generate_presigned_post(settings.upload_bucket, "uploads/l/posted.jpg")
    assert requests.post(post["url"], data=post["fields"], files={"file": b"posted"}, timeout=10).ok
    put_url = s3.generate_presigned_url(
        "put_object", Params={"Bucket": settings.upload_bucket, "Key": "uploads/l/put.jpg"}
    )
    assert requests.put(put_url, data=b"put", timeout=10).ok
    # the parts were files too: once the object is complete only its own file is left
    assert set(body_files(tmp_path)) == referenced(tmp_path)

    emulator["current"] = restart(emulator["current"], tmp_path)
    s3 = emulator["current"].settings.client("s3")
    ranged = s3.get_object(Bucket=bucket, Key="big/file.bin", Range="bytes=5242870-5242889")
    assert ranged["Body"].read() == whole[5242870:5242890]
    assert ranged["ContentRange"] == f"bytes 5242870-5242889/{len(whole)}"
    head = s3.head_object(Bucket=bucket, Key="big/file.bin")
    assert (head["ETag"], head["ContentLength"]) == (done["ETag"], len(whole))
    assert hashlib.sha256(s3.get_object(Bucket=bucket, Key="big/file.bin")["Body"].read()).digest() == (
        hashlib.sha256(whole).digest()
    )
    for key, body in (("uploads/l/posted.jpg", b"posted"), ("uploads/l/put.jpg", b"put")):
        assert s3.get_object(Bucket=settings.upload_bucket, Key=key)["Body"].read() == body
    listed = s3.list_objects_v2(Bucket=settings.upload_bucket, Prefix="uploads/l/")["Contents"]
    assert {o["Key"]: o["Size"] for o in listed} == {"uploads/l/posted.jpg": 6, "uploads/l/put.jpg": 3}


def test_a_restart_reads_records_not_bodies(
    emulator: dict[str, Emulator], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = emulator["current"].settings
    s3 = settings.client("s3")
    for i in range(40):
        s3.put_object(
            Bucket=settings.variants_bucket, Key=f"v/{i}.bin", Body=os.urandom(50_000), Metadata={"n": str(i)}
        )
    reads: list[str] = []
    real_read = BlobStore.read
    monkeypatch.setattr(
        BlobStore, "read", lambda self, name, *a: reads.append(name) or real_read(self, name, *a)
    )

    emulator["current"] = restart(emulator["current"], tmp_path)
    report_reads = list(reads)
    s3 = emulator["current"].settings.client("s3")
    head = s3.head_object(Bucket=settings.variants_bucket, Key="v/7.bin")

    assert report_reads == []  # start-up opened no body
    assert head["ContentLength"] == 50_000 and head["Metadata"] == {"n": "7"}
    assert len(s3.get_object(Bucket=settings.variants_bucket, Key="v/7.bin")["Body"].read()) == 50_000
    assert reads  # ...and a GET reads its body from the file


def test_files_left_by_a_cut_write_are_swept_at_start(emulator: dict[str, Emulator], tmp_path: Path) -> None:
    settings = emulator["current"].settings
    settings.client("s3").put_object(Bucket=settings.variants_bucket, Key="v/kept.bin", Body=b"kept")
    store = emulator["current"].blobs
    orphan = store.write(b"written, then killed before its record")
    (store.root / "tmp" / "half").write_bytes(b"half a bo")
    emulator["current"] = restart(emulator["current"], tmp_path)
    assert not store.path(orphan).exists()
    assert list(body_files(tmp_path).values()) == [b"kept"]
    assert not list((tmp_path / OBJECTS_DIR / "tmp").iterdir())


def test_a_full_disk_refuses_the_write_clearly_and_keeps_nothing_of_it(
    emulator: dict[str, Emulator],
    tmp_path: Path,
    disk_full: DiskFull,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = emulator["current"].settings
    s3 = settings.client("s3")  # 507 is not retried: the answer is immediate
    s3.put_object(Bucket=settings.variants_bucket, Key="v/before.bin", Body=b"before")

    no_space = OSError(errno.ENOSPC, "No space left on device")
    with disk_full(s3_disk, "open", no_space), pytest.raises(ClientError) as refused:
        s3.put_object(Bucket=settings.variants_bucket, Key="v/after.bin", Body=b"x" * 10_000)

    error = refused.value.response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 507
    assert error["Error"]["Code"] == "InsufficientStorage"
    assert "data dir" in error["Error"]["Message"] and "full" in error["Error"]["Message"]
    assert "refused a 10000-byte write" in caplog.text  # the stack's log says so too
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=settings.variants_bucket)["Contents"]]
    assert keys == ["v/before.bin"]
    assert list(body_files(tmp_path).values()) == [b"before"]
    # space is back: the same write now succeeds
    s3.put_object(Bucket=settings.variants_bucket, Key="v/after.bin", Body=b"x" * 10_000)


def test_a_really_full_filesystem_gives_the_same_clear_error(tmp_path: Path) -> None:
    mount = tmp_path / "small"
    mount.mkdir()
    if subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount)], capture_output=True
    ).returncode:
        pytest.skip("cannot mount a small tmpfs here (needs root); the injected ENOSPC test covers the path")
    try:
        emulator = Emulator(mount, port=0)
        emulator.blobs.min_free_bytes = 0  # no reserve: let the filesystem itself run out
        emulator.start()
        settings = emulator.settings
        s3 = settings.client("s3")  # 507 is not retried: the answer is immediate
        stored: dict[str, bytes] = {}
        with pytest.raises(ClientError) as refused:
            for i in range(100):
                body = os.urandom(2**20)
                s3.put_object(Bucket=settings.variants_bucket, Key=f"v/{i}.bin", Body=body)
                stored[f"v/{i}.bin"] = body
        assert refused.value.response["Error"]["Code"] == "InsufficientStorage"
        assert 5 < len(stored) < 24
        listed = {o["Key"] for o in s3.list_objects_v2(Bucket=settings.variants_bucket)["Contents"]}
        assert listed == set(stored)  # the refused object is not there, half or whole
        for key, body in stored.items():
            assert s3.get_object(Bucket=settings.variants_bucket, Key=key)["Body"].read() == body
        stop_clean(emulator)
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_state_files_from_before_bodies_on_disk_are_moved_out(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / STATE_DB) as db:
        db.execute(
            "CREATE TABLE s3_objects (bucket TEXT NOT NULL, key TEXT NOT NULL, body BLOB NOT NULL, "
            "etag TEXT NOT NULL, metadata TEXT NOT NULL, last_modified TEXT NOT NULL, "
            "PRIMARY KEY (bucket, key))"
        )
        db.execute(
            "INSERT INTO s3_objects VALUES (?, ?, ?, ?, ?, ?)",
            (
                local_settings(tmp_path).variants_bucket,
                "v/old.jpg",
                b"old body",
                '"' + hashlib.md5(b"old body").hexdigest() + '"',
                '{"Content-Type": "image/jpeg"}',
                "2026-11-01T10:00:00+00:00",
            ),
        )
    emulator = Emulator(tmp_path, port=0)
    emulator.start()
    try:
        s3 = emulator.settings.client("s3")
        got = s3.get_object(Bucket=emulator.settings.variants_bucket, Key="v/old.jpg")
        assert got["Body"].read() == b"old body" and got["ContentType"] == "image/jpeg"
        assert list(body_files(tmp_path).values()) == [b"old body"]
        with sqlite3.connect(tmp_path / STATE_DB) as db:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert "s3_objects" not in tables
    finally:
        stop_clean(emulator)


def test_disk_buffer_is_never_a_partial_body(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    buffer = DiskBuffer(store)
    buffer.write(b"first")
    buffer.seek(0)
    buffer.truncate()
    buffer.write(b"second body")
    buffer.seek(7)
    assert buffer.read(3) == b"bod" and buffer.read() == b"y"
    assert [p.read_bytes() for p in tmp_path.glob("??/*")] == [b"second body"]  # "first" went at once
    buffer.close()
    assert not list(tmp_path.glob("??/*"))  # never recorded: closing drops it
