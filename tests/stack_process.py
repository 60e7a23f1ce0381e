"""`image-etl up` in a subprocess, for end-to-end tests: start, kill -9, stop, read its log."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from image_etl.local.worker import resident_mb
from image_etl.resource_shapes import LOCAL, ResizeFunctionShape
from image_etl.settings import Settings, load_settings


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class RunningStack:
    """`image-etl up` on its own ports and data dir; Dagster only when given a port (it takes ~1 GB)."""

    def __init__(
        self, data_dir: Path, aws_port: int, site_port: int, dagster_port: int | None = None
    ) -> None:
        self.data_dir, self.aws_port, self.site_port = data_dir, aws_port, site_port
        self.dagster_port = dagster_port
        self.log = data_dir.parent / f"up-{aws_port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> str:
        """Start `image-etl up`, wait until it says it is up; return its startup line."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        offset = self.log.stat().st_size if self.log.exists() else 0
        log = self.log.open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "image_etl.cli",
                "up",
                "--data-dir",
                str(self.data_dir),
                "--aws-port",
                str(self.aws_port),
                "--site-port",
                str(self.site_port),
                *(["--dagster-port", str(self.dagster_port)] if self.dagster_port else ["--no-dagster"]),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            text = self.log.read_bytes()[offset:].decode(errors="replace")
            if "local stack is up" in text:
                return next(line for line in text.splitlines() if "AWS emulation ready" in line)
            if self.process.poll() is not None:
                pytest.fail(f"image-etl up exited with {self.process.returncode}:\n{text[-3000:]}")
            time.sleep(0.2)
        pytest.fail(f"image-etl up did not come up in 60 s:\n{self.log.read_text()[-3000:]}")

    def kill_hard(self) -> None:
        """kill -9 the whole process group: no handler runs, nothing is flushed by us."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            return self.process.wait(timeout=30)
        return self.process.returncode

    @property
    def settings(self) -> Settings:
        return load_settings(self.data_dir)


def image_etl_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``image-etl ARGS...`` as a user would; progress and messages are on its stderr."""
    return subprocess.run(
        [sys.executable, "-m", "image_etl.cli", *args], capture_output=True, text=True, timeout=timeout
    )


def in_this_process(shape: ResizeFunctionShape = LOCAL.function) -> ResizeFunctionShape:
    """Return ``shape`` with its memory on top of what this test process holds already: a handler
    run inside pytest then has the function's memory budget (a Lambda's own process holds only the
    interpreter, pytest holds hundreds of MB after synthesizing the CDK app)."""
    return replace(shape, memory_mb=int(resident_mb()) + shape.memory_mb)
