"""S3 object bodies on disk for the emulator: moto keeps keys and metadata, the bytes live in files.

moto's `FakeKey` holds each body in a `tempfile.SpooledTemporaryFile` (in memory below 5 MiB), so
the emulator's memory grew with the dataset and a restart had to copy every byte back in. Here that
buffer is replaced by a `DiskBuffer`: the body is written once, to a file under
`<data dir>/objects/`, and read from there on every GET. moto calls its buffer through four methods
(seek, truncate, write, read) and closes it when a key is deleted or replaced, so swapping the
class moto instantiates is enough; none of moto's request handling changes.

A body file is written under a temporary name and renamed into place, so a half-written body is
never visible. A file belongs to a key only once the persistence middleware has recorded it in the
state file (`commit`); until then closing the buffer deletes the file, and after that the middleware
deletes it when the record moves on (overwrite, delete). Files no record names (left by a kill -9
between the write and its record, or by multipart parts) are swept at start-up. Durability is the
kernel's: a body is in the page cache before the client's response, which is what survives kill -9;
ext4's ordered mode writes the data before the rename that publishes it.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import threading
import types
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import moto.s3.models
from werkzeug.exceptions import HTTPException

log = logging.getLogger("image_etl.local.s3")

#: Writes are refused while less than this is free on the data dir's disk, so the state file (whose
#: rows follow each body) can always be written and a full disk is a clear error, not a torn object.
MIN_FREE_BYTES = 64 * 2**20


class DataDirFull(OSError):
    """The data dir's disk has no room for a body (raised as ENOSPC; the emulator answers 507)."""

    def __init__(self, needed: int, free: int, path: Path) -> None:
        super().__init__(
            errno.ENOSPC,
            f"the local stack's data dir {path} is full: {free / 2**20:.0f} MB free, "
            f"{needed / 2**20:.2f} MB to write and a {MIN_FREE_BYTES // 2**20} MB reserve needed; "
            "free space under it, or start the stack with another --data-dir",
        )
        self.needed, self.free = needed, free


class InsufficientStorage(HTTPException):
    """What moto answers when a body cannot be written: an S3-style XML error, HTTP 507.

    507 rather than S3's 503 SlowDown: SDKs retry 5xx throttling, and a full disk does not heal in
    the seconds their retries wait.
    """

    code = 507

    def __init__(self, message: str) -> None:
        super().__init__(insufficient_storage_xml(message).decode())

    # Flask renders an HTTPException through these two: an S3 client expects XML, not HTML.
    def get_body(self, *_args: Any, **_kwargs: Any) -> str:
        return self.description or ""

    def get_headers(self, *_args: Any, **_kwargs: Any) -> list[tuple[str, str]]:
        return [("Content-Type", "application/xml")]


def insufficient_storage_xml(message: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>InsufficientStorage</Code>'
        f"<Message>{escape(message)}</Message></Error>"
    ).encode()


class BlobStore:
    """Body files under one folder: `<root>/<2 hex>/<32 hex>`, written by rename, never rewritten."""

    def __init__(self, root: Path, *, min_free_bytes: int = MIN_FREE_BYTES) -> None:
        self.root = root
        self.min_free_bytes = min_free_bytes
        # free space as last asked (statvfs), and what was written since: asked again only when
        # the writes since could have eaten half of the room above the reserve
        self._free = 0
        self._written = 0
        self._free_lock = threading.Lock()
        self._tmp = root / "tmp"
        self._tmp.mkdir(parents=True, exist_ok=True)
        for shard in range(256):
            (root / f"{shard:02x}").mkdir(exist_ok=True)

    def path(self, name: str) -> Path:
        return self.root / name[:2] / name

    def write(self, data: bytes | bytearray | memoryview) -> str:
        """Store ``data`` in a new file and return its name; raises DataDirFull when the disk is full."""
        self._check_room(len(data))
        name = uuid.uuid4().hex
        tmp = self._tmp / name
        try:
            with open(tmp, "wb") as out:
                out.write(data)
            os.rename(tmp, self.path(name))
        except OSError as error:
            tmp.unlink(missing_ok=True)
            if error.errno == errno.ENOSPC:
                raise DataDirFull(len(data), shutil.disk_usage(self.root).free, self.root.parent) from error
            raise
        return name

    def _check_room(self, size: int) -> None:
        with self._free_lock:
            if self._written + size > (self._free - self.min_free_bytes) / 2:
                self._free, self._written = shutil.disk_usage(self.root).free, 0
            if self._free - self._written - size < self.min_free_bytes:
                raise DataDirFull(size, self._free - self._written, self.root.parent)
            self._written += size

    def read(self, name: str, offset: int = 0, size: int = -1) -> bytes:
        with open(self.path(name), "rb") as body:
            if offset:
                body.seek(offset)
            return body.read(size)

    def remove(self, name: str) -> None:
        self.path(name).unlink(missing_ok=True)

    def sweep(self, referenced: Iterable[str]) -> int:
        """Delete every file no record names (and every temporary file); return how many."""
        keep = set(referenced)
        removed = 0
        for entry in os.scandir(self._tmp):
            os.unlink(entry.path)
            removed += 1
        for shard in range(256):
            for entry in os.scandir(self.root / f"{shard:02x}"):
                if entry.name not in keep:
                    os.unlink(entry.path)
                    removed += 1
        return removed


