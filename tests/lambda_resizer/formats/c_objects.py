"""What the C decoders' tests share: a sanitized build run on damaged files, and the object missing.

A read past a buffer or an overflowing shift does not crash on its own, so a fuzz loop over the
plain object proves little. Built with AddressSanitizer and UBSan, the object reports (and aborts
on) either; Python itself is not instrumented, so their runtimes are preloaded into a child
interpreter.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from lambda_resizer.formats import native_build

ROOT = Path(__file__).resolve().parents[3]

#: Run in the child: the module loads the sanitized object, the tests' ``damaged_outcomes`` runs.
_DRIVER = """
import json, sys
from pathlib import Path
from lambda_resizer.formats import {module}
{module}.LIBRARY = Path(sys.argv[1])
assert {module}.available()
from {tests} import FILES, damaged_outcomes
print(json.dumps({{name: damaged_outcomes(name, {count}) for name in FILES}}))
"""


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


def damaged_outcomes_sanitized(module: ModuleType, tests: str, count: int, folder: Path) -> dict:
    """Return ``damaged_outcomes(name, count)`` of test module ``tests`` for each of its FILES, run
    with ``module``'s C object built with the sanitizers (see :func:`run_sanitized`)."""
    name = Path(module.LIBRARY).name
    short = module.__name__.rsplit(".", 1)[-1]
    return run_sanitized(name, _DRIVER.format(module=short, tests=tests, count=count), folder)


def without_c_object(module: ModuleType, monkeypatch: pytest.MonkeyPatch, folder: Path) -> Iterator[None]:
    """Run the test with ``module``'s C object missing (no compiler, a package built elsewhere)."""
    module._library.cache_clear()
    monkeypatch.setattr(module, "LIBRARY", folder / Path(module.LIBRARY).name)
    yield
    module._library.cache_clear()
