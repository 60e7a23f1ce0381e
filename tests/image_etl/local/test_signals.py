"""How the local stack's processes stop: a child armed with `die_with_parent` outlives no parent."""

from __future__ import annotations

import os
import subprocess
import sys
import time

ARMED_CHILD = (
    "import time; from image_etl.local.signals import die_with_parent; "
    "die_with_parent(); print('armed', flush=True); time.sleep(60)"
)
# The parent starts the child, waits until it is armed, hands over its pid and exits at once.
PARENT = (
    "import subprocess, sys; "
    f"child = subprocess.Popen([sys.executable, '-c', {ARMED_CHILD!r}], "
    "stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True); "
    "assert child.stdout.readline() == 'armed\\n'; print(child.pid, flush=True)"
)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A child that has died but not been reaped (by init) is a zombie: gone for our purpose.
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0] != "Z"


def test_a_child_armed_with_die_with_parent_stops_when_its_parent_dies() -> None:
    parent = subprocess.run(
        [sys.executable, "-c", PARENT], capture_output=True, text=True, timeout=30, check=True
    )
    child = int(parent.stdout.strip())
    deadline = time.monotonic() + 10
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    if alive(child):
        os.kill(child, 9)
        raise AssertionError("the child outlived its parent")


# Both stop signals arrive before Python runs either handler (held back by the signal mask, then
# let through at once): the first handler runs while the second is already pending. The process
# then does some work while it unwinds, as the worker does when a stop lands mid-request.
BOTH_AT_ONCE = """
import os, signal, sys
from image_etl.local.signals import exit_on_stop
exit_on_stop()
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
os.kill(os.getpid(), signal.SIGINT)
os.kill(os.getpid(), signal.SIGTERM)
try:
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    for _ in range(1000):
        pass
finally:
    for _ in range(100000):
        sum(range(10))
"""


def test_two_stop_signals_pending_at_once_end_the_process_quietly() -> None:
    run = subprocess.run(
        [sys.executable, "-c", BOTH_AT_ONCE], capture_output=True, text=True, timeout=60, env=os.environ
    )
    assert run.returncode == 0 and "Traceback" not in run.stderr, run.stderr
