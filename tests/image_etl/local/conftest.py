from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from image_etl.local.emulator import Emulator
from tests.image_etl.local.emulators import stop_clean


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[dict[str, Emulator]]:
    """An emulator on ``tmp_path``; ``["current"]`` is replaced by the one a test restarts."""
    started = Emulator(tmp_path, port=0)
    started.start()
    holder = {"current": started}
    yield holder
    stop_clean(holder["current"])
