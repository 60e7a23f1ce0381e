"""Benchmark the dataset manifest: build time and peak memory on 10k..1M synthetic records, and one
sensor tick (100 new records among 100k) read through the `by_processed_at` index against a full Scan.

    .venv/bin/python bench/manifest.py [--json] [--sizes 10000,100000,1000000] [--table-size 100000]

Each manifest size runs in its own child process pinned to one core, so peak RSS is that build's
alone. The sensor part runs against an in-process moto server; moto walks every item for a GSI
Query, so its wall time means nothing: the cost compared is DynamoDB's, the items read.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipelines.manifest import ManifestConfig, build_manifest, to_parquet_bytes  # noqa: E402

_HEXCHARS = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
VARIANTS = ("large", "medium", "small", "thumb")


def _hex(rng: np.random.Generator, n: int, nbytes: int) -> np.ndarray:
    """Return ``n`` random lowercase hex strings of ``2 * nbytes`` characters, without a Python loop."""
    raw = rng.integers(0, 256, size=(n, nbytes), dtype=np.uint8)
    chars = np.empty((n, 2 * nbytes), dtype=np.uint8)
    chars[:, 0::2] = _HEXCHARS[raw >> 4]
    chars[:, 1::2] = _HEXCHARS[raw & 15]
    return chars.view(f"S{2 * nbytes}").ravel().astype(f"U{2 * nbytes}")


def _timestamps(moments: np.ndarray) -> np.ndarray:
    return np.char.add(np.datetime_as_string(moments.astype("datetime64[us]"), unit="us"), "Z")


def synthetic_records(n: int, *, seed: int = 0) -> pd.DataFrame:
    """Return ``n`` records shaped like the daily record files: 10 labels, 2% failed, 5% exact and
    5% near duplicates (1-4 pHash bits flipped) of earlier images, uploads spread over a year.
    """
    rng = np.random.default_rng(seed)
    image_id = _hex(rng, n, 16)
    sha256 = _hex(rng, n, 32)
    phash = rng.integers(0, 2**63, size=n, dtype=np.int64).astype(np.uint64) << np.uint64(1)
    phash |= rng.integers(0, 2, size=n, dtype=np.uint64)
    kind = rng.random(n)
    source = rng.integers(0, max(1, n // 2), size=n)
    exact = kind < 0.05
    near = (kind >= 0.05) & (kind < 0.10)
    sha256[exact] = sha256[source[exact]]
    phash[exact] = phash[source[exact]]
    flips = np.zeros(n, dtype=np.uint64)
    for _ in range(4):
        bit = rng.integers(0, 64, size=n).astype(np.uint64)
        flips |= np.where(rng.random(n) < 0.7, np.uint64(1) << bit, np.uint64(0))
    phash[near] = phash[source[near]] ^ flips[near]
    failed = rng.random(n) < 0.02
    start = np.datetime64("2025-01-01T00:00:00", "us")
    uploaded = start + rng.integers(0, 365 * 86400 * 10**6, size=n).astype("timedelta64[us]")
    processed = uploaded + rng.integers(10**5, 10**7, size=n).astype("timedelta64[us]")
    width = rng.integers(16, 4000, size=n).astype("float64")
    height = rng.integers(16, 4000, size=n).astype("float64")
    phash_hex = _u64_hex(phash)
    frame = pd.DataFrame(
        {
            "image_id": image_id,
            "status": np.where(failed, "failed", "processed"),
            "error_code": np.where(failed, "corrupt", None),
            "source_bucket": "image-etl-uploads",
            "source_key": np.char.add("uploads/x/", image_id),
            "source_bytes": rng.integers(1000, 5_000_000, size=n).astype("float64"),
            "label": np.asarray([f"class_{i}" for i in range(10)], dtype=object)[rng.integers(0, 10, size=n)],
            "width": np.where(failed, np.nan, width),
            "height": np.where(failed, np.nan, height),
            "format": "JPEG",
            "sha256": np.where(failed, None, sha256),
            "phash": np.where(failed, None, phash_hex),
            "brightness": np.where(failed, np.nan, rng.random(n)),
            "blur_score": np.where(failed, np.nan, rng.gamma(2.0, 300.0, size=n)),
            "uploaded_at": _timestamps(uploaded),
            "processed_at": _timestamps(processed),
        }
    )
    for name in VARIANTS:
        keys = np.char.add(np.char.add("variants/", image_id), f"/{name}.jpg")
        frame[f"variant_{name}_key"] = np.where(failed, None, keys)
    return frame


def _u64_hex(values: np.ndarray) -> np.ndarray:
    """Return uint64 values as 16 hex characters each, vectorized."""
    raw = values.astype(">u8").view(np.uint8).reshape(-1, 8)
    chars = np.empty((len(values), 16), dtype=np.uint8)
    chars[:, 0::2] = _HEXCHARS[raw >> 4]
    chars[:, 1::2] = _HEXCHARS[raw & 15]
    return chars.view("S16").ravel().astype("U16")


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build_once(n: int) -> dict[str, Any]:
    """Generate ``n`` records, build the manifest once; return timings and peak RSS of this process."""
    records = synthetic_records(n)
    rss_before = _peak_rss_mb()
    started = time.perf_counter()
    manifest = build_manifest(records, config=ManifestConfig())
    seconds = time.perf_counter() - started
    started = time.perf_counter()
    size = len(to_parquet_bytes(manifest))
    parquet_s = time.perf_counter() - started
    groups = manifest["dup_group_size"]
    return {
        "records": n,
        "seconds": round(seconds, 2),
        "parquet_s": round(parquet_s, 2),
        "parquet_mb": round(size / 2**20, 1),
        "peak_rss_mb": round(_peak_rss_mb(), 0),
        "input_rss_mb": round(rss_before, 0),
        "rows": len(manifest),
        "in_dup_groups": int((groups > 1).sum()),
    }


def build_in_child(n: int) -> dict[str, Any]:
    """Run :func:`build_once` in a fresh process on one core (OpenBLAS/OMP threads off too)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    code = (
        f"import json, os, sys; os.sched_setaffinity(0, {{0}}); sys.path.insert(0, {str(REPO)!r}); "
        f"from bench.manifest import build_once; print(json.dumps(build_once({n})))"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def sensor_tick(table_size: int, new: int) -> dict[str, Any]:
    """Fill a moto table with ``table_size`` old records, add ``new`` ones, compare one tick with a Scan."""
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    from moto.server import ThreadedMotoServer

    from image_etl.local.provision import create_resources
    from image_etl.resources import LOCAL
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
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--table-size", type=int, default=100_000)
    parser.add_argument("--new", type=int, default=100)
    args = parser.parse_args(argv)
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # the targets are for one core
    sizes = [int(s) for s in args.sizes.split(",") if s]
    builds = []
    for n in sizes:
        result = build_in_child(n)
        builds.append(result)
        if not args.json:
            print(
                f"manifest {n:>9,} records: {result['seconds']:6.2f} s "
                f"(+{result['parquet_s']:.2f} s parquet), "
                f"peak RSS {result['peak_rss_mb']:6.0f} MB, "
                f"{result['rows']:,} rows, {result['in_dup_groups']:,} in duplicate groups",
                flush=True,
            )
    growth = [
        round((b["seconds"] / a["seconds"]) / (b["records"] / a["records"]), 2)
        for a, b in itertools.pairwise(builds)
    ]
    tick = sensor_tick(args.table_size, args.new)
    report = {"manifest": builds, "time_growth_per_record_ratio": growth, "sensor_tick": tick}
    if args.json:
        print(json.dumps(report))
    else:
        print(f"time per record, relative to the previous size (1.0 = linear): {growth}")
        print(
            f"sensor tick: {tick['tick_items_read']} items read ({tick['tick_queries']} index Queries) vs "
            f"full Scan {tick['scan_items_read']} items: {tick['ratio']}x cheaper "
            f"({tick['new_records']} new among {tick['table_items']:,})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
