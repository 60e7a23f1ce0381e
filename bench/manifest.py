"""Benchmark the dataset manifest table: an incremental run of K new records on an N-image table
(with exact and near duplicates of images on old days) beside a full rebuild of the same data, the
initial full build, and retention after many small runs.

    .venv/bin/python bench/manifest.py --json --images N --new K [--emulator] [--retention-runs 100]

Every measured step runs in a fresh child process pinned to one core; peak memory is the child's
VmHWM. The table lives on a local-filesystem warehouse (SQLite catalog), or with ``--emulator`` in
a moto server's Glue and S3 (the same GlueCatalog code as the local stack), records included.
``--sensor-tick`` adds the DynamoDB cost of one sensor tick (index Query vs Scan).

The incremental run is measured twice on the same table: first with an empty compact-index cache
(a new machine: every data file's index is read from the table), then, after rolling the table
back to the snapshot before it, again with the cache that first run left (what every later run
sees). ``--keep DIR --reuse`` starts from the records and initial build a previous ``--keep DIR``
run left (the 10M build takes most of an hour); ``--skip-full`` leaves out the baseline.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

_HEXCHARS = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
VARIANTS = ("large", "medium", "small", "thumb")
DAYS = 365
FIRST = np.datetime64("2025-01-01", "D")


def _hex(rng: np.random.Generator, n: int, nbytes: int) -> np.ndarray:
    """Return ``n`` random lowercase hex strings of ``2 * nbytes`` characters, without a Python loop."""
    raw = rng.integers(0, 256, size=(n, nbytes), dtype=np.uint8)
    chars = np.empty((n, 2 * nbytes), dtype=np.uint8)
    chars[:, 0::2] = _HEXCHARS[raw >> 4]
    chars[:, 1::2] = _HEXCHARS[raw & 15]
    return chars.view(f"S{2 * nbytes}").ravel().astype(f"U{2 * nbytes}")


def _u64_hex(values: np.ndarray) -> np.ndarray:
    """Return uint64 values as 16 hex characters each, vectorized."""
    raw = values.astype(">u8").view(np.uint8).reshape(-1, 8)
    chars = np.empty((len(values), 16), dtype=np.uint8)
    chars[:, 0::2] = _HEXCHARS[raw >> 4]
    chars[:, 1::2] = _HEXCHARS[raw & 15]
    return chars.view("S16").ravel().astype("U16")


def _mix(values: np.ndarray, salt: int) -> np.ndarray:
    """splitmix64 of ``values + salt``: a stable pseudo-random uint64 per index (vectorized)."""
    z = values.astype(np.uint64) + np.uint64(salt * 0x9E3779B97F4A7C15 % 2**64)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _sha(content: np.ndarray) -> np.ndarray:
    parts = [_u64_hex(_mix(content, salt)) for salt in (11, 12, 13, 14)]
    return np.char.add(np.char.add(parts[0], parts[1]), np.char.add(parts[2], parts[3]))


class Corpus:
    """Synthetic records: 10 labels, 2% failed, 5% exact and 5% near duplicates (1-4 pHash bits
    flipped) of earlier images, day by day. Identity is arithmetic on an image index, so any image's
    hashes can be recomputed without keeping them. A copy has its original's label (5% of copies
    another one: label conflicts); an exact copy its size, a near copy its size scaled by 0.25-1
    (a re-encoded, resized copy), so a new copy rarely takes ``keep`` over."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.phash = np.empty(0, dtype=np.uint64)  # every image's pHash (for near copies of copies)
        self.content = np.empty(0, dtype=np.int64)  # index of the original bytes (exact copies share it)
        self.label = np.empty(0, dtype=np.int64)
        self.width = np.empty(0, dtype=np.int64)
        self.height = np.empty(0, dtype=np.int64)

    def day(self, day: int, n: int, *, dup_share: float = 0.05) -> pa.Table:
        rng = self.rng
        start = len(self.phash)
        index = np.arange(start, start + n, dtype=np.int64)
        content = index.copy()
        phash = _mix(index, 3)
        kind = rng.random(n)
        label = rng.integers(0, 10, size=n)
        width, height = rng.integers(16, 4000, size=n), rng.integers(16, 4000, size=n)
        if start:
            source = rng.integers(0, start, size=n)
            exact = kind < dup_share
            near = (kind >= dup_share) & (kind < 2 * dup_share)
            content[exact] = self.content[source[exact]]
            phash[exact] = self.phash[source[exact]]
            flips = np.zeros(n, dtype=np.uint64)
            for _ in range(4):
                bit = rng.integers(0, 64, size=n).astype(np.uint64)
                flips |= np.where(rng.random(n) < 0.7, np.uint64(1) << bit, np.uint64(0))
            phash[near] = self.phash[source[near]] ^ flips[near]
            copy = exact | near
            agree = copy & (rng.random(n) >= 0.05)
            label[agree] = self.label[source[agree]]
            scale = np.where(exact, 1.0, rng.uniform(0.25, 1.0, size=n))
            width[copy] = np.maximum(1, (self.width[source[copy]] * scale[copy]).astype(np.int64))
            height[copy] = np.maximum(1, (self.height[source[copy]] * scale[copy]).astype(np.int64))
        self.phash = np.concatenate([self.phash, phash])
        self.content = np.concatenate([self.content, content])
        self.label = np.concatenate([self.label, label])
        self.width = np.concatenate([self.width, width])
        self.height = np.concatenate([self.height, height])
        image_id = np.char.add(_u64_hex(_mix(index, 1)), _u64_hex(_mix(index, 2)))
        failed = rng.random(n) < 0.02
        moment = (FIRST + np.timedelta64(day, "D")).astype("datetime64[us]")
        uploaded = moment + rng.integers(0, 86_400 * 10**6, size=n).astype("timedelta64[us]")
        processed = uploaded + rng.integers(10**5, 10**7, size=n).astype("timedelta64[us]")
        stamp = lambda t: np.char.add(np.datetime_as_string(t, unit="us"), "Z")  # noqa: E731
        ok = ~failed
        columns: dict[str, Any] = {
            "image_id": image_id,
            "status": np.where(failed, "failed", "processed"),
            "error_code": pa.array(np.where(failed, "corrupt", ""), pa.string()),
            "source_bucket": np.full(n, "image-etl-uploads"),
            "source_key": np.char.add("uploads/x/", image_id),
            "source_bytes": rng.integers(1000, 5_000_000, size=n).astype("float64"),
            "label": np.asarray([f"class_{i}" for i in range(10)])[label],
            "width": pa.array(width.astype("float64"), mask=failed),
            "height": pa.array(height.astype("float64"), mask=failed),
            "format": np.full(n, "JPEG"),
            "sha256": pa.array(_sha(content), mask=failed),
            "phash": pa.array(_u64_hex(phash), mask=failed),
            "brightness": pa.array(rng.random(n), mask=failed),
            "blur_score": pa.array(rng.gamma(16.0, 0.15, size=n), mask=failed),
            "uploaded_at": stamp(uploaded),
            "processed_at": stamp(processed),
        }
        for name in VARIANTS:
            columns[f"variant_{name}_key"] = pa.array(
                np.char.add(np.char.add("variants/", image_id), f"/{name}.jpg"), mask=~ok
            )
        table = pa.table({k: pa.array(v) if not isinstance(v, pa.Array) else v for k, v in columns.items()})
        error_code = pa.compute.if_else(pa.array(failed), table["error_code"], pa.nulls(n, pa.string()))
        return table.set_column(table.schema.get_field_index("error_code"), "error_code", error_code)


