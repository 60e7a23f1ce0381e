"""The local user pool through the real `image-etl up`: the demo user, `image-etl users`, first
sign-in, and users and passwords kept across a kill -9."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from pycognito.exceptions import ForceChangePasswordException

from image_etl.users import DEMO_PASSWORD_FILE
from tests.identity import srp_sign_in
from tests.stack_process import RunningStack, free_port, image_etl_cli

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    stack = RunningStack(tmp_path_factory.mktemp("identity") / "data", free_port(), free_port())
    stack.start()
    yield stack
    if stack.process and stack.process.poll() is None:
        stack.stop()


def users(running: RunningStack, *args: str) -> tuple[int, str, str]:
    result = image_etl_cli("users", *args, "--data-dir", str(running.data_dir))
    return result.returncode, result.stdout, result.stderr


def test_the_banner_gives_the_demo_sign_in_and_info_never_a_password(running: RunningStack) -> None:
    password_file = running.data_dir / DEMO_PASSWORD_FILE
    password = password_file.read_text().strip()
    assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
    assert f"sign in as     demo / {password}" in running.log.read_text()
    tokens = srp_sign_in(running.settings, "demo", password)
    assert tokens["AccessToken"]
    info = image_etl_cli("info", "--json", "--data-dir", str(running.data_dir))
    fields = json.loads(info.stdout)
    assert fields["user_pool_id"].startswith("us-east-1_") and fields["user_pool_client_id"]
    assert password not in info.stdout


def test_users_add_list_remove_and_the_first_sign_in_sets_a_password(
    running: RunningStack, tmp_path: Path
) -> None:
    code, out, err = users(running, "add", "Vera", "--group", "viewers")
    assert code == 0, err
    temporary = out.strip()
    assert len(temporary) >= 12 and "shown once" in err
    with pytest.raises(ForceChangePasswordException):
        srp_sign_in(running.settings, "vera", temporary)  # names are case-insensitive
    chosen = "Chosen-by-Vera-2026"
    assert srp_sign_in(running.settings, "vera", temporary, new_password=chosen)["AccessToken"]
    assert srp_sign_in(running.settings, "VERA", chosen)["AccessToken"]

    given = tmp_path / "password.txt"
    given.write_text("Given-Temporary-1!\n")
    code, out, err = users(running, "add", "uma", "--group", "uploaders", "--password-file", str(given))
    assert code == 0 and out == "", (out, err)
    with pytest.raises(ForceChangePasswordException):
        srp_sign_in(running.settings, "uma", "Given-Temporary-1!")

    code, out, _ = users(running, "list")
    lines = {line.split()[0]: line.split()[1:] for line in out.splitlines()}
    assert lines["Vera"] == ["viewers", "CONFIRMED"] and lines["uma"] == [
        "uploaders",
        "FORCE_CHANGE_PASSWORD",
    ]
    assert lines["demo"][0] == "uploaders,viewers"

    for args, reason in (
        (["add", "vera", "--group", "viewers"], "exists already"),
        (["add", "x", "--group", "admins"], "unknown group admins"),
        (["add", "x", "--group", "viewers", "--password-file", str(tmp_path / "missing")], "No such file"),
        (["remove", "nobody"], "there is no user 'nobody'"),
    ):
        code, _, err = users(running, *args)
        assert code == 2 and reason in err, (args, err)

    assert users(running, "remove", "uma")[0] == 0
    with pytest.raises(ClientError, match=r"NotAuthorized|UserNotFound"):
        srp_sign_in(running.settings, "uma", "Given-Temporary-1!")


def test_wrong_passwords_are_refused(running: RunningStack) -> None:
    for username in ("demo", "nobody-at-all"):
        with pytest.raises(ClientError, match="Incorrect username or password"):
            srp_sign_in(running.settings, username, "Not-The-Password-1")


def test_kill_9_and_restart_keep_users_and_passwords(running: RunningStack) -> None:
    assert users(running, "add", "keeper", "--group", "viewers")[0] == 0
    temporary = users(running, "list", "--json")  # the password printed once is not in a listing
    assert "keeper" in temporary[1]
    code, out, _ = users(running, "remove", "keeper")
    assert code == 0
    code, out, _ = users(running, "add", "keeper", "--group", "uploaders")
    password = out.strip()
    srp_sign_in(running.settings, "keeper", password, new_password="Kept-Across-Restarts-9")
    demo_password = (running.data_dir / DEMO_PASSWORD_FILE).read_text().strip()

    running.kill_hard()
    ready = running.start()
    assert "users" in ready
    assert srp_sign_in(running.settings, "keeper", "Kept-Across-Restarts-9")["AccessToken"]
    assert srp_sign_in(running.settings, "demo", demo_password)["AccessToken"]
    listed = {u["username"]: u for u in json.loads(users(running, "list", "--json")[1])}
    assert listed["keeper"]["groups"] == ["uploaders"] and listed["keeper"]["status"] == "CONFIRMED"
