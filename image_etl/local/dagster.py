"""`dagster dev` for the local stack: its command, its DAGSTER_HOME, and a supervisor that stops it cleanly.

`image-etl up` starts ``dagster_dev_command(...)`` like any other child. That command is this
module's supervisor, not `dagster dev` itself, because `dagster dev` is awkward to stop from a
non-interactive parent: it maps SIGTERM to its SIGINT handler, and a parent that ignores SIGINT
(a background job) makes it ignore both. The supervisor restores SIGINT, starts `dagster dev` in
its own process group, and on SIGTERM or SIGINT interrupts that whole group (webserver, daemon,
code servers, runs), waits, and kills what is left: one SIGTERM to the supervisor stops everything.

    python -m image_etl.local.dagster --port 3000 --dagster-home .image-etl/dagster
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from image_etl.local.signals import die_with_parent
from image_etl.resource_shapes import LOCAL_CREDENTIAL_VARIABLES
from image_etl.settings import DEFAULT_DAGSTER_PORT, LOCAL_HOST, Settings, project_root, settings_variables

#: The start of the warning `dagster dev` prints at every start (see :func:`supervise`).
_SUPERSEDED = "Function `dev_command` is superseded"
#: Seconds `dagster dev` gets to stop after SIGINT before its process group is killed; below the
#: 15 s `image-etl up` waits for a child.
STOP_GRACE_S = 12.0

_DAGSTER_YAML = """\
# Written by image-etl (image_etl/local/dagster.py) for the local stack's `dagster dev`.
telemetry:
  enabled: false
# The UI's "join the community" dialog would cover every page of a new instance until dismissed.
nux:
  enabled: false
run_queue:
  max_concurrent_runs: 4
  # The default 5 s between dequeues is a twelfth of the minute an upload may take to reach the manifest.
  dequeue_interval_seconds: 1
  # Runs that write the daily record files go one at a time (read-modify-write of the same files).
  tag_concurrency_limits:
    - key: image-etl/dataset
      limit: 1
code_servers:
  local_startup_timeout: 180
"""


def dagster_url(port: int) -> str:
    """Return the UI's URL for ``port`` (what `image-etl info --json` shows as ``dagster_url``)."""
    return f"http://{LOCAL_HOST}:{port}"


def prepare_dagster_home(dagster_home: Path) -> Path:
    """Create DAGSTER_HOME with its dagster.yaml (telemetry and the welcome dialog off, dataset runs
    one at a time)."""
    dagster_home.mkdir(parents=True, exist_ok=True)
    config = dagster_home / "dagster.yaml"
    if not config.exists() or config.read_text() != _DAGSTER_YAML:
        config.write_text(_DAGSTER_YAML)
    return dagster_home


def settings_environment(settings: Settings) -> dict[str, str]:
    """Return IMAGE_ETL_* variables that make the code location read exactly this stack."""
    env = {**settings_variables(settings), "IMAGE_ETL_DATA_DIR": str(settings.data_dir)}
    env["IMAGE_ETL_AWS_ENDPOINT_URL"] = settings.aws_endpoint_url or "aws"
    if settings.is_local:
        # Runs use boto3's default chain too (dagster-aws); the emulator takes any key.
        env.update(LOCAL_CREDENTIAL_VARIABLES)
        env.setdefault("AWS_DEFAULT_REGION", settings.region)
    return env


def dagster_dev_command(
    settings: Settings, *, port: int = DEFAULT_DAGSTER_PORT, dagster_home: Path | None = None
) -> tuple[list[str], dict[str, str]]:
    """Return (argv, env) that start `dagster dev` for ``settings``' stack on 127.0.0.1:``port``.

    Start it with ``subprocess.Popen(argv, env=env, stdout=PIPE)``: its first stdout line is JSON
    ``{"ready": true, "url": ..., "dagster_home": ..., "pid": ...}`` (the local stack's child
    protocol), printed as soon as `dagster dev` is started; "Dagster UI ready on URL" follows when
    the UI answers. Send SIGTERM (or SIGINT) to that process to stop it: it stops `dagster dev` and
    every process under it within :data:`STOP_GRACE_S` seconds.

    :param settings: the running stack's settings (``load_settings(data_dir)`` once it is up).
    :param port: UI port.
    :param dagster_home: DAGSTER_HOME (default ``<data dir>/dagster``): run history, sensor cursors.
    :return: argv and the full environment for the child.
    """
    home = prepare_dagster_home((dagster_home or Path(settings.data_dir) / "dagster").resolve())
    argv = [sys.executable, "-m", "image_etl.local.dagster", "--port", str(port), "--dagster-home", str(home)]
    env = {
        **os.environ,
        **settings_environment(settings),
        "DAGSTER_HOME": str(home),
        "PYTHONUNBUFFERED": "1",
    }
    return argv, env


def wait_until_ready(port: int, timeout_s: float = 90.0) -> bool:
    """Return True once the UI answers on ``port`` (about 20 s on 2 cores), False after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{dagster_url(port)}/server_info", timeout=2) as response:
                if response.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.5)
    return False


def _child_setup() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    os.setpgrp()
    die_with_parent()  # if this supervisor is killed -9, `dagster dev` still stops its children


def supervise(port: int, dagster_home: Path, workspace: Path) -> int:
    """Run `dagster dev` in its own process group until it exits or this process is told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # undo an inherited "ignore"
    prepare_dagster_home(dagster_home)
    argv = [
        # `dagster dev` warns at every start that `dg dev` supersedes it. `dg dev` needs a dg project
        # (a `defs/` tree, dg's own environment handling) this repository is not; `dagster dev` with a
        # workspace stays supported in Dagster 1.x, so the warning says nothing a user can act on.
        sys.executable, "-W", f"ignore:{_SUPERSEDED}",
        "-m", "dagster", "dev",
        "-w", str(workspace), "-h", LOCAL_HOST, "-p", str(port),
    ]  # fmt: skip
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home)}
    child = subprocess.Popen(argv, env=env, cwd=workspace.parent, preexec_fn=_child_setup)
    # The local stack's children announce themselves with one JSON line; the UI itself needs ~20 s
    # more, reported by a second, human line.
    ready = {"ready": True, "url": dagster_url(port), "dagster_home": str(dagster_home), "pid": child.pid}
    print(json.dumps(ready), flush=True)
    stopping = threading.Event()

    def stop(*_: object) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    def announce() -> None:
        if wait_until_ready(port, timeout_s=180) and not stopping.is_set():
            print(f"Dagster UI ready on {dagster_url(port)} (DAGSTER_HOME {dagster_home})", flush=True)

    threading.Thread(target=announce, daemon=True).start()
    while child.poll() is None and not stopping.wait(0.5):
        pass
    if child.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.pid, signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=STOP_GRACE_S)
    # Whatever is left in the group (a code server, a run) goes now.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.pid, signal.SIGKILL)
    code = child.wait()
    return 0 if stopping.is_set() else code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run `dagster dev` for the local stack and stop it cleanly.")
    parser.add_argument("--port", type=int, default=DEFAULT_DAGSTER_PORT)
    parser.add_argument("--dagster-home", type=Path, required=True)
    parser.add_argument(
        "--workspace", type=Path, default=project_root(Path(__file__).parent) / "workspace.yaml"
    )
    args = parser.parse_args(argv)
    return supervise(args.port, args.dagster_home.resolve(), args.workspace.resolve())


if __name__ == "__main__":
    raise SystemExit(main())
