"""Benchmark the local stack as a user with a real dataset meets it: N photos in, kill -9, restart.

    .venv/bin/python bench/local_stack.py [--photos 2000] [--corpus DIR] [--workers 2] [--concurrency 8]

N copies of the corpus photos under distinct keys are uploaded with 8 concurrent PUTs into a fresh
`image-etl up` (no Dagster) and drained by its workers, in two halves:

1. the first half is uploaded and drained (the rate of the first half);
2. the second half is uploaded; when a tenth of it is acknowledged the whole stack is killed with
   SIGKILL mid-burst, restarted (``restart_mid_burst_ready_s``: spawn to "local stack is up"), the
   uploads that were not acknowledged are sent again (as a user re-running the CLI would), and all
   of it is drained (the rate of the last half);
3. the stack is killed once more, idle, with all N photos stored, and restarted
   (``restart_ready_s``).

Before the stack starts, the resize core's own single-process rate is measured on the same photos
(``core_photos_per_s``): the stack's rate is judged against it. ``lost`` counts acknowledged uploads
without a record or whose object is gone after the restarts. ``emulator_rss_growth_ratio`` is the
emulator's RSS growth (holding all N photos after the restarts, against the empty stack) over the
bytes stored; ``disk_bytes_ratio`` the data dir's size over the bytes stored. Progress goes to
stderr, one JSON line to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


from image_etl.cli import console, progress_bar  # noqa: E402
from image_etl.local.usage import data_dir_usage  # noqa: E402
from image_etl.settings import load_settings  # noqa: E402
from image_etl.upload import PlannedUpload, upload_all, wait_for_records  # noqa: E402
from lambda_resizer.core import process_image  # noqa: E402

DEFAULT_CORPUS = ROOT / ".." / "shared" / "bench-corpus" / "photos"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Stack:
    """`image-etl up --no-dagster` in its own process group, its log in a file."""

    def __init__(self, data_dir: Path, workers: int) -> None:
        self.data_dir, self.workers = data_dir, workers
        self.aws_port, self.site_port = free_port(), free_port()
        self.log = data_dir.parent / "up.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> float:
        """Start and return the seconds from spawn to "local stack is up"."""
        offset = self.log.stat().st_size if self.log.exists() else 0
        began = time.perf_counter()
        self.process = subprocess.Popen(
            [
                *(sys.executable, "-m", "image_etl.cli", "up", "--no-dagster"),
                *("--data-dir", str(self.data_dir), "--workers", str(self.workers)),
                *("--aws-port", str(self.aws_port), "--site-port", str(self.site_port)),
            ],
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        while "local stack is up" not in self.log.read_bytes()[offset:].decode(errors="replace"):
            if self.process.poll() is not None:
                raise SystemExit(f"image-etl up exited:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.05)
        return time.perf_counter() - began

    def kill(self) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=60)

    def pids(self, module: str) -> list[int]:
        found = subprocess.run(
            ["pgrep", "-f", f"image_etl.local.{module} --data-dir {self.data_dir}"],
            capture_output=True,
            text=True,
        ).stdout.split()
        return [int(pid) for pid in found]

    def cpu_seconds(self) -> dict[str, float]:
        """CPU seconds used so far by the emulator, the workers (together) and this process."""
        ticks = os.sysconf("SC_CLK_TCK")

        def of(pid: int) -> float:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / ticks

        own = os.times()
        return {
            "emulator": sum(of(pid) for pid in self.pids("emulator")),
            "workers": sum(of(pid) for pid in self.pids("worker")),
            "uploader": own.user + own.system,
        }

    def emulator_rss_bytes(self) -> int:
        status = Path(f"/proc/{self.pids('emulator')[0]}/status").read_text()
        return int(next(line for line in status.splitlines() if line.startswith("VmRSS")).split()[1]) * 1024


def core_rate(photos: list[Path], seconds: float) -> float:
    """The resize core's photos/s in this process, on the photos in turn, for at least ``seconds``."""
    bodies = [p.read_bytes() for p in photos]
    process_image(bodies[0])  # warm the codecs once
    done, began = 0, time.perf_counter()
    while time.perf_counter() - began < seconds or done < len(bodies):
        process_image(bodies[done % len(bodies)])
        done += 1
    return done / (time.perf_counter() - began)


def upload(
    stack: Stack, items: list[PlannedUpload], what: str, *, kill_after: int | None = None
) -> dict[str, str]:
    """Upload ``items`` with the CLI's uploader; with ``kill_after``, SIGKILL the stack once that many
    are acknowledged (the rest fail). Return key -> ETag of the acknowledged ones."""
    settings = load_settings(stack.data_dir)
    acknowledged = 0
    with progress_bar() as bar:
        task = bar.add_task(what, total=len(items))

        def done(_item: PlannedUpload) -> None:
            nonlocal acknowledged
            acknowledged += 1
            bar.advance(task)
            if kill_after is not None and acknowledged == kill_after:
                stack.kill()

        etags, _errors = upload_all(settings, items, concurrency=ARGS.concurrency, on_done=done)
    return etags