def day_name(day: int) -> str:
    return str(FIRST + np.timedelta64(day, "D"))


# ---------------------------------------------------------------- where records and the table live


def _target(spec: dict[str, Any]) -> tuple[Any, Any, Any]:
    """Return (manifest table, load_day(day) -> frame, write_day(day, arrow)) for a bench spec."""
    import pandas as pd

    from image_etl.dataset.records import normalize_records
    from image_etl.dataset.table import ManifestTable, glue_catalog, local_catalog

    if spec.get("endpoint"):
        import boto3

        s3 = boto3.client("s3", endpoint_url=spec["endpoint"], region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip
        catalog = glue_catalog(region="us-east-1", endpoint_url=spec["endpoint"], local_credentials=True)
        table = ManifestTable(
            catalog,
            "image_etl",
            location="s3://bench-datasets/datasets/iceberg/manifest",
            index_cache=_index_cache(spec),
        )

        def load_day(day: str) -> pd.DataFrame:
            body = s3.get_object(Bucket="bench-datasets", Key=f"records/upload_day={day}/records.parquet")[
                "Body"
            ]
            return normalize_records(pq.read_table(pa.BufferReader(body.read())).to_pandas())

        def write_day(day: str, arrow: pa.Table) -> None:
            sink = pa.BufferOutputStream()
            pq.write_table(arrow, sink, compression="zstd")
            s3.put_object(Bucket="bench-datasets", Key=f"records/upload_day={day}/records.parquet",
                          Body=sink.getvalue().to_pybytes())  # fmt: skip

        return table, load_day, write_day
    root = Path(spec["root"])
    table = ManifestTable(local_catalog(root / "warehouse"), "image_etl", index_cache=_index_cache(spec))

    def load_day(day: str) -> pd.DataFrame:
        return normalize_records(pq.read_table(root / "records" / f"{day}.parquet").to_pandas())

    def write_day(day: str, arrow: pa.Table) -> None:
        (root / "records").mkdir(parents=True, exist_ok=True)
        pq.write_table(arrow, root / "records" / f"{day}.parquet", compression="zstd")

    return table, load_day, write_day


def _index_cache(spec: dict[str, Any]) -> Path | Literal[False]:
    """Return the bench's own index cache folder (False: no cache)."""
    return Path(spec["index_cache"]) if spec.get("index_cache") else False


def _peak_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _table_bytes(table: Any) -> int:
    return sum(f.file_size_in_bytes for f in table.data_files())


def step(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    """Run one measured step in this (child) process; return its timings."""
    from image_etl.dataset.build import rebuild_manifest, update_manifest

    table, load_day, _ = _target(spec)
    days = spec["days"]
    profile = None
    if spec.get("profile") and name == "incremental":
        import cProfile

        profile = cProfile.Profile()
        profile.enable()
    started = time.perf_counter()
    if name == "full":
        result = rebuild_manifest(
            table, days, load_day, progress=lambda line: print(line, file=sys.stderr, flush=True)
        )
    elif name == "incremental":
        new_days = spec["new_days"]
        result = update_manifest(table, {d: load_day(d) for d in new_days})
    else:
        raise ValueError(name)
    seconds = time.perf_counter() - started
    if profile is not None:
        profile.disable()
        profile.dump_stats(spec["profile"])
    return {
        "seconds": round(seconds, 2),
        "peak_mb": round(_peak_mb(), 0),
        "bytes_written": result.bytes_written,
        "days_rewritten": len(result.days_rewritten),
        "files_written": result.files_written,
        "files_removed": result.files_removed,
        "rows": result.rows,
        "unchanged": result.unchanged,
        "table_bytes": _table_bytes(table),
        "version": result.version,
        # Files whose compact index the run read from the table (the rest came from the cache).
        "index_files_read": len(table.index_files_read),
        "index_files": len(table.data_files()),
        "load_avg": os.getloadavg()[0],
    }


def roll_back(spec: dict[str, Any], snapshot_id: int, version: str | None) -> None:
    """Make ``snapshot_id`` the table's current snapshot again and drop the tag of a measured run, so
    the next measured run starts from the same table (data files are immutable: nothing is rewritten)."""
    table, _, _ = _target(spec)
    manage = table.table().manage_snapshots().set_current_snapshot(snapshot_id)
    if version and version in table.table().refs():
        manage = manage.remove_tag(version)
    manage.commit()


def in_child(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    """Run :func:`step` in a fresh process on one core (BLAS/OMP threads off too)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    code = (
        f"import json, os, sys; os.sched_setaffinity(0, {{min(os.sched_getaffinity(0))}}); "
        f"sys.path.insert(0, {str(REPO)!r}); from bench.manifest import step; "
        f"print(json.dumps(step({name!r}, json.loads({json.dumps(json.dumps(spec))}))))"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def retention_runs(spec: dict[str, Any], runs: int, per_run: int) -> dict[str, Any]:
    """Grow a table by ``runs`` small published runs, apply the default policy; return the byte ratio."""
    from image_etl.dataset.build import rebuild_manifest, update_manifest
    from image_etl.dataset.retention import table_files
    from image_etl.dataset.rules import RetentionPolicy

    table, load_day, write_day = _target(spec)
    corpus = Corpus(seed=7)
    days = []
    for day in range(30):
        write_day(day_name(day), corpus.day(day, spec["images"] // 30))
        days.append(day_name(day))
    rebuild_manifest(table, days, load_day)
    for run in range(runs):
        day = day_name(30 + run // 10)
        frame = load_day(day) if run % 10 else None
        batch = corpus.day(30 + run // 10, per_run)
        merged = (
            batch
            if frame is None
            else pa.concat_tables(
                [
                    pa.Table.from_pandas(frame, preserve_index=False)
                    .select(batch.column_names)
                    .cast(batch.schema),
                    batch,
                ]
            )
        )
        write_day(day, merged)
        result = update_manifest(table, {day: load_day(day)})
        table.publish(result.version)
    before = sum(size for _, size, _ in table_files(table))
    # Today every run is inside the 30-day window (all kept); 60 days on, only the last 10 are.
    today = _retain(table, RetentionPolicy(min_file_age_s=0), None)
    later = _retain(table, RetentionPolicy(min_file_age_s=0), dt.datetime.now(dt.UTC) + dt.timedelta(days=60))
    return {"runs": runs, "images": spec["images"] + runs * per_run, "bytes_before_retention": before,
            "today": today, "60_days_later": later, "ratio": max(today["ratio"], later["ratio"])}  # fmt: skip


def _retain(table: Any, policy: Any, now: Any) -> dict[str, Any]:
    from image_etl.dataset.retention import apply_retention

    outcome = apply_retention(table, policy, now=now)
    current = {f.file_path: f.file_size_in_bytes for f in table.data_files()}
    kept_changes: dict[str, int] = {}
    for version in table.versions():
        for task in table.table().scan(snapshot_id=version.snapshot_id).plan_files():
            if task.file.file_path not in current:
                kept_changes[task.file.file_path] = task.file.file_size_in_bytes
    baseline = sum(current.values()) + sum(kept_changes.values())
    return {
        "kept_versions": len(table.versions()),
        "expired_versions": len(outcome.expired_versions),
        "deleted_files": len(outcome.deleted_files),
        "table_bytes": outcome.table_bytes,
        "one_version_bytes": sum(current.values()),
        "kept_changes_bytes": sum(kept_changes.values()),
        "ratio": round(outcome.table_bytes / baseline, 3),
    }


class Emulator:
    """A moto server in its own process (its memory is not the measured step's)."""

    def __init__(self) -> None:
        from tests.stack_process import free_port

        self.port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.endpoint = f"http://127.0.0.1:{self.port}"
        import boto3
        import requests

        for _ in range(100):
            try:
                requests.get(self.endpoint, timeout=1)
                break
            except requests.RequestException:
                time.sleep(0.2)
        keys = {
            "region_name": "us-east-1",
            "aws_access_key_id": "testing",
            "aws_secret_access_key": "testing",
        }
        boto3.client("s3", endpoint_url=self.endpoint, **keys).create_bucket(Bucket="bench-datasets")
        boto3.client("glue", endpoint_url=self.endpoint, **keys).create_database(
            DatabaseInput={"Name": "image_etl", "LocationUri": "s3://bench-datasets/datasets/iceberg/"}
        )

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def sensor_tick(table_size: int, new: int) -> dict[str, Any]:
    """Fill a moto table with ``table_size`` old records, add ``new`` ones, compare one tick with a Scan."""
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    from moto.server import ThreadedMotoServer

    from image_etl.local.provision import create_resources
    from image_etl.resource_shapes import LOCAL
    from image_etl.settings import local_settings
    from pipelines.resources import ImageRecordTable
    from pipelines.sensors import SensorCursor, read_new_records

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        port = server.get_host_and_port()[1]
        settings = local_settings(Path("/tmp/image-etl-bench"), aws_port=port)
        create_resources(settings, LOCAL)
        table = ImageRecordTable.from_settings(settings)
        # Old records over ~12 days, then a burst of new ones: the overlap window holds none of the old.
        old = _table_records(table_size, start="2025-05-01T00:00:00+00:00", step_s=10.0, seed=1)
        fill_started = time.perf_counter()
        _fill(settings.table_name, old)
        fill_s = time.perf_counter() - fill_started
        # The cursor a previous tick left: it saw the last old records (a tick a minute before the end).
        _, cursor, _ = read_new_records(table, SensorCursor(after=old[-7]["processed_at"]))
        fresh = _table_records(new, start="2025-06-02T00:00:00+00:00", step_s=0.01, seed=2)
        table.put_records(fresh)  # the new ones over HTTP, as the resizer writes them

        started = time.perf_counter()
        found, _, tick_read = read_new_records(table, SensorCursor.decode(cursor.encode()))  # as stored
        tick_s = time.perf_counter() - started
        started = time.perf_counter()
        scanned, scan_read = table.scan_processed_after(cursor.after)
        scan_s = time.perf_counter() - started
        if len(found) != new or len(scanned) != new:
            raise SystemExit(f"sensor found {len(found)}, scan found {len(scanned)}, expected {new}")
        return {
            "table_items": table_size + new,
            "new_records": new,
            "tick_items_read": tick_read,
            "scan_items_read": scan_read,
            "ratio": round(scan_read / max(tick_read, 1), 1),
            "tick_queries": table.index_shards,
            "tick_wall_s_on_moto": round(tick_s, 2),
            "scan_wall_s_on_moto": round(scan_s, 2),
            "fill_s": round(fill_s, 1),
        }
    finally:
        server.stop()


def _fill(table_name: str, records: list[dict[str, Any]]) -> None:
    """Put records straight into the in-process moto backend: 100k HTTP batch writes take many minutes."""
    from moto.backends import get_backend

    from image_etl.settings import DEFAULT_REGION, LOCAL_ACCOUNT_ID
    from lambda_resizer.records import to_item

    backend = get_backend("dynamodb")[LOCAL_ACCOUNT_ID][DEFAULT_REGION]
    for record in records:
        backend.put_item(table_name, to_item(record))


def _table_records(n: int, *, start: str, step_s: float, seed: int) -> list[dict[str, Any]]:
    """Return ``n`` minimal records processed ``step_s`` apart from ``start`` (uploaded a minute before)."""
    from datetime import datetime, timedelta

    from lambda_resizer.records import processed_shard, utc_timestamp

    rng = np.random.default_rng(seed)
    first = datetime.fromisoformat(start)
    records = []
    for i, image_id in enumerate(_hex(rng, n, 16)):
        processed = first + timedelta(seconds=i * step_s)
        records.append(
            {
                "image_id": str(image_id),
                "status": "processed",
                "label": "cats",
                "source_bucket": "image-etl-uploads",
                "source_key": f"uploads/cats/{image_id}.jpg",
                "uploaded_at": utc_timestamp(processed - timedelta(minutes=1)),
                "processed_at": utc_timestamp(processed),
                "processed_shard": processed_shard(str(image_id), 16),
                "width": 640,
                "height": 480,
            }
        )
    return records


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--images", type=int, default=100_000, help="images in the table before the run")
    parser.add_argument("--new", type=int, default=1_000, help="new records in the incremental run")
    parser.add_argument("--emulator", action="store_true", help="records and table in a moto server")
    parser.add_argument(
        "--retention-runs", type=int, default=100, help="small runs before retention (0: skip)"
    )
    parser.add_argument("--retention-images", type=int, default=100_000)
    parser.add_argument("--sensor-tick", action="store_true", help="also measure one sensor tick on moto")
    parser.add_argument("--keep", type=Path, help="keep the warehouse here (default: a temp dir)")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="with --keep: reuse the records and the initial build a previous run left there",
    )
    parser.add_argument("--skip-full", action="store_true", help="skip the full-rebuild baseline")
    parser.add_argument(
        "--profile", type=Path, help="write cProfiles of the incremental runs here (warm) and to PROFILE.cold"
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    say = (lambda line: print(line, file=sys.stderr, flush=True)) if args.json else print
    root = args.keep or Path(tempfile.mkdtemp(prefix="image-etl-bench-"))
    emulator = Emulator() if args.emulator else None
    cache = root / "index-cache"
    spec: dict[str, Any] = {
        "root": str(root),
        "endpoint": emulator.endpoint if emulator else None,
        "index_cache": str(cache),
    }
    saved = root / "initial.json"
    try:
        today = day_name(DAYS)
        if args.reuse and saved.exists():
            state = json.loads(saved.read_text())
            if (state["images"], state["new"]) != (args.images, args.new):
                raise SystemExit(f"{saved} holds {state['images']:,} + {state['new']:,} records, not these")
            initial, days = state["initial"], state["spec"]["days"]
            spec.update(days=days, new_days=[today])
            if "snapshot_id" not in state:  # a saved catalog from before snapshots were recorded
                shutil.copy2(root / "catalog-initial.db", root / "warehouse" / "catalog.db")
                state["snapshot_id"] = _target(spec)[0].table().current_snapshot().snapshot_id
                saved.write_text(json.dumps(state))
            roll_back(spec, state["snapshot_id"], None)
            say(f"reusing the records and the initial build in {root}")
        else:
            _, _, write_day = _target(spec)
            corpus = Corpus()
            started = time.perf_counter()
            per_day = args.images // DAYS
            days = []
            for day in range(DAYS):
                count = per_day + (1 if day < args.images - per_day * DAYS else 0)
                write_day(day_name(day), corpus.day(day, count))
                days.append(day_name(day))
            say(f"wrote {args.images:,} records in {DAYS} day files ({time.perf_counter() - started:.0f} s)")
            # The run's new records: uploaded today, with exact and near copies of images of old days.
            write_day(today, corpus.day(DAYS, args.new))
            spec.update(days=days, new_days=[today])
            initial = in_child("full", spec)
            say(f"initial full build of {args.images:,}: {initial['seconds']} s, "
                f"peak {initial['peak_mb']:.0f} MB")  # fmt: skip
            snapshot = _target(spec)[0].table().current_snapshot()
            state = {"spec": spec, "initial": initial, "images": args.images, "new": args.new,
                     "snapshot_id": snapshot.snapshot_id}  # fmt: skip
            if args.keep:
                saved.write_text(json.dumps(state))
        # A cold run first (no cache: a new machine, ephemeral compute), then the same run again on
        # the same table with the cache as the cold run left it: what every later run sees.
        shutil.rmtree(cache, ignore_errors=True)
        spec["profile"] = f"{args.profile}.cold" if args.profile else None
        cold = in_child("incremental", spec)
        say(f"incremental run of {args.new:,}, cold cache: {cold['seconds']} s, "
            f"peak {cold['peak_mb']:.0f} MB, "
            f"{cold['index_files_read']} of {cold['index_files']} files' index read")  # fmt: skip
        roll_back(spec, state["snapshot_id"], cold["version"])
        spec["profile"] = str(args.profile) if args.profile else None
        incremental = in_child("incremental", spec)
        spec["profile"] = None
        say(f"incremental run of {args.new:,}: {incremental['seconds']} s, "
            f"peak {incremental['peak_mb']:.0f} MB, "
            f"{incremental['bytes_written']:,} bytes written of {incremental['table_bytes']:,}, "
            f"{incremental['index_files_read']} of {incremental['index_files']} files' index read, "
            f"load average {incremental['load_avg']:.1f}")  # fmt: skip
        spec["days"] = [*days, today]
        full: dict[str, Any] = {"seconds": None, "peak_mb": None, "days_rewritten": None}
        if not args.skip_full:
            full = in_child("full", spec)
            say(f"full rebuild of the same data: {full['seconds']} s, peak {full['peak_mb']:.0f} MB, "
                f"{full['days_rewritten']} days differed from the incremental result")  # fmt: skip
        report: dict[str, Any] = {
            "images": args.images,
            "new": args.new,
            "warehouse": "emulator (moto Glue + S3)" if emulator else "local filesystem (SQLite catalog)",
            "incremental_s": incremental["seconds"],
            "incremental_peak_mb": incremental["peak_mb"],
            "incremental_load_avg": incremental["load_avg"],
            "incremental_index_files_read": incremental["index_files_read"],
            "incremental_cold_cache_s": cold["seconds"],
            "incremental_cold_cache_peak_mb": cold["peak_mb"],
            "incremental_cold_cache_load_avg": cold["load_avg"],
            "index_files": incremental["index_files"],
            "incremental_bytes_written": incremental["bytes_written"],
            "incremental_days_rewritten": incremental["days_rewritten"],
            "incremental_files_written": incremental["files_written"],
            "incremental_files_removed": incremental["files_removed"],
            "table_bytes": incremental["table_bytes"],
            "bytes_written_share": round(
                incremental["bytes_written"] / max(incremental["table_bytes"], 1), 5
            ),
            "full_rebuild_s": full["seconds"],
            "full_rebuild_peak_mb": full["peak_mb"],
            "full_rebuild_days_changed": full["days_rewritten"],
            "speedup_vs_full_rebuild": (
                round(full["seconds"] / max(incremental["seconds"], 1e-3), 1) if full["seconds"] else None
            ),
            "initial_build_s": initial["seconds"],
            "initial_build_peak_mb": initial["peak_mb"],
        }
        if args.retention_runs:
            kept = {"root": str(root / "retention"), "endpoint": None, "images": args.retention_images}
            report["retention"] = retention_runs(kept, args.retention_runs, 50)
            say(f"retention after {args.retention_runs} runs: {report['retention']['ratio']}x")
        if args.sensor_tick:
            report["sensor_tick"] = sensor_tick(100_000, 100)
    finally:
        if emulator:
            emulator.stop()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(report) if args.json else json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
