"""The local AWS emulation in this test process: restart it on its data dir, stop it clean."""

from __future__ import annotations

from pathlib import Path

import requests

from image_etl.local.emulator import Emulator


def restart(emulator: Emulator, data_dir: Path) -> Emulator:
    """Stop, wipe moto's in-memory state (as a new process would have none), start on the same data dir."""
    requests.post(f"{emulator.settings.aws_endpoint_url}/moto-api/reset", timeout=10).raise_for_status()
    emulator.stop()
    fresh = Emulator(data_dir, port=0)
    fresh.start()
    return fresh


def stop_clean(emulator: Emulator) -> None:
    """Stop, leaving none of this test's keys to the next (moto's backends are the process's)."""
    requests.post(f"{emulator.settings.aws_endpoint_url}/moto-api/reset", timeout=10)
    emulator.stop()
