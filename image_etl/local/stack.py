"""`image-etl up`: start the local stack in the foreground and stop every process it started.

Processes: the AWS emulation (moto + durable state) and N event workers. Each child dies with
this process (PR_SET_PDEATHSIG), so even a kill -9 of `image-etl up` leaves no stray server
holding a port; the next start restores the state and re-enqueues unfinished uploads.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from image_etl.local.dagster import dagster_dev_command
from image_etl.local.go import GO, WAIT_FOR_GO
from image_etl.local.signals import die_with_parent
from image_etl.local.usage import data_dir_usage
from image_etl.resource_shapes import LOCAL
from image_etl.settings import LOCAL_HOST, STATE_FILE, Settings, load_settings, local_first_day
from image_etl.users import DEMO_PASSWORD_FILE


class StackError(RuntimeError):
    """The local stack cannot start; the message says why and what to do."""


def ensure_port_free(port: int, flag: str) -> None:
    """Raise StackError with a clear message when ``port`` on 127.0.0.1 is taken."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((LOCAL_HOST, port))
        except OSError as error:
            raise StackError(
                f"port {port} on {LOCAL_HOST} is already in use ({error.strerror}); "
                f"stop what holds it (`image-etl info` shows a running stack) or choose another with {flag}"
            ) from error


