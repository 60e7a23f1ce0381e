"""What the data dir holds (for `image-etl info` and the banner), from the state file alone; the
command itself is tested in tests/image_etl/test_cli.py."""

from __future__ import annotations

import shutil
from pathlib import Path

from image_etl.local.emulator import Emulator
from image_etl.local.usage import data_dir_usage, human_bytes
from lambda_resizer.records import to_item
from tests.image_etl.local.emulators import stop_clean


def test_usage_counts_objects_bytes_records_and_free_disk(tmp_path: Path) -> None:
    emulator = Emulator(tmp_path, port=0)
    emulator.start()
    try:
        settings = emulator.settings
        s3 = settings.client("s3")
        s3.put_object(Bucket=settings.variants_bucket, Key="v/a.bin", Body=b"a" * 1000)
        s3.put_object(Bucket=settings.variants_bucket, Key="v/b.bin", Body=b"b" * 2345)
        s3.put_object(Bucket=settings.variants_bucket, Key="v/a.bin", Body=b"A" * 10)  # overwrite
        settings.client("dynamodb").put_item(
            TableName=settings.table_name, Item=to_item({"image_id": "x", "status": "processed"})
        )
        usage = data_dir_usage(tmp_path)  # read beside the running emulator (WAL)
    finally:
        stop_clean(emulator)

    assert (usage.objects, usage.object_bytes, usage.records) == (2, 2355, 1)
    assert usage.data_dir_bytes is not None and usage.data_dir_bytes >= 2355
    assert 0 < usage.free_bytes <= shutil.disk_usage(tmp_path).free * 1.01
    assert usage.summary().startswith("2 objects (2.4 KB), 1 records; ")
    assert data_dir_usage(tmp_path, walk=False).data_dir_bytes is None


def test_human_bytes() -> None:
    assert [human_bytes(n) for n in (0, 999, 1000, 2_500_000, 4.03e9, 7e13)] == [
        "0 B",
        "999 B",
        "1.0 KB",
        "2.5 MB",
        "4.0 GB",
        "70.0 TB",
    ]
