"""Build ``jpeg_scaled_ac.c`` into the shared object :mod:`jpeg_scaled` loads (``make setup``, the CDK app).

Plain C with no library calls, so the object built here runs wherever the CPU matches (in
Lambda too: checked by ``nm`` in the infra tests).

    python -m lambda_resizer.formats.jpeg_scaled_build [DIR]
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

SOURCE = Path(__file__).with_name("jpeg_scaled_ac.c")
NAME = "_jpeg_scaled_ac.so"


def compiler() -> str | None:
    """Return the C compiler to use ($CC, else cc or gcc on PATH), or None."""
    return os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")


def build(directory: Path = SOURCE.parent) -> Path:
    """Compile the object into ``directory`` (unless it is newer than the source); return its path.

    :raises RuntimeError: no C compiler, or the compile failed (its output is in the message).
    """
    target = directory / NAME
    newest = max(SOURCE.stat().st_mtime, Path(__file__).stat().st_mtime)  # the flags are here
    if target.exists() and target.stat().st_mtime >= newest:
        return target
    cc = compiler()
    if cc is None:
        raise RuntimeError(f"no C compiler (set CC, or install gcc) to build {NAME}")
    directory.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".so.partial")
    command = [cc, "-O3", "-shared", "-fPIC", "-fvisibility=default", "-o", str(partial), str(SOURCE)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stdout}{result.stderr}")
    partial.replace(target)  # atomic: a half-written object is never loaded
    return target


def main() -> None:
    directory = Path(sys.argv[1]) if len(sys.argv) > 1 else SOURCE.parent
    try:
        print(f"built {build(directory)}")
    except RuntimeError as error:  # the route is optional: libjpeg decodes these files without it
        print(
            f"WARNING: {error}; progressive JPEGs at 1/4-1/2 scale will be decoded by libjpeg",
            file=sys.stderr,
        )


if __name__ == "__main__":
    main()
