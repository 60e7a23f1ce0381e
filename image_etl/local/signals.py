"""How the local stack's processes stop: at the first SIGTERM or SIGINT, quietly, whatever follows.

Ctrl-C reaches every process of the terminal's group and `image-etl up` sends its children SIGTERM
as well, so a child often gets two or more stop signals; one landing while Python shuts down would
print a traceback (or kill the process with the signal's exit code) instead of a clean exit 0.
"""

from __future__ import annotations

import atexit
import ctypes
import signal
from typing import Any

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_PR_SET_PDEATHSIG = 1  # from <sys/prctl.h>


def die_with_parent() -> None:
    """Have the kernel send this process SIGTERM when its parent dies (Linux ``PR_SET_PDEATHSIG``).

    A supervisor killed with -9 cannot stop its children itself: this makes them stop anyway.
    Safe as a ``preexec_fn`` (it only makes one system call).
    """
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def ignore_further_stops() -> None:
    """Ignore SIGTERM and SIGINT from now on: the process is already stopping.

    Two steps, because each alone prints a traceback in some interleaving: a Python handler that
    does nothing, now (with ``SIG_IGN`` set here, a second signal that had already arrived but
    whose handler had not run yet is reported by Python as "OSError: Signal 15 ignored due to race
    condition", raised in whatever the process is doing), and ``SIG_IGN`` at exit (while the
    interpreter finalizes, Python puts its own handlers back to the default, and a signal then
    would kill the process with the signal's exit code).
    """
    for stop in STOP_SIGNALS:
        signal.signal(stop, _already_stopping)
    atexit.unregister(_ignore_at_exit)
    atexit.register(_ignore_at_exit)


def _already_stopping(*_: Any) -> None:
    """A stop signal after the first: the process is stopping already."""


def _ignore_at_exit() -> None:
    for stop in STOP_SIGNALS:
        signal.signal(stop, signal.SIG_IGN)


def exit_on_stop() -> None:
    """Make the first SIGTERM or SIGINT end the process with exit code 0, and ignore the rest."""

    def stop(*_: Any) -> None:
        ignore_further_stops()
        raise SystemExit(0)

    for sig in STOP_SIGNALS:
        signal.signal(sig, stop)