def drain(stack: Stack, etags: dict[str, str], what: str) -> dict[str, Any]:
    """Wait until every upload in ``etags`` has its record; return key -> record."""
    settings = load_settings(stack.data_dir)
    with progress_bar() as bar:
        task = bar.add_task(what, total=len(etags))
        return wait_for_records(
            settings, etags, timeout_s=3600, on_progress=lambda n: bar.update(task, completed=n)
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=2000)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--core-seconds", type=float, default=20.0)
    parser.add_argument("--keep", action="store_true", help="Keep the data dir (printed) afterwards.")
    global ARGS
    ARGS = parser.parse_args()
    corpus = sorted(p for p in ARGS.corpus.iterdir() if p.is_file())
    n = ARGS.photos
    console.print(f"resize core alone on {len(corpus)} photos ({ARGS.core_seconds:.0f} s)...")
    core = core_rate(corpus, ARGS.core_seconds)
    console.print(f"  core: {core:.2f} photos/s in one process")

    root = Path(tempfile.mkdtemp(prefix="bench-local-stack-"))
    stack = Stack(root / "data", ARGS.workers)
    prefix = load_settings(stack.data_dir).upload_prefix
    items = [
        PlannedUpload(path, f"{prefix}bench/{i:06d}_{path.name}", "bench", path.stat().st_size)
        for i, path in enumerate(corpus[i % len(corpus)] for i in range(n))
    ]
    first, second = items[: n // 2], items[n // 2 :]
    try:
        cold_ready = stack.start()
        rss_empty = stack.emulator_rss_bytes()
        console.print(f"stack up in {cold_ready:.1f} s; emulator RSS {rss_empty / 2**20:.0f} MB")

        spy = None
        if os.environ.get("BENCH_PY_SPY"):  # sample one process during the first half
            # BENCH_PY_SPY_ROLE=worker samples the first resize worker instead of the emulator.
            role = os.environ.get("BENCH_PY_SPY_ROLE", "emulator")
            spy = subprocess.Popen(
                [
                    *(
                        str(Path(sys.executable).with_name("py-spy")),
                        "record",
                        "-p",
                        str(stack.pids(role)[0]),
                    ),
                    *("-f", "raw", "-o", os.environ["BENCH_PY_SPY"], "-r", "50"),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        began, cpu_before = time.perf_counter(), stack.cpu_seconds()
        etags = upload(stack, first, "first half: upload")
        drain(stack, etags, "first half: records")
        first_seconds = time.perf_counter() - began
        first_rate = len(first) / first_seconds
        cpu_first = {k: v - cpu_before[k] for k, v in stack.cpu_seconds().items()}
        if spy:
            spy.send_signal(signal.SIGINT)
            spy.wait(timeout=60)

        kill_at = max(1, len(second) // 10)
        acknowledged = upload(stack, second, "second half: upload, kill -9", kill_after=kill_at)
        mid_ready = stack.start()
        console.print(
            f"killed mid-burst after {len(acknowledged)} acknowledged; ready again in {mid_ready:.1f} s"
        )
        began = time.perf_counter()
        rest = [item for item in second if item.key not in acknowledged]
        etags_second = {**acknowledged, **upload(stack, rest, "second half: the rest")}
        drain(stack, etags_second, "second half: records")
        last_rate = len(second) / (time.perf_counter() - began)

        all_etags = {**etags, **etags_second}
        stack.kill()
        ready = stack.start()
        console.print(f"killed idle with {n} photos stored; ready again in {ready:.1f} s")
        settings = load_settings(stack.data_dir)
        found = wait_for_records(settings, all_etags, timeout_s=60)
        s3 = settings.client("s3")
        lost = len(all_etags) - len(found)
        for key, etag in all_etags.items():
            if s3.head_object(Bucket=settings.upload_bucket, Key=key)["ETag"].strip('"') != etag:
                lost += 1
        usage = data_dir_usage(stack.data_dir)
        rss_full = stack.emulator_rss_bytes()
        statuses: dict[str, int] = {}
        for record in found.values():
            statuses[record["status"]] = statuses.get(record["status"], 0) + 1
        stack_rate = n / (len(first) / first_rate + len(second) / last_rate)
        result = {
            "photos": n,
            "bytes_stored": usage.object_bytes,
            "objects_stored": usage.objects,
            "records": usage.records,
            "lost": lost,
            "statuses": statuses,
            "stack_photos_per_s": round(stack_rate, 2),
            "first_half_photos_per_s": round(first_rate, 2),
            "last_half_photos_per_s": round(last_rate, 2),
            "core_photos_per_s": round(core, 2),
            # where the first half's time went: CPU seconds per photo of each part, and the wall time
            "first_half_cpu_ms_per_photo": {k: round(1000 * v / len(first), 1) for k, v in cpu_first.items()},
            "first_half_wall_ms_per_photo": round(1000 * first_seconds / len(first), 1),
            "core_cpu_ms_per_photo": round(1000 / core, 1),
            "stack_to_core_ratio": round(stack_rate / core, 3),
            "emulator_rss_empty_mb": round(rss_empty / 2**20, 1),
            "emulator_rss_full_mb": round(rss_full / 2**20, 1),
            "emulator_rss_growth_ratio": round((rss_full - rss_empty) / usage.object_bytes, 4),
            "restart_mid_burst_ready_s": round(mid_ready, 2),
            "restart_ready_s": round(ready, 2),
            "cold_start_ready_s": round(cold_ready, 2),
            "disk_bytes_ratio": round((usage.data_dir_bytes or 0) / usage.object_bytes, 3),
            "workers": ARGS.workers,
            "concurrency": ARGS.concurrency,
            "nproc": os.cpu_count(),
            "load_average_1m": round(os.getloadavg()[0], 2),
        }
        print(json.dumps(result), flush=True)
    finally:
        stack.stop()
        if ARGS.keep:
            console.print(f"data dir kept: {stack.data_dir}")
        else:
            shutil.rmtree(root, ignore_errors=True)


ARGS = argparse.Namespace()

if __name__ == "__main__":
    main()
