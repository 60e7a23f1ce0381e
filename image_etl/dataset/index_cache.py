"""A local on-disk cache of the manifest table's compact index, one entry per Iceberg data file.

Iceberg data files are never modified: a new version writes new files and drops old ones from the
snapshot. So a data file's path, size and record count name its content for good, and a cached copy
of its index columns never goes stale. A run reads from the table only the files it has not cached
(the days the last run rewrote, which that run usually cached already) and reads the rest from
here, straight into the index's arrays. Everything works without the cache (a first run, ephemeral
compute): a missing, unreadable or corrupt entry is read from the table again, never trusted.

Where: ``$IMAGE_ETL_INDEX_CACHE`` (``off`` disables it), else ``$XDG_CACHE_HOME/image-etl/index``,
else ``~/.cache/image-etl/index``; one folder per table location. Entries of files the table no
longer holds are pruned whenever the index is read, so a table's folder holds about one version's
files (~48 bytes an image: 480 MB at 10M images).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:
    from image_etl.dataset.table import Index

log = logging.getLogger(__name__)

#: The setting: a folder, or ``off`` (also ``0``, ``false``, ``none``) for no cache.
CACHE_VARIABLE = "IMAGE_ETL_INDEX_CACHE"
#: Bumped whenever the entry layout or what an index column means changes (e.g. the split codes of
#: :mod:`image_etl.dataset.groups`): entries of another format sit in another folder, never read.
FORMAT = 1
_MAGIC = b"IETLIDX1"
_OFF = frozenset({"", "off", "0", "false", "none", "no"})
#: Folders of other tables (a test's temporary warehouse, a deleted table) unused this long are removed.
STALE_TABLE_S = 14 * 86_400


class DataFileLike(Protocol):
    """What identifies a data file (pyiceberg's ``DataFile`` has these)."""

    @property
    def file_path(self) -> str: ...
    @property
    def file_size_in_bytes(self) -> int: ...
    @property
    def record_count(self) -> int: ...


def default_cache_root() -> Path | None:
    """Return where index caches live by default (None: the cache is switched off)."""
    value = os.environ.get(CACHE_VARIABLE)
    if value is not None:
        return None if value.strip().lower() in _OFF else Path(value).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "image-etl" / "index"


def _digest(text: str, length: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


class IndexCache:
    """The cached index entries of one table (by its location) under ``root``.

    :param root: the cache folder shared by every table (see :func:`default_cache_root`).
    :param table_location: the table's location (``s3://...`` or ``file://...``): its own subfolder.
    """

    def __init__(self, root: Path, table_location: str) -> None:
        self.root = Path(root) / f"v{FORMAT}"
        self.folder = self.root / _digest(table_location, 24)
        self.table_location = table_location

    def path(self, data_file: DataFileLike) -> Path:
        """Return the entry of a data file (its identity: path, size and record count)."""
        identity = f"{data_file.file_path}\0{data_file.file_size_in_bytes}\0{data_file.record_count}"
        return self.folder / f"{_digest(identity, 40)}.idx"

    def load_into(self, data_file: DataFileLike, index: Index, at: int) -> bool:
        """Read a data file's entry into ``index[at : at + record_count]``; return False on a miss.

        A miss (no entry, another file's entry, a short or corrupt one) leaves the slice undefined:
        the caller fills it from the table. A corrupt entry is deleted.
        """
        path = self.path(data_file)
        try:
            with path.open("rb") as stream:
                if stream.read(8) != _MAGIC:
                    raise ValueError("not an index entry")
                header = json.loads(stream.read(int.from_bytes(stream.read(8), "little")))
                rows = int(data_file.record_count)
                expected = {"path": data_file.file_path, "size": data_file.file_size_in_bytes, "rows": rows}
                if {k: header.get(k) for k in expected} != expected or header.get("columns") != _columns(
                    index
                ):
                    raise ValueError("entry of another file or layout")
                stream.seek(_aligned(stream.tell()))
                total = 0
                for name in index.__dataclass_fields__:
                    target = getattr(index, name)[at : at + rows]
                    raw = memoryview(target).cast("B")
                    if stream.readinto(raw) != len(raw):
                        raise ValueError("truncated entry")
                    total = (total + _checksum(target)) % 2**64
                    stream.seek(_aligned(stream.tell()))
                if total != header.get("checksum"):
                    raise ValueError("checksum mismatch")
        except FileNotFoundError:
            return False
        except (OSError, ValueError, TypeError, KeyError) as error:
            log.warning("index cache entry %s unusable (%s): reading the file from the table", path, error)
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)
            return False
        return True

    def store(self, data_file: DataFileLike, part: Index) -> None:
        """Write a data file's index columns as its entry (atomically); a failure only logs."""
        if len(part) != data_file.record_count:
            raise ValueError(
                f"{data_file.file_path}: {len(part)} index rows, the file has {data_file.record_count}"
            )
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            # In the index's own dtypes, so an entry reads straight into its arrays.
            arrays: list[np.ndarray] = [
                np.ascontiguousarray(getattr(part, name), dtype=dtype)
                for name, dtype in zip(part.__dataclass_fields__, part.dtypes(), strict=True)
            ]
            total = 0
            for array in arrays:
                total = (total + _checksum(array)) % 2**64
            header = json.dumps(
                {
                    "path": data_file.file_path,
                    "size": data_file.file_size_in_bytes,
                    "rows": int(data_file.record_count),
                    "columns": _columns(part),
                    "checksum": total,
                }
            ).encode()
            target = self.path(data_file)
            # A name of this process's own (no mkstemp: it costs more than the write at 3k files).
            temporary = target.with_name(f"{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
            with temporary.open("wb") as stream:
                stream.write(_MAGIC + len(header).to_bytes(8, "little") + header)
                for array in arrays:
                    stream.write(b"\0" * (_aligned(stream.tell()) - stream.tell()))
                    stream.write(array.data)
            os.replace(temporary, target)
        except OSError as error:
            log.warning("could not cache the index of %s in %s: %s", data_file.file_path, self.folder, error)

    def prune(self, keep: Iterable[DataFileLike]) -> int:
        """Delete the entries of files not in ``keep`` (the table's current files); return how many.

        Also removes other tables' folders unused for :data:`STALE_TABLE_S` (tests' temporary
        tables), so the cache stays bounded by the tables in use.
        """
        wanted = {self.path(f).name for f in keep}
        removed = 0
        try:
            for entry in self.folder.iterdir():
                stale_tmp = entry.suffix == ".tmp" and time.time() - entry.stat().st_mtime > 3600
                if (entry.suffix == ".idx" and entry.name not in wanted) or stale_tmp:
                    entry.unlink(missing_ok=True)
                    removed += 1
            os.utime(self.folder)
            for other in self.root.iterdir():
                if other != self.folder and time.time() - other.stat().st_mtime > STALE_TABLE_S:
                    shutil.rmtree(other, ignore_errors=True)
        except OSError as error:
            log.warning("could not prune the index cache %s: %s", self.folder, error)
        return removed


def _columns(index: Index) -> list[list[str]]:
    """Return the entry layout: each index field with its dtype."""
    return [
        [name, np.dtype(t).str] for name, t in zip(index.__dataclass_fields__, index.dtypes(), strict=True)
    ]


def _aligned(offset: int) -> int:
    return -(-offset // 8) * 8


def _checksum(values: np.ndarray) -> int:
    """Return a cheap checksum of an array's bytes (one pass, no copy): the sum of its little-endian
    uint64 words plus the sum of every other word (mod 2**64), so swapped words show too."""
    raw = np.ascontiguousarray(values).reshape(-1).view(np.uint8)
    whole = len(raw) // 8 * 8
    words = raw[:whole].view("<u8")
    tail = int.from_bytes(raw[whole:].tobytes(), "little")
    total = int(np.add.reduce(words, dtype=np.uint64)) + int(np.add.reduce(words[1::2], dtype=np.uint64))
    return (total + tail + len(raw)) % 2**64
