"""End to end through the real local stack: `image-etl up` in a subprocess, everything over HTTP."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from image_etl.settings import OBJECTS_DIR, STATE_DB, Settings
from lambda_resizer.records import from_item, image_id_for
from tests.imaging import encode, photo_like
from tests.stack_process import RunningStack, free_port, image_etl_cli

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

DEADLINE_S = 90


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    root = tmp_path_factory.mktemp("stack")
    stack = RunningStack(root / "data", free_port(), free_port())
    stack.start()
    yield stack
    if stack.process and stack.process.poll() is None:
        stack.stop()


def records(settings: Settings) -> dict[str, dict[str, Any]]:
    items = settings.client("dynamodb").get_paginator("scan").paginate(TableName=settings.table_name)
    return {r["source_key"]: r for page in items for r in map(from_item, page["Items"])}


def wait_for(
    settings: Settings, keys: list[str], deadline_s: float = DEADLINE_S
) -> dict[str, dict[str, Any]]:
    end = time.monotonic() + deadline_s
    while True:
        found = records(settings)
        if all(key in found for key in keys) or time.monotonic() > end:
            return found
        time.sleep(0.5)


def write_dataset(folder: Path, count: int) -> list[Path]:
    """Images of assorted formats and sizes in ImageFolder layout, plus hostile files."""
    formats = [
        ("JPEG", "jpg", {}),
        ("PNG", "png", {}),
        ("WEBP", "webp", {}),
        ("GIF", "gif", {}),
        ("TIFF", "tif", {}),
        ("BMP", "bmp", {}),
    ]
    written = []
    for index in range(count):
        fmt, suffix, params = formats[index % len(formats)]
        label = ("cats", "dogs", "birds")[index % 3]
        size = [(1600, 1200), (900, 1400), (640, 480), (300, 200)][index % 4]
        path = folder / label / f"img_{index:02d}.{suffix}"
        path.parent.mkdir(parents=True, exist_ok=True)
        image = photo_like(100 + index, size)
        path.write_bytes(encode(image if fmt != "GIF" else image.convert("P"), fmt, **params))
        written.append(path)
    return written


def test_cli_upload_makes_a_record_and_four_variants_each(running: RunningStack, tmp_path: Path) -> None:
    files = write_dataset(tmp_path / "set", 21)
    hostile = tmp_path / "hostile"
    hostile.mkdir()
    (hostile / "zero.jpg").write_bytes(b"")
    (hostile / "text.jpg").write_text("just text")
    (hostile / "truncated.jpg").write_bytes(files[0].read_bytes()[:2000])
    upload = image_etl_cli("upload", str(tmp_path / "set"), "--data-dir", str(running.data_dir), timeout=120)
    assert upload.returncode == 0, upload.stderr
    assert "uploaded 21 of 21 files" in upload.stderr
    hostile_upload = image_etl_cli(
        "upload", str(hostile), "--label", "junk", "--wait", "--data-dir", str(running.data_dir), timeout=180
    )
    assert "failed 3" in hostile_upload.stderr, hostile_upload.stderr
    settings = running.settings
    keys = [f"uploads/{p.parent.name}/{p.name}" for p in files]
    found = wait_for(settings, keys)

    s3 = settings.client("s3")
    for key in keys:
        record = found[key]
        assert record["status"] == "processed", record
        assert record["label"] == key.split("/")[1]
        assert set(record["variants"]) == {"large", "medium", "small", "thumb"}
        for variant in record["variants"].values():
            head = s3.head_object(Bucket=settings.variants_bucket, Key=variant["key"])
            assert head["ContentLength"] == variant["bytes"] and head["ContentType"] == "image/jpeg"
    for name, code in (("zero.jpg", "empty"), ("text.jpg", "not_an_image"), ("truncated.jpg", "truncated")):
        record = found[f"uploads/junk/{name}"]
        assert record["status"] == "failed" and record["error_code"] == code and record["error"], record


def test_every_event_delivered_three_times_changes_nothing(running: RunningStack) -> None:
    settings = running.settings
    before = records(settings)
    assert len(before) >= 20
    sqs = settings.client("sqs")
    for _ in range(3):
        for record in before.values():
            body = {
                "Records": [
                    {
                        "eventSource": "aws:s3",
                        "eventName": "ObjectCreated:Put",
                        "eventTime": record["uploaded_at"],
                        "s3": {
                            "bucket": {"name": record["source_bucket"]},
                            "object": {
                                "key": record["source_key"].replace(" ", "+"),
                                "size": record["source_bytes"],
                                "eTag": record["source_etag"],
                            },
                        },
                    }
                ]
            }
            sqs.send_message(QueueUrl=settings.queue_url, MessageBody=json.dumps(body))
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        attributes = sqs.get_queue_attributes(
            QueueUrl=settings.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        if attributes == {"ApproximateNumberOfMessages": "0", "ApproximateNumberOfMessagesNotVisible": "0"}:
            break
        time.sleep(0.5)
    assert records(settings) == before


def test_port_taken_gets_a_clear_message(running: RunningStack, tmp_path: Path) -> None:
    result = image_etl_cli(
        "up",
        "--data-dir",
        str(tmp_path / "other"),
        "--aws-port",
        str(running.aws_port),
        "--site-port",
        str(free_port()),
        timeout=60,
    )
    assert result.returncode == 2
    assert f"port {running.aws_port}" in result.stderr and "--aws-port" in result.stderr


def test_info_json_describes_the_running_stack(running: RunningStack) -> None:
    result = image_etl_cli("info", "--json", "--data-dir", str(running.data_dir))
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["aws_endpoint_url"] == f"http://127.0.0.1:{running.aws_port}" and info["running"] is True
    for name in (
        "region",
        "upload_bucket",
        "upload_prefix",
        "variants_bucket",
        "variants_prefix",
        "table_name",
        "queue_url",
        "dlq_url",
        "data_dir",
    ):
        assert info[name]
    assert running.settings.client("sqs").get_queue_url(QueueName=info["queue_url"].rsplit("/", 1)[1])


def test_kill_9_and_restart_keeps_all_data_without_reprocessing(
    running: RunningStack, tmp_path: Path
) -> None:
    settings = running.settings
    before = records(settings)
    variants_before = settings.client("s3").list_objects_v2(Bucket=settings.variants_bucket)["KeyCount"]
    # An upload the workers never see: it is in S3 when the whole stack dies.
    running.kill_hard()
    late = encode(photo_like(999))

    ready_line = running.start()
    settings = running.settings
    assert "re-enqueued 0 unprocessed uploads" in ready_line, ready_line
    assert records(settings) == before
    assert (
        settings.client("s3").list_objects_v2(Bucket=settings.variants_bucket)["KeyCount"] == variants_before
    )

    settings.client("s3").put_object(
        Bucket=settings.upload_bucket, Key="uploads/late/after-restart.jpg", Body=late
    )
    found = wait_for(settings, ["uploads/late/after-restart.jpg"])
    assert found["uploads/late/after-restart.jpg"]["status"] == "processed"
    assert len(found) == len(before) + 1
    assert running.stop() == 0
    assert not (running.data_dir / "stack.json").exists()
    assert image_id_for(settings.upload_bucket, "uploads/late/after-restart.jpg") in {
        r["image_id"] for r in found.values()
    }


def test_demo_uploads_a_labelled_set_and_reports_the_broken_files(shared_stack: RunningStack) -> None:
    result = image_etl_cli("demo", "--per-class", "4", "--data-dir", str(shared_stack.data_dir), timeout=240)
    assert result.returncode == 0, result.stderr
    # two rounds, each with its own summary and manifest version: 4 a class, 2 copies, 1 mislabelled
    rounds = re.findall(r"processed (\d+), failed (\d+), still pending (\d+)", result.stderr)
    assert len(rounds) == 2, result.stderr
    assert [sum(int(r[i]) for r in rounds) for i in range(3)] == [15, 3, 0], result.stderr
    assert len(set(re.findall(r"round \d: manifest version (\S+)", result.stderr))) == 2, result.stderr
    labels = {
        r.get("label")
        for r in records(shared_stack.settings).values()
        if r["source_key"].startswith("uploads/")
    }
    assert {"circles", "squares", "stripes", "broken"} <= labels


@pytest.mark.parametrize(
    ("sent", "times"),
    [
        (signal.SIGINT, 3),  # what a terminal sends to the foreground group on Ctrl-C, pressed impatiently
        (signal.SIGTERM, 5),  # `kill -- -PGID`, a service manager or a container stop, repeated
    ],
    ids=["ctrl-c", "sigterm"],
)
def test_ctrl_c_and_sigterm_stop_every_process_cleanly(
    tmp_path: Path, sent: signal.Signals, times: int
) -> None:
    stack = RunningStack(tmp_path / "data", free_port(), free_port())
    stack.start()
    assert stack.process is not None
    children = subprocess.run(
        ["pgrep", "-g", str(stack.process.pid)], capture_output=True, text=True
    ).stdout.split()
    assert len(children) >= 5  # up, the emulation, two workers, the site
    for _ in range(times):  # to every process of the stack, again while they are stopping
        os.killpg(stack.process.pid, sent)
        time.sleep(0.05)
    assert stack.process.wait(timeout=30) == 0
    time.sleep(1)
    assert subprocess.run(["pgrep", "-g", str(stack.process.pid)], capture_output=True).returncode == 1
    log = stack.log.read_text()
    assert "image-etl local stack stopped" in log
    assert "Traceback" not in log and "SystemExit" not in log and "KeyboardInterrupt" not in log, log[-3000:]


def test_kill_9_mid_burst_loses_no_acknowledged_object_and_leaves_no_stray_file(tmp_path: Path) -> None:
    stack = RunningStack(tmp_path / "data", free_port(), free_port())
    stack.start()
    settings = stack.settings
    s3 = settings.client("s3")
    acknowledged: dict[str, tuple[str, bytes]] = {}
    stop = threading.Event()

    def upload(worker: int) -> None:
        for n in range(10_000):
            if stop.is_set():
                return
            key = f"{settings.upload_prefix}burst/w{worker}-{n}.jpg"
            body = os.urandom(50_000 + 997 * n % 200_000)
            try:
                etag = s3.put_object(Bucket=settings.upload_bucket, Key=key, Body=body)["ETag"]
            except Exception:  # the stack died under this request: it was never acknowledged
                return
            acknowledged[key] = (etag, body)

    threads = [threading.Thread(target=upload, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    while len(acknowledged) < 80:
        time.sleep(0.05)
    stack.kill_hard()  # mid-burst: eight requests in flight
    stop.set()
    for thread in threads:
        thread.join(timeout=30)

    stack.start()
    s3 = stack.settings.client("s3")
    for key, (etag, body) in acknowledged.items():
        got = s3.get_object(Bucket=settings.upload_bucket, Key=key)
        assert (got["ETag"], got["Body"].read() == body) == (etag, True), key
    listed = s3.get_paginator("list_objects_v2").paginate(
        Bucket=settings.upload_bucket, Prefix="uploads/burst/"
    )
    for obj in (o for page in listed for o in page.get("Contents", [])):
        body = s3.get_object(Bucket=settings.upload_bucket, Key=obj["Key"])["Body"].read()
        assert hashlib.md5(body).hexdigest() == obj["ETag"].strip('"'), f"half-written {obj['Key']}"
    # every upload acknowledged before the kill gets its record (re-enqueued at start if needed)
    found = wait_for(stack.settings, list(acknowledged), deadline_s=180)
    assert set(acknowledged) <= set(found)
    assert stack.stop() == 0
    with sqlite3.connect(stack.data_dir / STATE_DB) as db:
        named = {row[0] for row in db.execute("SELECT body_file FROM s3_keys WHERE body_file IS NOT NULL")}
    files = {p.name for p in (stack.data_dir / OBJECTS_DIR).glob("??/*")}
    assert files == named  # no orphan from the requests the kill cut short
