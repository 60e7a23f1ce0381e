"""Retention: expire the versions the policy does not keep, then delete the files nothing references.

pyiceberg's snapshot expiry rewrites metadata only and deletes no file, so the second half is
ours: every file under the table's location that no kept snapshot (its manifest list, manifests and
live data files) and no kept metadata file references, and that is older than the policy's
``min_file_age_s`` (a commit in flight writes files before it references them), is deleted.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass, field

from image_etl.dataset.rules import RetentionPolicy
from image_etl.dataset.table import PUBLISHED_LOG_PROPERTY, ManifestTable, Version, arrow_io

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetentionResult:
    """What one retention run kept, expired and deleted."""

    kept_versions: list[str]
    expired_versions: list[str]
    expired_snapshots: int
    deleted_files: list[str] = field(default_factory=list)
    deleted_bytes: int = 0
    #: Bytes under the table's location after the run (data and metadata).
    table_bytes: int = 0


def versions_to_keep(
    versions: list[Version],
    *,
    published: Version | None,
    published_log: list[str],
    head_snapshot: int | None,
    policy: RetentionPolicy,
    now: dt.datetime,
) -> set[str]:
    """Return the names of the versions the policy keeps.

    Kept: published versions built within ``keep_days``, the ``keep_last`` newest published ones,
    the published version itself, every version newer than it (builds still being checked), and the
    version of the current snapshot.

    :param versions: every tagged version, oldest first.
    :param published: the version the ``published`` tag names.
    :param published_log: the versions that were ever published.
    :param head_snapshot: the table's current snapshot id.
    :param policy: the retention policy.
    :param now: the time "the last N days" counts back from.
    """
    ever_published = [v for v in versions if v.name in set(published_log)]
    horizon = now - dt.timedelta(days=policy.keep_days)
    keep = {v.name for v in ever_published if v.built_at >= horizon}
    keep |= {
        v.name for v in sorted(ever_published, key=lambda v: (v.timestamp_ms, v.name))[-policy.keep_last :]
    }
    if published is not None:
        keep.add(published.name)
        keep |= {
            v.name for v in versions if (v.timestamp_ms, v.name) > (published.timestamp_ms, published.name)
        }
    else:
        keep |= {v.name for v in versions}
    keep |= {v.name for v in versions if v.snapshot_id == head_snapshot}
    return keep


def apply_retention(
    mt: ManifestTable, policy: RetentionPolicy | None = None, *, now: dt.datetime | None = None
) -> RetentionResult:
    """Return what was done: expire the versions (tags and snapshots) the policy drops, then delete
    every file under the table's location that nothing kept references.

    :param mt: the manifest table.
    :param policy: what to keep (default :class:`RetentionPolicy`).
    :param now: the run's time (default now): the age of versions and files counts from it.
    """
    from pyiceberg.table.update.snapshot import ExpireSnapshots, ManageSnapshots

    policy = policy or RetentionPolicy()
    now = now or dt.datetime.now(dt.UTC)
    table = mt.refresh()
    versions = mt.versions()
    published = mt.published()
    head = table.current_snapshot()
    keep = versions_to_keep(
        versions,
        published=published,
        published_log=mt.published_log(),
        head_snapshot=head.snapshot_id if head else None,
        policy=policy,
        now=now,
    )
    expired_versions = [v.name for v in versions if v.name not in keep]
    kept_snapshots = {v.snapshot_id for v in versions if v.name in keep}
    if head is not None:
        kept_snapshots.add(head.snapshot_id)
    if published is not None:
        kept_snapshots.add(published.snapshot_id)
    expired_snapshots = [s.snapshot_id for s in table.snapshots() if s.snapshot_id not in kept_snapshots]
    if expired_versions or expired_snapshots:
        with table.transaction() as tx:
            if expired_versions:
                manage = ManageSnapshots(tx)
                for name in expired_versions:
                    manage.remove_tag(name)
                manage.commit()
            if expired_snapshots:
                ExpireSnapshots(tx).by_ids(expired_snapshots).commit()
            tx.set_properties(
                {PUBLISHED_LOG_PROPERTY: json.dumps([v for v in mt.published_log() if v in keep])}
            )
        table = mt.refresh()
    deleted, deleted_bytes, remaining = delete_unreferenced_files(
        mt, min_age_s=policy.min_file_age_s, now=now
    )
    return RetentionResult(
        kept_versions=sorted(keep),
        expired_versions=expired_versions,
        expired_snapshots=len(expired_snapshots),
        deleted_files=deleted,
        deleted_bytes=deleted_bytes,
        table_bytes=remaining,
    )


def referenced_files(mt: ManifestTable) -> set[str]:
    """Return every file a kept snapshot or kept metadata file of the table references (full URIs)."""
    table = mt.table()
    io = table.io
    refs: set[str] = {table.metadata_location}
    refs |= {entry.metadata_file for entry in table.metadata.metadata_log}
    for snapshot in table.snapshots():
        refs.add(snapshot.manifest_list)
        for manifest in snapshot.manifests(io):
            refs.add(manifest.manifest_path)
            for entry in manifest.fetch_manifest_entry(io, discard_deleted=True):
                refs.add(entry.data_file.file_path)
    for statistics in table.metadata.statistics:
        refs.add(statistics.statistics_path)
    return refs


def table_files(mt: ManifestTable) -> list[tuple[str, int, dt.datetime | None]]:
    """Return (URI, bytes, modified) of every file under the table's location."""
    from pyarrow import fs as pafs

    table = mt.table()
    io = arrow_io(table.io)
    scheme, netloc, path = io.parse_location(table.location(), io.properties)
    filesystem = io.fs_by_scheme(scheme, netloc)
    selector = pafs.FileSelector(path.rstrip("/"), recursive=True, allow_not_found=True)
    prefix = f"{scheme}://" if scheme != "file" else "file://"
    found = []
    for info in filesystem.get_file_info(selector):
        if info.type == pafs.FileType.File:
            modified = info.mtime
            if modified is not None and modified.tzinfo is None:
                modified = modified.replace(tzinfo=dt.UTC)
            found.append((f"{prefix}{info.path}", int(info.size or 0), modified))
    return found


def _same_file(uri: str) -> str:
    # Local paths come back from listings as file:///a/b and from metadata as file:/a/b or /a/b.
    for start in ("file://", "file:"):
        if uri.startswith(start):
            return "/" + uri[len(start) :].lstrip("/")
    return uri


def delete_unreferenced_files(
    mt: ManifestTable, *, min_age_s: float, now: dt.datetime | None = None
) -> tuple[list[str], int, int]:
    """Delete files under the table's location that nothing kept references and that are old enough.

    :param mt: the manifest table.
    :param min_age_s: files modified less than this many seconds ago are left alone.
    :param now: the time ages count from.
    :return: (deleted URIs, bytes deleted, bytes remaining).
    """
    now = now or dt.datetime.now(dt.UTC)
    keep = {_same_file(uri) for uri in referenced_files(mt)}
    io = mt.table().io
    deleted: list[str] = []
    deleted_bytes = 0
    remaining = 0
    for uri, size, modified in table_files(mt):
        young = modified is not None and (now - modified).total_seconds() < min_age_s
        if _same_file(uri) in keep or young:
            remaining += size
            continue
        io.delete(uri)
        deleted.append(uri)
        deleted_bytes += size
    if deleted:
        log.info("deleted %d unreferenced files (%d bytes)", len(deleted), deleted_bytes)
    return sorted(deleted), deleted_bytes, remaining
