"""What a local stack's data dir holds: objects and their bytes, records, and the disk's free space.

Read from the state file (a read-only SQLite connection works beside the running emulator: WAL) and
the filesystem, never through the emulator, so `image-etl info` answers whether the stack runs or not.
"""

from __future__ import annotations

import shutil
import sqlite3
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from image_etl.settings import STATE_DB


@dataclass(frozen=True)
class DataDirUsage:
    objects: int
    object_bytes: int
    records: int
    #: everything under the data dir: bodies, the state file and its WAL, users, Dagster's home
    #: (None when not measured: it walks every file)
    data_dir_bytes: int | None
    free_bytes: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        return (
            f"{self.objects:,} objects ({human_bytes(self.object_bytes)}), {self.records:,} records; "
            f"{human_bytes(self.free_bytes)} free on its disk"
        )


def data_dir_usage(data_dir: Path, *, walk: bool = True) -> DataDirUsage:
    """Count from the state file; with ``walk``, also add up every file's size under the data dir."""
    objects = object_bytes = records = 0
    state = data_dir / STATE_DB
    if state.exists():
        with sqlite3.connect(f"file:{state}?mode=ro", uri=True) as db:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if "s3_keys" in tables:
                objects, object_bytes = db.execute(
                    "SELECT count(*), coalesce(sum(size), 0) FROM s3_keys"
                ).fetchone()
            if "dynamodb_items" in tables:
                records = db.execute("SELECT count(*) FROM dynamodb_items").fetchone()[0]
    # The disk it will be on: its nearest folder that exists (a first `up` creates the rest).
    existing = next(folder for folder in (data_dir, *data_dir.absolute().parents) if folder.exists())
    return DataDirUsage(
        objects,
        object_bytes,
        records,
        _tree_bytes(data_dir) if walk else None,
        shutil.disk_usage(existing).free,
    )


def human_bytes(count: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if count < 1000 or unit == "TB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    raise AssertionError("unreachable")


def _tree_bytes(root: Path) -> int:
    if not root.exists():
        return 0
    return sum(path.stat().st_size for path in root.rglob("*") if path.is_file() and not path.is_symlink())
