"""Run a C decoder built with AddressSanitizer and UBSan on damaged files, in a child process.

A read past a buffer or an overflowing shift does not crash on its own, so a fuzz loop over the
plain object proves little. Built with the sanitizers, the object reports (and aborts on) either;
Python itself is not instrumented, so their runtimes are preloaded into a child interpreter.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from lambda_resizer.formats import native_build

ROOT = Path(__file__).resolve().parents[3]


def _run(command: list[str], **options: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=600, **options)  # type: ignore[call-overload, no-any-return]


def run_sanitized(name: str, driver: str, folder: Path) -> dict:
    """Build ``native_build.SOURCES[name]`` with the sanitizers into ``folder``, run ``driver`` on it.

    :param driver: Python source run in a child with the object's path as ``sys.argv[1]``; it prints
        a JSON object as its last line, which is returned.
    :raises AssertionError: a sanitizer reported, or the driver failed (its stderr in the message).
    """
    cc = native_build.compiler()
    assert cc, "no C compiler: make setup needs one too"
    library = folder / f"sanitized{name}"
    sanitizers = ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined"]
    source = str(native_build.SOURCES[name])
    _run([cc, "-O1", "-g", *sanitizers, "-shared", "-fPIC", "-o", str(library), source], check=True)
    runtimes = [
        _run([cc, f"-print-file-name={lib}"], check=True).stdout.strip()
        for lib in ("libasan.so", "libubsan.so")
    ]
    assert all(Path(runtime).is_file() for runtime in runtimes), runtimes
    env = {
        **os.environ,
        "LD_PRELOAD": " ".join(runtimes),
        "ASAN_OPTIONS": "detect_leaks=0",
        "PYTHONPATH": str(ROOT),
    }
    result = _run([sys.executable, "-c", driver, str(library)], env=env, check=False)
    assert result.returncode == 0 and "runtime error" not in result.stderr, result.stderr[-4000:]
    return json.loads(result.stdout.splitlines()[-1])
