from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
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


#: `disk_full(target, name, error)`: a context in which calling ``target.name`` raises ``error``.
DiskFull = Callable[[object, str, BaseException], AbstractContextManager[None]]


@pytest.fixture
def disk_full(monkeypatch: pytest.MonkeyPatch) -> DiskFull:
    """Make one write path fail as a full disk does (``error``: what that path raises then), only
    inside the ``with`` block, so what the test checks afterwards runs with space back."""

    @contextmanager
    def full(target: object, name: str, error: BaseException) -> Iterator[None]:
        def refuse(*_args: object, **_kwargs: object) -> None:
            raise error

        with monkeypatch.context() as patch:
            # raising=False: a module's builtin (`open`) is shadowed, then the shadow removed.
            patch.setattr(target, name, refuse, raising=False)
            yield

    return full