@contextlib.contextmanager
def data_dir_lock(data_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``data_dir`` so two stacks never share one state file."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with open(data_dir / ".lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as error:
            raise StackError(f"another `image-etl up` is already running on {data_dir}") from error
        yield


@dataclass
class Child:
    name: str
    argv: list[str]
    process: subprocess.Popen[str] | None = None
    env: dict[str, str] = field(default_factory=dict)
    restarts: int = 0
    log_threads: list[threading.Thread] = field(default_factory=list)

    def start(self, env: dict[str, str]) -> None:
        self.env = env
        self.process = subprocess.Popen(
            self.argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            preexec_fn=die_with_parent,
        )

    def stream_output(self, out: IO[str]) -> None:
        assert self.process is not None
        for stream in (self.process.stdout, self.process.stderr):
            thread = threading.Thread(target=_prefix_lines, args=(stream, self.name, out), daemon=True)
            thread.start()
            self.log_threads.append(thread)


_LAMBDA_LOG_KEYS = {"level", "location", "message", "timestamp", "service", "cold_start", "xray_trace_id"}


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def humanize(line: str) -> str:
    """Return a log line as one short human line: Powertools JSON condensed, colour codes removed,
    Dagster's per-step DEBUG events dropped (empty string); other lines unchanged."""
    line = _ANSI.sub("", line)
    if " - DEBUG - " in line:
        return ""
    if not line.startswith("{"):
        return line
    try:
        entry = json.loads(line)
    except json.JSONDecodeError:
        return line
    details = " ".join(
        f"{key}={value}"
        for key, value in entry.items()
        if key not in _LAMBDA_LOG_KEYS and not key.startswith("function_") and value is not None
    )
    level = "" if entry.get("level") == "INFO" else f"{entry.get('level', '')} "
    return f"{level}{entry.get('message', '')} {details}".rstrip() + "\n"


def _prefix_lines(stream: IO[str] | None, name: str, out: IO[str]) -> None:
    if stream is None:
        return
    for line in stream:
        text = humanize(line)
        if text:
            out.write(f"[{name}] {text}")
            out.flush()


@dataclass
class LocalStack:
    data_dir: Path
    aws_port: int
    site_port: int
    workers: int = 2
    #: None leaves Dagster out (`--no-dagster`).
    dagster_port: int | None = None
    out: IO[str] = sys.stdout
    children: list[Child] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> int:
        """Start everything, block until SIGINT/SIGTERM, stop everything; return an exit code."""
        if os.environ.get("IMAGE_ETL_DIE_WITH_PARENT") == "1":
            die_with_parent()  # under `make up`, a killed make must not leave the stack behind
        with data_dir_lock(self.data_dir):
            ensure_port_free(self.aws_port, "--aws-port")
            ensure_port_free(self.site_port, "--site-port")
            if self.dagster_port is not None:
                ensure_port_free(self.dagster_port, "--dagster-port")
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, lambda *_: self._stop.set())
            try:
                settings = self._start()
                self._banner(settings)
                self._supervise()
            finally:
                self._shutdown()
        return 0

    def _start(self) -> Settings:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        module = [sys.executable, "-m"]
        data_dir = ["--data-dir", str(self.data_dir)]
        emulator = Child(
            "aws",
            [
                *module,
                "image_etl.local.emulator",
                *data_dir,
                "--port",
                str(self.aws_port),
                "--site-port",
                str(self.site_port),
            ],
        )
        # Workers and the site import their libraries meanwhile, and wait for a "go" (see go.py).
        children = [
            Child(f"worker-{index + 1}", [*module, "image_etl.local.worker", *data_dir])
            for index in range(self.workers)
        ]
        # The large-image tier: one worker with the large function's memory size and timeout.
        children.append(
            Child("worker-large", [*module, "image_etl.local.worker", *data_dir, "--tier", "large"])
        )
        children.append(
            Child("site", [*module, "image_etl.local.site", *data_dir, "--port", str(self.site_port)])
        )
        # Apply the upload bucket's CORS rules (site origin only), as S3 does, instead of allowing all.
        self._spawn(emulator, {**env, "MOTO_DISABLE_GLOBAL_CORS": "1"})
        for child in children:
            self._spawn(child, {**env, WAIT_FOR_GO: "1"})
        ready = self._await_ready(emulator)
        self._write_state_file(
            user_pool_id=ready["user_pool_id"],
            user_pool_client_id=ready["user_pool_client_id"],
            first_day=local_first_day(self.data_dir, has_records=bool(ready["restored_items"])),
        )
        settings = load_settings(self.data_dir)
        self.out.write(
            f"AWS emulation ready on {settings.aws_endpoint_url} in {ready['seconds']:.1f}s: restored "
            f"{ready['restored_objects']} objects, {ready['restored_items']} records and "
            f"{ready['restored_users']} users, re-enqueued {ready['requeued']} unprocessed uploads\n"
        )
        for child in children:
            self._go(child)
        if self.dagster_port is not None:
            argv, dagster_env = dagster_dev_command(settings, port=self.dagster_port)
            children.append(Child("dagster", argv))
            self._spawn(children[-1], dagster_env)
        for child in children:
            self._await_ready(child)
        return settings

    def _launch(self, child: Child, env: dict[str, str]) -> dict[str, Any]:
        """Start ``child`` and wait for the JSON line it prints when ready; raise StackError if it fails."""
        self._spawn(child, env)
        if env.get(WAIT_FOR_GO):
            self._go(child)  # a restarted child: the emulator is up already
        return self._await_ready(child)

    @staticmethod
    def _go(child: Child) -> None:
        assert child.process is not None and child.process.stdin is not None
        child.process.stdin.write(GO)
        child.process.stdin.close()

    def _spawn(self, child: Child, env: dict[str, str]) -> None:
        child.start(env)
        self.children.append(child)

    def _await_ready(self, child: Child) -> dict[str, Any]:
        assert child.process is not None and child.process.stdout is not None
        first = child.process.stdout.readline()
        try:
            ready = json.loads(first)
        except json.JSONDecodeError:
            ready = {}
        if not ready.get("ready"):
            child.process.wait(timeout=10)
            reason = (
                ready.get("error")
                or first.strip()
                or (child.process.stderr.read() if child.process.stderr else "")
            )
            raise StackError(f"{child.name} did not start: {reason or 'no reason given'}")
        child.stream_output(self.out)
        return ready

    def _write_state_file(self, **extra: str) -> None:
        state = {
            "pid": os.getpid(),
            "aws_port": self.aws_port,
            "site_port": self.site_port,
            "dagster_port": self.dagster_port,
            "started_at": datetime.now(UTC).isoformat(),
            **extra,
        }
        tmp = self.data_dir / f"{STATE_FILE}.tmp"
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(self.data_dir / STATE_FILE)

    def _banner(self, settings: Settings) -> None:
        demo = LOCAL.identity.demo_user
        password = (self.data_dir / DEMO_PASSWORD_FILE).read_text().strip()
        self.out.write(
            "\nimage-etl local stack is up (Ctrl-C stops it)\n"
            f"  upload page    {settings.site_url}   (API under {settings.api_url})\n"
            f"  sign in as     {demo} / {password}   (kept in {self.data_dir / DEMO_PASSWORD_FILE}; "
            "more users: image-etl users add NAME --group uploaders)\n"
            + (
                f"  Dagster UI     {settings.dagster_url}   (ready in ~20 s; sensors and schedules run)\n"
                if settings.dagster_url
                else "  Dagster        left out (--no-dagster)\n"
            )
            + f"  AWS endpoint   {settings.aws_endpoint_url}  (region {settings.region})\n"
            f"  upload to      s3://{settings.upload_bucket}/{settings.upload_prefix}<label>/<file>\n"
            f"  variants in    s3://{settings.variants_bucket}/{settings.variants_prefix}\n"
            f"  records in     DynamoDB table {settings.table_name}\n"
            f"  workers        {self.workers} processes polling {settings.queue_url}\n"
            f"  data dir       {self.data_dir}: {data_dir_usage(self.data_dir, walk=False).summary()}\n"
            "  try            image-etl demo | image-etl upload PATH --label L | image-etl info --json\n\n"
        )
        self.out.flush()

    def _supervise(self) -> None:
        while not self._stop.wait(0.5):
            for child in self.children:
                assert child.process is not None
                code = child.process.poll()
                if code is None:
                    continue
                if child.name == "aws":
                    raise StackError(f"the AWS emulation exited with code {code}; stopping the stack")
                # A crashed worker, site or Dagster is restarted (Lambda would start a new environment).
                child.restarts += 1
                self.out.write(f"[{child.name}] exited with code {code}; restart #{child.restarts}\n")
                time.sleep(min(5, child.restarts))
                self.children.remove(child)
                self._launch(child, child.env)

    def _shutdown(self) -> None:
        # Workers first, so no batch is cut off by the emulator going away under it.
        for child in sorted(self.children, key=lambda c: c.name == "aws"):  # emulation last
            if child.process and child.process.poll() is None:
                child.process.terminate()
                try:
                    child.process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    child.process.kill()
                    child.process.wait()
        for child in self.children:
            for thread in child.log_threads:
                thread.join(timeout=2)
        with contextlib.suppress(FileNotFoundError):
            (self.data_dir / STATE_FILE).unlink()
        self.out.write("image-etl local stack stopped\n")
        self.out.flush()
