"""Emulator CPU per request kind: the emulator process's utime + stime over N requests of each.

    .venv/bin/python bench/emulator_requests.py [--requests 60]

CPU time of the emulator's own process, not wall time, so other load on the machine matters little.
One line per request kind on stdout (see bench/RESULTS.md, "Emulator CPU per request").
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from image_etl.resource_shapes import LOCAL, LOCAL_CREDENTIALS  # noqa: E402


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=60)
    args = parser.parse_args()
    data = Path(tempfile.mkdtemp(prefix="emulator-requests-"))
    port = free_port()
    command = [sys.executable, "-m", "image_etl.local.emulator", "--data-dir", str(data), "--port", str(port)]
    emulator = subprocess.Popen(
        [*command, "--site-port", str(free_port())], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    try:
        assert emulator.stdout is not None
        emulator.stdout.readline()  # the "ready" line
        ticks = os.sysconf("SC_CLK_TCK")

        def cpu_s() -> float:
            fields = Path(f"/proc/{emulator.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / ticks

        options: dict[str, Any] = {
            "endpoint_url": f"http://127.0.0.1:{port}",
            "region_name": "us-east-1",
            "config": Config(s3={"addressing_style": "path"}),
            **LOCAL_CREDENTIALS,
        }
        s3, dynamodb, sqs = (boto3.client(name, **options) for name in ("s3", "dynamodb", "sqs"))
        bucket, table = LOCAL.variants_bucket, LOCAL.table.name
        queue = sqs.get_queue_url(QueueName=LOCAL.queue.dlq_name)["QueueUrl"]
        big, small = os.urandom(2_000_000), os.urandom(60_000)

        def receive_and_delete(_: int) -> None:
            for message in sqs.receive_message(QueueUrl=queue).get("Messages", []):
                sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])

        item = {"status": {"S": "processed"}, "processed_at": {"S": "2026"}, "blob": {"S": "y" * 1500}}
        kinds: dict[str, Callable[[int], Any]] = {
            "PUT 2 MB": lambda i: s3.put_object(Bucket=bucket, Key=f"big/{i}", Body=big),
            "GET 2 MB": lambda i: s3.get_object(Bucket=bucket, Key=f"big/{i}")["Body"].read(),
            "ranged GET 64 KB": lambda i: s3.get_object(Bucket=bucket, Key=f"big/{i}", Range="bytes=0-65535")[
                "Body"
            ].read(),
            "HEAD": lambda i: s3.head_object(Bucket=bucket, Key=f"big/{i}"),
            "PUT 60 KB": lambda i: s3.put_object(Bucket=bucket, Key=f"small/{i}", Body=small),
            "DynamoDB PutItem": lambda i: dynamodb.put_item(
                TableName=table, Item={"image_id": {"S": f"x{i}"}, **item}
            ),
            "DynamoDB GetItem": lambda i: dynamodb.get_item(
                TableName=table, Key={"image_id": {"S": f"x{i}"}}
            ),
            "SQS send": lambda _: sqs.send_message(QueueUrl=queue, MessageBody="x" * 1500),
            "SQS receive + delete": receive_and_delete,
        }
        for name, request in kinds.items():
            request(0)  # warm: the first request of a kind pays for imports and caches
            before = cpu_s()
            for index in range(args.requests):
                request(index)
            print(f"{name:24s} {1000 * (cpu_s() - before) / args.requests:6.2f} ms emulator CPU per request")
    finally:
        emulator.terminate()
        emulator.wait()
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
