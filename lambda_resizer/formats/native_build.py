"""Build the formats' C decoders into the shared objects their modules load (``make setup``, the CDK app).

- ``_jpeg_scaled_ac.so`` from ``jpeg_scaled_ac.c``: progressive JPEG scans into scaled IDCT sums
  (:mod:`jpeg_scaled`); plain C, no library calls.
- ``_webp_lossless_rows.so`` from ``webp_lossless_rows.c``: lossless WebP a row at a time
  (:mod:`webp_lossless`); calls only malloc, calloc, free, memcpy and memset.

Both run wherever the CPU matches (in Lambda too: checked by ``nm`` in the infra tests). A module
whose object is missing falls back to the library route (libjpeg, libwebp) and logs it once.

    python -m lambda_resizer.formats.native_build [DIR]
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
#: Shared object -> its C source.
SOURCES = {
    "_jpeg_scaled_ac.so": HERE / "jpeg_scaled_ac.c",
    "_webp_lossless_rows.so": HERE / "webp_lossless_rows.c",
}


def compiler() -> str | None:
    """Return the C compiler to use ($CC, else cc or gcc on PATH), or None."""
    return os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")


def build(directory: Path = HERE) -> list[Path]:
    """Compile every object into ``directory`` (each unless newer than its source); return their paths.

    :raises RuntimeError: no C compiler, or a compile failed (its output is in the message).
    """
    return [build_one(name, directory) for name in SOURCES]


def build_one(name: str, directory: Path = HERE) -> Path:
    """Compile one object (a key of ``SOURCES``) into ``directory``; see :func:`build`."""
    source, target = SOURCES[name], directory / name
    newest = max(source.stat().st_mtime, Path(__file__).stat().st_mtime)  # the flags are here
    if target.exists() and target.stat().st_mtime >= newest:
        return target
    cc = compiler()
    if cc is None:
        raise RuntimeError(f"no C compiler (set CC, or install gcc) to build {name}")
    directory.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".so.partial")
    command = [cc, "-O3", "-shared", "-fPIC", "-fvisibility=default", "-o", str(partial), str(source)]
    try:
        result = subprocess.run(command, capture_output=True, text=True, check=False)
    except OSError as error:  # $CC names no program
        raise RuntimeError(f"{cc} cannot be run to build {name}: {error}") from error
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stdout}{result.stderr}")
    partial.replace(target)  # atomic: a half-written object is never loaded
    return target


def main() -> None:
    directory = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE
    for name in SOURCES:
        try:
            print(f"built {build_one(name, directory)}")
        except RuntimeError as error:  # each route is optional: its library decodes without it
            print(f"WARNING: {error}; its files will be decoded by their library instead", file=sys.stderr)


if __name__ == "__main__":
    main()
