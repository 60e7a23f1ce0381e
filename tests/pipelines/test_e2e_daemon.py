"""End to end with the real Dagster daemon: `image-etl up --dagster-port`, upload, the manifest appears."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from image_etl.manifest import latest_version, read_manifest
from image_etl.settings import load_settings
from tests.conftest import REPO
from tests.imaging import encode, photo_like
from tests.stack_process import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

#: The issue's promise: a processed image is in the latest manifest within 60 s.
MANIFEST_DEADLINE_S = 60
#: `dagster dev` needs ~20 s on an idle 2-core machine, much more when it is busy.
STARTUP_S = 180


def _up_has_dagster_flag() -> bool:
    out = subprocess.run(
        [sys.executable, "-m", "image_etl.cli", "up", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return "--dagster-port" in out.stdout


def _dagster_processes(dagster_home: Path) -> list[int]:
    """Return pids of live processes started for this DAGSTER_HOME (dagster dev, webserver, daemon, runs)."""
    marker = f"DAGSTER_HOME={dagster_home}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker in (entry / "environ").read_bytes().split(b"\0"):
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


@pytest.fixture(scope="module")
def stack_with_dagster(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[subprocess.Popen[bytes], Path, int]]:
    if not _up_has_dagster_flag():
        pytest.skip("`image-etl up` has no --dagster-port yet: Dagster is not wired into the local stack")
    data_dir = tmp_path_factory.mktemp("dagster-stack") / "data"
    data_dir.mkdir()
    port = free_port()
    log = (data_dir.parent / "up.log").open("wb")
    # A new stack as a newcomer starts it: its partitions start on its own first day, not the tests' pin.
    env = {k: v for k, v in os.environ.items() if k != "IMAGE_ETL_FIRST_DAY"}
    process = subprocess.Popen(
        [
            sys.executable, "-m", "image_etl.cli", "up", "--data-dir", str(data_dir),
            "--aws-port", str(free_port()), "--site-port", str(free_port()), "--dagster-port", str(port),
        ],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=REPO, env=env,
    )  # fmt: skip
    yield process, data_dir, port
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)


def _wait_for_ui(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    import requests

    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"image-etl up exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if requests.get(f"http://127.0.0.1:{port}/server_info", timeout=2).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(1)
    pytest.fail(f"the Dagster UI did not answer in {STARTUP_S} s:\n{log.read_text()[-3000:]}")


def test_uploaded_images_reach_the_latest_manifest_by_themselves_and_up_stops_dagster(
    stack_with_dagster: tuple[subprocess.Popen[bytes], Path, int], tmp_path: Path
) -> None:
    process, data_dir, port = stack_with_dagster
    log = data_dir.parent / "up.log"
    _wait_for_ui(port, process, log)
    env = {k: v for k, v in os.environ.items() if k != "IMAGE_ETL_FIRST_DAY"}
    info = json.loads(
        subprocess.run(
            [sys.executable, "-m", "image_etl.cli", "info", "--json", "--data-dir", str(data_dir)],
            capture_output=True, text=True, check=True, cwd=REPO, env=env,
        ).stdout
    )  # fmt: skip
    assert info["dagster_url"] == f"http://127.0.0.1:{port}"
    # A new data dir: Dagster's daily partitions start today, not on a fixed day years ago.
    assert info["first_day"] == datetime.now(UTC).date().isoformat()
    folder = tmp_path / "cats"
    folder.mkdir()
    for seed in range(3):
        (folder / f"{seed}.jpg").write_bytes(encode(photo_like(seed)))

    upload = subprocess.run(
        [sys.executable, "-m", "image_etl.cli", "upload", str(folder), "--wait", "--data-dir", str(data_dir)],
        capture_output=True, text=True, cwd=REPO, timeout=180,
    )  # fmt: skip
    assert upload.returncode == 0, upload.stdout + upload.stderr
    processed = time.monotonic()

    settings = load_settings(data_dir)
    # The sensor's run builds a version and moves the `published` tag once its checks pass.
    while latest_version(settings) is None or len(read_manifest(settings=settings)) < 3:
        assert time.monotonic() - processed < MANIFEST_DEADLINE_S, (
            f"no published manifest with 3 images:\n{log.read_text()[-3000:]}"
        )
        time.sleep(1)
    manifest = read_manifest(settings=settings)
    assert sorted(manifest["source_key"]) == [f"uploads/cats/{seed}.jpg" for seed in range(3)]
    assert set(manifest["label"]) == {"cats"}
    # The same run writes the published version's annotations back onto the records.
    dynamodb = settings.client("dynamodb")
    while True:
        items = [
            dynamodb.get_item(TableName=settings.table_name, Key={"image_id": {"S": i}})["Item"]
            for i in manifest["image_id"]
        ]
        if all("dataset" in item for item in items):
            break
        assert time.monotonic() - processed < MANIFEST_DEADLINE_S + 30, log.read_text()[-3000:]
        time.sleep(1)
    assert {item["dataset"]["M"]["split"]["S"] for item in items} <= {"train", "val", "test"}

    # A clean stop: SIGTERM to `image-etl up` leaves no Dagster process behind.
    dagster_home = (data_dir / "dagster").resolve()
    assert _dagster_processes(dagster_home)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0
    deadline = time.monotonic() + 20
    while _dagster_processes(dagster_home) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _dagster_processes(dagster_home) == []
    assert "SupersessionWarning" not in log.read_text()
