"""The upload-day partitions start on the settings' first upload day, and ranges stay inside them."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO


@pytest.mark.slow
def test_partitions_start_on_the_settings_first_upload_day() -> None:
    # A fresh interpreter: the partitions are fixed when the code location loads.
    code = (
        "from pipelines.partitions import upload_days, recent_days; from datetime import date; "
        "print(upload_days.get_first_partition_key(), recent_days(date(2026, 12, 2), 3)[0])"
    )
    env = {**os.environ, "IMAGE_ETL_FIRST_DAY": "2026-11-30"}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120, env=env
    )
    assert out.returncode == 0, out.stderr[-2000:]
    # A dataset begun on 2026-11-30 has its days from then, and the nightly refresh stays inside them.
    assert out.stdout.split() == ["2026-11-30", "2026-11-30"]