class DiskBuffer:
    """The file-like object moto's FakeKey keeps its body in, backed by one BlobStore file."""

    __slots__ = ("_closed", "_committed", "_lock", "_pos", "_store", "name", "size")

    def __init__(self, store: BlobStore) -> None:
        self._store = store
        self.name: str | None = None
        self.size = 0
        self._pos = 0
        self._committed = False
        self._closed = False
        self._lock = threading.Lock()

    # --- what FakeKey calls -------------------------------------------------------------------
    def seek(self, pos: int, whence: int = 0) -> int:
        self._pos = pos if whence == 0 else (self._pos + pos if whence == 1 else self.size + pos)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def truncate(self, size: int | None = None) -> int:
        if size not in (None, 0):
            raise OSError(errno.EINVAL, "a stored body is replaced whole, never cut")
        self._replace(None, 0)
        return 0

    def write(self, data: bytes | bytearray) -> int:
        if self._pos or self.name:  # moto replaces a body whole; an append rewrites the file
            data = self.read_all()[: self._pos] + bytes(data)
        try:
            name = self._store.write(data) if data else None
        except DataDirFull as error:
            log.error("refused a %d-byte write: %s", len(data), error.strerror)
            raise InsufficientStorage(error.strerror or str(error)) from error
        self._replace(name, len(data))
        self._pos = len(data)
        return len(data)

    def read(self, size: int = -1) -> bytes:
        if self.name is None or self._pos >= self.size:
            return b""
        data = self._store.read(self.name, self._pos, size)
        self._pos += len(data)
        return data

    def close(self) -> None:
        """The key is gone or replaced: drop the file unless a record names it (the middleware's)."""
        with self._lock:
            self._closed = True
            if self.name and not self._committed:
                self._store.remove(self.name)

    # --- what the persistence middleware and the restore call -------------------------------
    def read_all(self) -> bytes:
        return self._store.read(self.name) if self.name else b""

    def commit(self) -> bool:
        """Mark the file as named by a record; False if the key was closed first (read it again)."""
        with self._lock:
            if self._closed:
                return False
            self._committed = True
            return True

    def adopt(self, name: str | None, size: int) -> None:
        """Point at a file a record already names (restore: nothing is read)."""
        self.name, self.size, self._committed = name, size, True

    def _replace(self, name: str | None, size: int) -> None:
        with self._lock:
            old, old_committed = self.name, self._committed
            self.name, self.size, self._committed = name, size, False
        if old and not old_committed:
            self._store.remove(old)


_MOTO_TEMPFILE = moto.s3.models.tempfile


def install(store: BlobStore) -> None:
    """Make every FakeKey moto creates from now on keep its body in ``store`` (until `uninstall`)."""

    def buffer(*_args: Any, **_kwargs: Any) -> DiskBuffer:
        return DiskBuffer(store)

    # moto reaches the class as `tempfile.SpooledTemporaryFile` in its own module namespace; only
    # that name is replaced, the real tempfile module is untouched.
    moto.s3.models.tempfile = types.SimpleNamespace(SpooledTemporaryFile=buffer)  # type: ignore[assignment]


def uninstall() -> None:
    moto.s3.models.tempfile = _MOTO_TEMPFILE


def body_of(fake: Any) -> DiskBuffer:
    buffer = fake._value_buffer
    if not isinstance(buffer, DiskBuffer):
        raise TypeError("s3_disk.install() was not called before this key was created")
    return buffer
