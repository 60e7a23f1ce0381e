"""The manifest as an Apache Iceberg table: catalog, compact index, partitions, versions and publishing.

One table (``<database>.manifest``) partitioned by ``upload_day``; a big day is several data files,
cut by ``image_key`` range (:mod:`image_etl.dataset.slices`). Every dataset version is a
snapshot tagged with its version id; the ``published`` tag names the version consumers read and
moves only after the version's blocking checks passed. Readers anywhere (pandas, polars, DuckDB over
Arrow, Athena) read a tag or a snapshot id; an expired version is a clear error, never an empty
table (pyiceberg itself would answer a scan of an expired snapshot id with 0 rows).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from image_etl.dataset import keys
from image_etl.dataset.groups import NO_SPLIT, split_codes
from image_etl.dataset.index_cache import IndexCache, default_cache_root
from image_etl.dataset.rows import INDEX_COLUMNS, PARTITION_COLUMN, arrow_schema, with_group_sizes
from image_etl.resource_shapes import LOCAL_CREDENTIALS

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog
    from pyiceberg.io import FileIO
    from pyiceberg.io.pyarrow import PyArrowFileIO
    from pyiceberg.manifest import DataFile
    from pyiceberg.table import Table

log = logging.getLogger(__name__)

TABLE_NAME = "manifest"
PUBLISHED_TAG = "published"
#: Table properties image-etl keeps next to the data (current state, not versioned).
RECORD_FILES_PROPERTY = "image-etl.record-files"
RULES_PROPERTY = "image-etl.rules"
PUBLISHED_LOG_PROPERTY = "image-etl.published-versions"
VARIANTS_PROPERTY = "image-etl.variants"
#: Snapshot summary property naming the version a snapshot is.
VERSION_SUMMARY = "image-etl.version"
TABLE_PROPERTIES: dict[str, str] = {
    # pyiceberg counts Arrow bytes in memory; parquet files come out 3-10x smaller (well under 512 MB).
    "write.target-file-size-bytes": str(128 * 1024 * 1024),
    "write.parquet.compression-codec": "zstd",
    # A conflicting commit is recomputed from the new state (build.py), never rebased blindly:
    # pyiceberg's own retry would drop the version tag staged with the snapshot.
    "commit.retry.num-retries": "0",
    # Old metadata files go with each commit; retention deletes what else no version references.
    "write.metadata.delete-after-commit.enabled": "true",
    "write.metadata.previous-versions-max": "5",
    # Per-file column bounds are dropped (counts kept): nothing here or in a usual query prunes on
    # them (files are cut by image_key hash, days by partition), and at ~1,500 files they were
    # half of every manifest a commit rewrites (pyiceberg's Python Avro writer: 0.72 -> 0.43 s).
    "write.metadata.metrics.default": "counts",
    # Appends merge small manifests, so planning a scan stays cheap after hundreds of runs.
    "commit.manifest-merge.enabled": "true",
    "commit.manifest.min-count-to-merge": "20",
}
#: Rows of data files whose index is read through one Arrow dataset at a time: a few files' worth
#: of per-file work amortised, ~50 MB of Arrow columns at most beside the index.
INDEX_BATCH_ROWS = 1 << 20
#: Data files read at once from object storage (each read is a footer GET and a columns GET).
REMOTE_READERS = 16
_VERSION = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{6,64}$")


class ManifestNotFound(LookupError):
    """No manifest (or not the version asked for) exists."""


class VersionExpired(ManifestNotFound):
    """The version existed, but the retention policy expired it."""


def new_version_id(digest: str, *, now: dt.datetime | None = None) -> str:
    """Return a version id: build time (UTC, to the second), then a hash of the change.

    :param digest: hex digest of what the version changed.
    :param now: the build time (default: now).
    """
    moment = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    return f"{moment:%Y%m%dT%H%M%SZ}-{digest[:12]}"


def is_version_id(value: str) -> bool:
    """Return True for a string shaped like a version id (``YYYYMMDDTHHMMSSZ-<hex>``)."""
    return bool(_VERSION.match(value))


def glue_catalog(
    *, region: str, endpoint_url: str | None = None, local_credentials: bool = False, name: str = "image_etl"
) -> Catalog:
    """Return pyiceberg's Glue catalog for a deployment (the emulator's Glue and S3 when ``endpoint_url``).

    :param region: AWS region.
    :param endpoint_url: the local stack's endpoint, or None for AWS's own endpoints.
    :param local_credentials: sign with dummy keys (the emulator) instead of the default chain.
    :param name: the catalog's name in pyiceberg (cosmetic).
    """
    from pyiceberg.catalog.glue import GlueCatalog

    properties: dict[str, str] = {"glue.region": region, "s3.region": region, "client.region": region}
    if endpoint_url:
        properties.update({"glue.endpoint": endpoint_url, "s3.endpoint": endpoint_url})
    if local_credentials:
        for service in ("glue", "s3"):
            properties[f"{service}.access-key-id"] = LOCAL_CREDENTIALS["aws_access_key_id"]
            properties[f"{service}.secret-access-key"] = LOCAL_CREDENTIALS["aws_secret_access_key"]
    return GlueCatalog(name, **properties)


def local_catalog(warehouse: Path, *, name: str = "image_etl") -> Catalog:
    """Return a SQLite catalog over a local-filesystem warehouse (tests, the 10M-image benchmark).

    :param warehouse: folder for the catalog database and the tables' files.
    """
    from pyiceberg.catalog.sql import SqlCatalog

    warehouse.mkdir(parents=True, exist_ok=True)
    return SqlCatalog(name, uri=f"sqlite:///{warehouse / 'catalog.db'}", warehouse=warehouse.as_uri())


@dataclass(frozen=True)
class Version:
    """One dataset version: a tagged snapshot."""

    name: str
    snapshot_id: int
    timestamp_ms: int

    @property
    def built_at(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.timestamp_ms / 1000, tz=dt.UTC)


@dataclass
class Index:
    """The compact index of every image in one snapshot: integer keys, split code and day per image."""

    image_key: np.ndarray  # uint64
    phash: np.ndarray  # uint64
    phash_valid: np.ndarray  # bool
    sha: np.ndarray  # uint64
    sha_valid: np.ndarray  # bool
    group_key: np.ndarray  # uint64
    uploaded_us: np.ndarray  # int64
    split: np.ndarray  # int8 code
    day: np.ndarray  # int32 days since 1970-01-01

    def __len__(self) -> int:
        return len(self.image_key)

    @staticmethod
    def dtypes() -> tuple[type, ...]:
        """Return the field dtypes, in field order."""
        return (np.uint64, np.uint64, np.bool_, np.uint64, np.bool_, np.uint64, np.int64, np.int8, np.int32)

    def slice(self, start: int, stop: int) -> Index:
        """Return rows ``start : stop`` (views, no copy)."""
        return Index(*[getattr(self, name)[start:stop] for name in self.__dataclass_fields__])

    @classmethod
    def empty(cls) -> Index:
        return cls(*[np.empty(0, dtype=t) for t in cls.dtypes()])

    @classmethod
    def allocate(cls, rows: int) -> Index:
        """Return an index of ``rows`` uninitialised rows (to :meth:`fill`)."""
        return cls(*[np.empty(rows, dtype=t) for t in cls.dtypes()])

    def fill(self, at: int, table: pa.Table, *, day: np.ndarray) -> None:
        """Write the index of Arrow rows (the index columns and ``split``) into rows ``at :``.

        Chunk by chunk straight into the arrays: each value is copied once (no combined column, no
        intermediate index). Null keys (a failed image has no pHash or sha256) are written as 0 and
        flagged invalid.

        :param day: each row's upload day number (from the data files' partitions, not read).
        """

        def ints(name: str, target: np.ndarray, valid: np.ndarray | None = None) -> None:
            start = at
            for chunk in table.column(name).chunks:
                stop = start + len(chunk)
                if valid is not None:
                    valid[start:stop] = chunk.is_valid().to_numpy(zero_copy_only=False)
                if chunk.null_count:
                    chunk = pc.fill_null(chunk, 0)
                target[start:stop] = chunk.to_numpy(zero_copy_only=False).view(target.dtype)
                start = stop

        ints("image_key", self.image_key)
        ints("phash_key", self.phash, self.phash_valid)
        ints("sha256_key", self.sha, self.sha_valid)
        ints("group_key", self.group_key)
        ints("uploaded_us", self.uploaded_us)
        split = table.column("split")
        if not pa.types.is_dictionary(split.type):
            split = pa.chunked_array([split.combine_chunks().dictionary_encode()])
        start = at
        for chunk in split.chunks:
            # Codes of the (few) distinct names, then one gather: no per-row Python.
            lookup = np.append(split_codes([str(v) for v in chunk.dictionary.to_pylist()]), NO_SPLIT)
            positions = pc.fill_null(chunk.indices, len(lookup) - 1).to_numpy(zero_copy_only=False)
            self.split[start : start + len(chunk)] = lookup[positions.astype(np.int64)]
            start += len(chunk)
        self.day[at : at + table.num_rows] = day


def day_number(day: str) -> int:
    """Return ``YYYY-MM-DD`` as days since 1970-01-01 (how the index keeps the partition)."""
    return (dt.date.fromisoformat(day) - dt.date(1970, 1, 1)).days


def day_name(number: int) -> str:
    """Return days since 1970-01-01 as ``YYYY-MM-DD``."""
    return (dt.date(1970, 1, 1) + dt.timedelta(days=int(number))).isoformat()


class ManifestTable:
    """The manifest table in a catalog: created on first use, read by version, written by ``build``.

    :param catalog: a pyiceberg catalog (:func:`glue_catalog`, :func:`local_catalog`).
    :param database: the namespace (Glue database) holding the table.
    :param location: where the table's files go (default: the database's location + ``manifest``).
    :param index_cache: folder of the local compact-index cache (:mod:`image_etl.dataset.index_cache`);
        None: the default (``$IMAGE_ETL_INDEX_CACHE``, else the user's cache dir); False: no cache.
    """

    def __init__(
        self,
        catalog: Catalog,
        database: str,
        *,
        location: str | None = None,
        index_cache: Path | Literal[False] | None = None,
    ) -> None:
        self.catalog = catalog
        self.database = database
        self.identifier = f"{database}.{TABLE_NAME}"
        self.location = location
        self._table: Table | None = None
        self._files: tuple[int, dict[str, list[DataFile]]] | None = None
        self._cache_root = default_cache_root() if index_cache is None else index_cache or None
        #: The data files the last :meth:`read_index` read from the table (the others came from the cache).
        self.index_files_read: list[str] = []
        #: The data files of the last :meth:`read_index`, in index order, and each one's first row.
        self._index_files: tuple[list[DataFile], np.ndarray] = ([], np.zeros(0, dtype=np.int64))

    # ------------------------------------------------------------ the table itself

    def exists(self) -> bool:
        return self._table is not None or self.catalog.table_exists(self.identifier)

    def table(self) -> Table:
        """Return the pyiceberg table, creating it (empty, partitioned by day) on first use."""
        if self._table is None:
            if self.catalog.table_exists(self.identifier):
                self._table = self.catalog.load_table(self.identifier)
            else:
                self._table = self._create()
        return self._table

    def refresh(self) -> Table:
        """Return the table as the catalog has it now (after another writer's commit)."""
        self._table = None
        return self.table()

    def _create(self) -> Table:
        # The catalog lost the table but its files are there (a local data dir from before the
        # emulator kept its Glue catalog): register the newest metadata file instead of starting over.
        if self.location and (latest := latest_metadata_file(self.catalog, self.location)):
            self.catalog.create_namespace_if_not_exists(self.database)
            return self.catalog.register_table(self.identifier, latest)
        from pyiceberg.catalog import Catalog as _Catalog
        from pyiceberg.partitioning import PartitionField, PartitionSpec
        from pyiceberg.transforms import IdentityTransform

        self.catalog.create_namespace_if_not_exists(self.database)
        from pyiceberg.schema import assign_fresh_schema_ids

        schema = assign_fresh_schema_ids(_Catalog._convert_schema_if_needed(arrow_schema([])))
        spec = PartitionSpec(
            PartitionField(
                source_id=schema.find_field(PARTITION_COLUMN).field_id,
                field_id=1000,
                transform=IdentityTransform(),
                name=PARTITION_COLUMN,
            )
        )
        return self.catalog.create_table_if_not_exists(
            self.identifier,
            schema=schema,
            partition_spec=spec,
            location=self.location.rstrip("/") if self.location else None,
            properties=TABLE_PROPERTIES,
        )

    def property_json(self, name: str, default: Any) -> Any:
        """Return a JSON table property (image-etl's own state), or ``default``."""
        value = self.table().properties.get(name)
        return json.loads(value) if value else default

    def record_files(self) -> dict[str, str]:
        """Return day -> fingerprint of the record file the table reflects (what the last build read)."""
        return dict(self.property_json(RECORD_FILES_PROPERTY, {}))

    def rules(self) -> str | None:
        """Return the fingerprint of the rules the table was built under (None before the first build)."""
        return self.table().properties.get(RULES_PROPERTY)

    def variants_location(self) -> dict[str, str]:
        """Return ``{"bucket": ..., "prefix": ...}`` of the variants the rows point into ({} if unknown)."""
        return dict(self.property_json(VARIANTS_PROPERTY, {}))

    # ------------------------------------------------------------ reading the current state

    def index_cache(self) -> IndexCache | None:
        """Return the table's compact-index cache, or None when caching is off."""
        if self._cache_root is None:
            return None
        return IndexCache(self._cache_root, self.table().location())

    def read_index(self) -> Index:
        """Return the compact index of the current snapshot; empty before the first build.

        Each data file's index columns come from the local cache when it has them (data files are
        immutable, so an entry never goes stale), else from the file, and are then cached. The
        files the cache lacks are read straight with Parquet's reader (a few file's footers and 5
        columns each; the day comes from the file's partition), converted a batch of
        :data:`INDEX_BATCH_ROWS` rows at a time straight into arrays sized from the record counts,
        so the Arrow form of the whole index never sits in memory beside its numpy form. Cache
        entries of files no longer in the table are pruned.
        """
        files = self.data_files()
        self.index_files_read = []
        starts = np.cumsum([0] + [int(f.record_count) for f in files])[:-1]
        self._index_files = (files, starts)
        if not files:
            return Index.empty()
        cache = self.index_cache()
        total = sum(int(f.record_count) for f in files)
        index = Index.allocate(total)
        missing = [
            position
            for position, (data_file, at) in enumerate(zip(files, starts, strict=True))
            if cache is None or not cache.load_into(data_file, index, int(at))
        ]
        # Runs of consecutive uncached files fill consecutive rows: one conversion per batch.
        runs = np.split(missing, np.flatnonzero(np.diff(missing) != 1) + 1) if missing else []
        for run in runs:
            first = int(run[0])
            for batch in _batches([files[i] for i in run], INDEX_BATCH_ROWS):
                self._read_index_batch(batch, index, int(starts[first]), cache)
                first += len(batch)
                self.index_files_read.extend(f.file_path for f in batch)
        if cache is not None:
            cache.prune(files)
        log.info(
            "%s: index of %d images, %d of %d files read from the table (the rest cached)",
            self.identifier, total, len(self.index_files_read), len(files),
        )  # fmt: skip
        return index

    def index_files(self, rows: np.ndarray) -> tuple[list[DataFile], np.ndarray]:
        """Return (the data files holding these rows of the last :meth:`read_index`, each row's
        position in that list): which files to read or rewrite for some images, without reading any.

        :param rows: positions into the index :meth:`read_index` returned last.
        """
        files, starts = self._index_files
        owner = np.searchsorted(starts, np.asarray(rows, dtype=np.int64), side="right") - 1
        used, position = np.unique(owner, return_inverse=True)
        return [files[i] for i in used], position.astype(np.int64)

    def cache_index(self, files: Sequence[DataFile]) -> None:
        """Put the index of data files just written into the cache (so the next run need not read them)."""
        cache = self.index_cache()
        if cache is None:
            return
        for batch in _batches(files, INDEX_BATCH_ROWS):
            self._read_index_batch(batch, Index.allocate(sum(int(f.record_count) for f in batch)), 0, cache)

    def _read_index_batch(
        self, files: Sequence[DataFile], index: Index, at: int, cache: IndexCache | None
    ) -> None:
        """Write the compact index of data files into ``index`` from row ``at``, in file order, and
        put each file's rows in ``cache`` (when given).

        Each file is read by Parquet's own reader (a dataset scan costs ~2x more per small file: a
        cold 10M-image table is 2,921 files), remote ones several at once (each is two GETs).
        """
        import pyarrow.parquet as pq

        io = arrow_io(self.table().io)
        schema = self.table().schema().as_arrow()
        columns = (*INDEX_COLUMNS, "split")
        wanted = pa.schema(
            [
                pa.field("split", pa.dictionary(pa.int32(), pa.string()))
                if name == "split"
                else schema.field(name).remove_metadata()
                for name in columns
            ]
        )

        def read(data_file: DataFile) -> pa.Table:
            scheme, netloc, path = io.parse_location(data_file.file_path, io.properties)
            with io.fs_by_scheme(scheme, netloc).open_input_file(path) as stream:
                parquet = pq.ParquetFile(stream, read_dictionary=["split"], pre_buffer=scheme != "file")
                arrow = parquet.read(columns=list(columns), use_threads=False)
            if arrow.num_rows != data_file.record_count:  # rows would land at another file's rows
                raise RuntimeError(
                    f"{self.identifier}: read {arrow.num_rows} index rows of {data_file.file_path}, "
                    f"the manifests list {data_file.record_count}"
                )
            if arrow.schema.remove_metadata().equals(wanted):
                return arrow.replace_schema_metadata(None)
            # A file written before a column existed has none of it: nulls, as a scan would give.
            return pa.table(
                [
                    arrow.column(f.name).cast(f.type)
                    if f.name in arrow.column_names
                    else pa.nulls(arrow.num_rows, f.type)
                    for f in wanted
                ],
                schema=wanted,
            )

        stores = {io.parse_location(f.file_path, io.properties)[:2] for f in files}
        if all(scheme == "file" for scheme, _ in stores):
            parts = [read(f) for f in files]
        else:
            for scheme, netloc in stores:  # made (and cached) once here, not by every thread at once
                io.fs_by_scheme(scheme, netloc)
            with ThreadPoolExecutor(max_workers=REMOTE_READERS) as pool:
                parts = list(pool.map(read, files))
        arrow = pa.concat_tables(parts)  # each chunk keeps its split dictionary: fill reads them one by one
        del parts
        rows = [int(f.record_count) for f in files]  # each file's count checked by read()
        days = np.array([day_number(_partition_day(f)) for f in files], dtype=np.int32)
        index.fill(at, arrow, day=np.repeat(days, rows))
        if cache is not None:
            for data_file, count in zip(files, rows, strict=True):
                cache.store(data_file, index.slice(at, at + count))
                at += count

    def read_days(
        self,
        days: Iterable[str],
        *,
        columns: Sequence[str] | None = None,
        image_keys: np.ndarray | None = None,
    ) -> pd.DataFrame:
        """Return the stored rows of these upload days in the current snapshot (empty frame if none).

        :param days: ``YYYY-MM-DD`` partitions.
        :param columns: only these columns (default: all).
        :param image_keys: only the rows of these images (uint64 ``image_key``s): filtered in Arrow,
            so a few rows of many days never become whole days of pandas rows.
        """
        return self.read_files(self.data_files(days), columns=columns, image_keys=image_keys)

    def read_files(
        self,
        files: Sequence[DataFile],
        *,
        columns: Sequence[str] | None = None,
        image_keys: np.ndarray | None = None,
    ) -> pd.DataFrame:
        """Return the rows of these data files (of the current snapshot), like :meth:`read_days`."""
        schema = self.table().schema().as_arrow()
        names = tuple(columns) if columns else tuple(schema.names)
        return _to_pandas(self._read_files(files, names, image_keys=image_keys))

    def day_layout(self, day: str) -> tuple[list[DataFile], np.ndarray, np.ndarray]:
        """Return (the day's data files, each stored row's unsigned ``image_key``, each row's file
        position in that list): what deciding which of a day's files a change rewrites needs."""
        files = self.data_files([day])
        parts = [self._read_files([f], ("image_key",)).column("image_key") for f in files]
        image_key = np.concatenate(
            [keys.as_unsigned(p.to_numpy().astype(np.int64)) for p in parts] or [np.empty(0, np.uint64)]
        )
        position = np.repeat(np.arange(len(files), dtype=np.int64), [len(p) for p in parts])
        return files, image_key, position

    def _read_files(
        self, files: Sequence[DataFile], columns: Sequence[str], *, image_keys: np.ndarray | None = None
    ) -> pa.Table:
        """Return ``columns`` of data files, read straight with Arrow (threads, no per-file planning).

        Valid because every write here is copy-on-write (no delete files) and columns are only ever
        added (a file written before a column existed reads it as nulls), never renamed.
        """
        import pyarrow.dataset as ds

        table = self.table()
        schema = table.schema().as_arrow()
        wanted = pa.schema([schema.field(name).remove_metadata() for name in columns])
        if not files:
            return wanted.empty_table()
        only = None
        if image_keys is not None:
            if "image_key" not in columns:
                raise ValueError("reading rows by image key needs the image_key column")
            only = ds.field("image_key").isin(
                pa.array(keys.as_signed(np.asarray(image_keys, dtype=np.uint64)))
            )
        parts = [
            ds.dataset(paths, schema=wanted, format="parquet", filesystem=filesystem).to_table(filter=only)
            for filesystem, paths in _by_file_system(arrow_io(table.io), files)
        ]
        return pa.concat_tables(parts) if len(parts) > 1 else parts[0]

    def data_files(self, days: Iterable[str] | None = None) -> list[DataFile]:
        """Return the data files of the current snapshot (only those of ``days`` when given)."""
        table = self.table()
        snapshot = table.current_snapshot()
        if snapshot is None:
            return []
        if self._files is None or self._files[0] != snapshot.snapshot_id:
            # One plan per snapshot: planning walks every manifest, so it is not repeated per day.
            planned: dict[str, list[DataFile]] = {}
            for task in table.scan().plan_files():
                planned.setdefault(_partition_day(task.file), []).append(task.file)
            self._files = (snapshot.snapshot_id, planned)
        planned = self._files[1]
        wanted = planned.keys() if days is None else set(days)
        return [f for day in sorted(wanted) for f in planned.get(day, [])]

    # ------------------------------------------------------------ versions

    def versions(self) -> list[Version]:
        """Return every version still kept (tagged), oldest first."""
        table = self.table()
        found = []
        for name, ref in table.refs().items():
            if ref.snapshot_ref_type == "tag" and name != PUBLISHED_TAG:
                snapshot = table.snapshot_by_id(ref.snapshot_id)
                if snapshot is not None:
                    found.append(Version(name, ref.snapshot_id, snapshot.timestamp_ms))
        # Build order (two versions can share a second, and so a name prefix).
        return sorted(found, key=lambda v: (v.timestamp_ms, v.name))

    def published(self) -> Version | None:
        """Return the published version (the ``published`` tag), or None before the first one."""
        table = self.table()
        ref = table.refs().get(PUBLISHED_TAG)
        if ref is None:
            return None
        same = [v for v in self.versions() if v.snapshot_id == ref.snapshot_id]
        if same:
            return same[-1]
        snapshot = table.snapshot_by_id(ref.snapshot_id)
        return Version(PUBLISHED_TAG, ref.snapshot_id, snapshot.timestamp_ms if snapshot else 0)

    def head_version(self) -> Version | None:
        """Return the version of the current snapshot (the newest build), or None."""
        snapshot = self.table().current_snapshot()
        if snapshot is None:
            return None
        same = [v for v in self.versions() if v.snapshot_id == snapshot.snapshot_id]
        return same[-1] if same else None

    def published_log(self) -> list[str]:
        """Return the versions that were ever published and are still kept, oldest first."""
        return list(self.property_json(PUBLISHED_LOG_PROPERTY, []))

    def resolve(self, version: str | int | None = None) -> Version:
        """Return the version asked for: None/``latest``/``published``, a version id, or a snapshot id.

        :raises VersionExpired: the version was expired by the retention policy.
        :raises ManifestNotFound: nothing is published yet, or there never was such a version.
        """
        if version is None or version in ("latest", PUBLISHED_TAG):
            published = self.published() if self.exists() else None
            if published is None:
                raise ManifestNotFound(
                    f"no manifest published yet in {self.identifier} "
                    "(the Dagster sensor builds one after the first processed image)"
                )
            return published
        kept = self.versions() if self.exists() else []
        text = str(version)
        for candidate in kept:
            if candidate.name == text:
                return candidate
        table = self.table() if self.exists() else None
        if text.isdigit() and table is not None:
            snapshot = table.snapshot_by_id(int(text))
            if snapshot is not None:
                return Version(text, snapshot.snapshot_id, snapshot.timestamp_ms)
        hint = f"; kept versions: {', '.join(v.name for v in kept[-5:])}" if kept else ""
        # Compare build times only: two versions built in one second differ in their hash part alone.
        if kept and is_version_id(text) and text[:16] <= kept[0].name[:16]:
            raise VersionExpired(
                f"no manifest version {text!r}: it is older than the oldest kept version ({kept[0].name}), "
                f"so the retention policy expired it (or it never existed){hint}"
            )
        if kept and text.isdigit():
            raise VersionExpired(
                f"snapshot {text} is not in {self.identifier}: expired or never written{hint}"
            )
        raise ManifestNotFound(f"no manifest version {text!r} in {self.identifier}{hint}")

    def read_arrow(
        self,
        version: str | int | None = None,
        *,
        columns: Sequence[str] | None = None,
        row_filter: Any = None,
    ) -> tuple[Version, pa.Table]:
        """Return (the version, its rows as Arrow): what every reader (pandas, polars, DuckDB) starts from.

        :param version: see :meth:`resolve`.
        :param columns: only these columns (default: all stored columns).
        :param row_filter: a pyiceberg expression or string filter.
        """
        from pyiceberg.expressions import AlwaysTrue

        resolved = self.resolve(version)
        scan = self.table().scan(
            snapshot_id=resolved.snapshot_id,
            selected_fields=tuple(columns) if columns else ("*",),
            row_filter=row_filter if row_filter is not None else AlwaysTrue(),
        )
        return resolved, scan.to_arrow()

    def read(
        self,
        version: str | int | None = None,
        *,
        columns: Sequence[str] | None = None,
        index_columns: bool = False,
    ) -> pd.DataFrame:
        """Return a version (default: the published one) as a DataFrame, its version in ``.attrs``.

        Rows come sorted by ``image_id``; ``dup_group_size`` is added when ``dup_group`` is read.

        :param version: see :meth:`resolve`.
        :param columns: only these stored columns.
        :param index_columns: keep the compact index columns (``image_key``, ...); dropped by default.
        """
        resolved, arrow = self.read_arrow(version, columns=columns)
        manifest = _to_pandas(arrow)
        if not index_columns:
            manifest = manifest.drop(columns=[c for c in INDEX_COLUMNS if c in manifest.columns])
        if "image_id" in manifest.columns:
            manifest = manifest.sort_values("image_id", kind="stable").reset_index(drop=True)
        if "dup_group" in manifest.columns and "image_id" in manifest.columns:
            manifest = with_group_sizes(manifest)
        manifest.attrs["version"] = resolved.name
        manifest.attrs["snapshot_id"] = resolved.snapshot_id
        return manifest

    # ------------------------------------------------------------ publishing

    def publish(self, version: str) -> bool:
        """Move the ``published`` tag to ``version`` unless a newer version is published; return moved.

        :raises ManifestNotFound: the version is not kept.
        """
        from pyiceberg.exceptions import CommitFailedException

        for _ in range(5):
            target = self.resolve(version)
            current = self.published() if self.table().refs().get(PUBLISHED_TAG) else None
            if current is not None and (current.timestamp_ms, current.name) > (
                target.timestamp_ms,
                target.name,
            ):
                return False
            log = [v for v in self.published_log() if v != target.name] + [target.name]
            table = self.table()
            try:
                with table.transaction() as tx:
                    from pyiceberg.table.update.snapshot import ManageSnapshots

                    manage = ManageSnapshots(tx)
                    if PUBLISHED_TAG in table.refs():
                        manage.remove_tag(PUBLISHED_TAG)
                    manage.create_tag(target.snapshot_id, PUBLISHED_TAG)
                    manage.commit()
                    tx.set_properties({PUBLISHED_LOG_PROPERTY: json.dumps(log)})
            except CommitFailedException:
                self.refresh()
                continue
            self.refresh()
            return True
        raise RuntimeError(f"could not publish {version}: the table kept changing under five attempts")


def _by_file_system(io: PyArrowFileIO, files: Sequence[DataFile]) -> list[tuple[Any, list[str]]]:
    """Return (file system, paths) for runs of consecutive files on one file system, in file order
    (so rows read run by run come back in the files' order)."""
    runs: list[tuple[tuple[str, str], list[str]]] = []
    for data_file in files:
        scheme, netloc, path = io.parse_location(data_file.file_path, io.properties)
        if not runs or runs[-1][0] != (scheme, netloc):
            runs.append(((scheme, netloc), []))
        runs[-1][1].append(path)
    return [(io.fs_by_scheme(scheme, netloc), paths) for (scheme, netloc), paths in runs]


def _batches(files: Sequence[DataFile], rows: int) -> Iterator[list[DataFile]]:
    """Yield consecutive runs of files holding about ``rows`` rows each (at least one file each)."""
    batch: list[DataFile] = []
    held = 0
    for data_file in files:
        if batch and held + int(data_file.record_count) > rows:
            yield batch
            batch, held = [], 0
        batch.append(data_file)
        held += int(data_file.record_count)
    if batch:
        yield batch


def _partition_day(data_file: DataFile) -> str:
    value = data_file.partition[0]
    return value.isoformat() if isinstance(value, dt.date) else day_name(int(value))


def arrow_io(io: FileIO) -> PyArrowFileIO:
    """Return the table's file IO as the pyarrow one, whose filesystems the fast readers use."""
    from pyiceberg.io.pyarrow import PyArrowFileIO

    if not isinstance(io, PyArrowFileIO):
        raise TypeError(f"reading the table's files needs pyiceberg's PyArrowFileIO, not {type(io).__name__}")
    return io


def latest_metadata_file(catalog: Catalog, location: str) -> str | None:
    """Return the newest ``metadata/NNNNN-*.metadata.json`` under a table location, or None."""
    from pyarrow import fs as pafs
    from pyiceberg.io import load_file_io
    from pyiceberg.io.pyarrow import PyArrowFileIO

    io = load_file_io(catalog.properties, location)
    if not isinstance(io, PyArrowFileIO):
        return None
    scheme, netloc, path = io.parse_location(location, io.properties)
    selector = pafs.FileSelector(f"{path.rstrip('/')}/metadata", allow_not_found=True)
    names = [
        info.path
        for info in io.fs_by_scheme(scheme, netloc).get_file_info(selector)
        if info.path.endswith(".metadata.json") and re.match(r"^\d+-", info.path.rsplit("/", 1)[-1])
    ]
    if not names:
        return None
    newest = max(names, key=lambda p: int(p.rsplit("/", 1)[-1].split("-", 1)[0]))
    return f"{scheme}://{newest}" if scheme != "file" else f"file://{newest}"


def pandas_metadata(arrow: pa.Table) -> dict[bytes, bytes]:
    """Return the ``pandas`` schema metadata that makes ``pd.read_parquet`` of ``arrow`` give the
    dtypes :meth:`ManifestTable.read` gives (nullable integers, not float64 where a value is null)."""
    return pa.Schema.from_pandas(_to_pandas(arrow.slice(0, 0)), preserve_index=False).metadata or {}


def _to_pandas(arrow: pa.Table) -> pd.DataFrame:
    """Return an Arrow manifest as pandas with nullable integers and plain lists (what readers expect)."""
    frame = arrow.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get)
    for name in ("brightness", "blur_score"):
        if name in frame.columns:
            frame[name] = frame[name].astype("float64")
    return frame
