"""`image-etl` without a stack: help, argument errors with a clear message and exit 2, `info` on a
data dir, and what `users` and `upload` refuse before they send anything."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from image_etl import cli
from image_etl.local.persistence import StateStore, StoredObject
from image_etl.local.s3_disk import BlobStore
from image_etl.resource_shapes import LOCAL
from image_etl.settings import OBJECTS_DIR, STATE_DB, STATE_FILE

COMMANDS = ("up", "info", "upload", "demo", "manifest", "users")


@pytest.fixture(autouse=True)
def no_stack_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """No IMAGE_ETL_* setting of the developer's reaches the CLI (the first day is the tests' own)."""
    for name in list(os.environ):
        if name.startswith("IMAGE_ETL_") and name != "IMAGE_ETL_FIRST_DAY":
            monkeypatch.delenv(name)
    # off a terminal rich wraps at 80 columns, which would cut the messages (and paths) asserted below
    monkeypatch.setattr(cli.console, "width", 1000)


def run(*args: str) -> Result:
    return CliRunner().invoke(cli.app, list(args), prog_name="image-etl")


def running_stack(data_dir: Path) -> Path:
    """Make ``data_dir`` look like a running stack's (this process is its pid) that has no user pool."""
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / STATE_FILE).write_text(json.dumps({"pid": os.getpid(), "aws_port": 9}))
    return data_dir


def test_help_lists_every_command() -> None:
    for shown in (run("--help"), run()):  # no arguments: the help, not a traceback
        assert "Usage: image-etl" in shown.stdout
        assert all(f" {command} " in shown.stdout for command in COMMANDS)
    assert run("--help").exit_code == 0
    users = run("users")
    assert all(f" {command} " in users.stdout for command in ("add", "list", "remove"))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope"], "No such command 'nope'"),
        (["info", "--bogus"], "No such option: --bogus"),
        (["upload"], "Missing argument"),
        (["upload", "--concurrency", "0", "a.jpg"], "Invalid value for '--concurrency'"),
        (["up", "--workers", "0"], "Invalid value for '--workers'"),
        (["up", "--aws-port", "many"], "Invalid value for '--aws-port'"),
        (["demo", "--rounds", "11"], "Invalid value for '--rounds'"),
        (["manifest"], "Missing option '--out'"),
        (["users", "add", "alice"], "Missing option '--group'"),
        (["users", "remove"], "Missing argument"),
    ],
)
def test_bad_arguments_exit_2_with_the_reason(args: list[str], message: str) -> None:
    result = run(*args)
    assert result.exit_code == 2
    assert message in result.stderr and result.stdout == ""


def test_demo_rounds_need_wait() -> None:
    result = run("demo", "--rounds", "2", "--no-wait")
    assert result.exit_code == 2
    assert "--rounds above 1 needs --wait" in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["upload", "a.jpg"],
        ["demo"],
        ["manifest", "--out", "m.parquet"],
        ["users", "list"],
        ["users", "add", "alice", "--group", "viewers"],
        ["users", "remove", "alice"],
    ],
)
def test_commands_that_need_a_stack_say_none_is_running(args: list[str], tmp_path: Path) -> None:
    result = run(*args, "--data-dir", str(tmp_path))
    assert result.exit_code == 2
    assert f"no local stack is running on {tmp_path.resolve()}; start it with `make up`" in result.stderr


def test_info_on_an_empty_data_dir_gives_the_settings_it_would_start_with(tmp_path: Path) -> None:
    data_dir = tmp_path / "fresh"
    result = run("info", "--json", "--data-dir", str(data_dir))
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert (info["data_dir"], info["running"]) == (str(data_dir.resolve()), False)
    assert (info["aws_endpoint_url"], info["upload_bucket"]) == ("http://127.0.0.1:4566", LOCAL.upload_bucket)
    usage = info["data_dir_usage"]
    assert (usage["objects"], usage["object_bytes"], usage["records"], usage["data_dir_bytes"]) == (
        0,
        0,
        0,
        0,
    )
    assert usage["free_bytes"] > 0

    text = run("info", "--data-dir", str(data_dir))
    assert text.exit_code == 0
    assert f"local stack on {data_dir.resolve()}: not running" in text.stderr
    assert (
        "holds              0 objects (0 B), 0 records;" in text.stderr and "free on its disk" in text.stderr
    )


def test_info_counts_what_the_state_file_holds(tmp_path: Path) -> None:
    store = StateStore(tmp_path / STATE_DB, BlobStore(tmp_path / OBJECTS_DIR))
    body = store.blobs.write(b"x" * 1500)
    store.put_object(StoredObject(LOCAL.variants_bucket, "v/a.jpg", body, 1500, '"e"', {}, datetime.now(UTC)))
    store.put_item(LOCAL.table.name, {"image_id": {"S": "a"}}, {"image_id": {"S": "a"}})
    store.close()
    result = run("info", "--data-dir", str(tmp_path))
    assert result.exit_code == 0
    assert "1 objects (1.5 KB), 1 records;" in result.stderr


def test_info_on_a_data_dir_under_a_missing_folder_says_it_holds_nothing(tmp_path: Path) -> None:
    result = run("info", "--json", "--data-dir", str(tmp_path / "not" / "yet"))
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["data_dir_usage"]["objects"] == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["add", "alice", "--group", "admins"], "unknown group admins: the groups are uploaders, viewers"),
        (["add", "alice", "--group", "viewers", "--password-file", "{empty}"], "{empty} holds no password"),
        (
            ["add", "alice", "--group", "viewers", "--password-file", "{missing}"],
            "[Errno 2] No such file or directory: '{missing}'",
        ),
        (["list"], "no user pool is known: the running local stack gave no user pool id"),
        (["remove", "alice"], "no user pool is known"),
    ],
)
def test_users_refuses_what_it_cannot_do_before_asking_the_pool(
    args: list[str], message: str, tmp_path: Path
) -> None:
    data_dir = running_stack(tmp_path / "data")
    (tmp_path / "empty.txt").write_text("\n")
    paths = {"empty": str(tmp_path / "empty.txt"), "missing": str(tmp_path / "missing.txt")}
    result = run("users", *[arg.format(**paths) for arg in args], "--data-dir", str(data_dir))
    assert result.exit_code == 2
    assert f"error: {message.format(**paths)}" in result.stderr
    assert result.stdout == ""  # no password printed for a user that was not made


def test_upload_of_nothing_uploadable_says_why_and_sends_nothing(tmp_path: Path) -> None:
    data_dir = running_stack(tmp_path / "data")
    (tmp_path / "empty").mkdir()
    result = run(
        "upload", str(tmp_path / "empty"), str(tmp_path / "missing.jpg"), "--data-dir", str(data_dir)
    )
    assert result.exit_code == 2
    assert "the folder has no files" in result.stderr and "no such file or folder" in result.stderr
    assert "error: nothing to upload" in result.stderr


def test_upload_refuses_a_label_that_cannot_be_one(tmp_path: Path) -> None:
    data_dir = running_stack(tmp_path / "data")
    image = tmp_path / "a.jpg"
    image.write_bytes(b"not sent")
    result = run("upload", str(image), "--label", "../up", "--data-dir", str(data_dir))
    assert result.exit_code == 2
    assert "error: --label '../up':" in result.stderr
