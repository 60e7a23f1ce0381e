"""The asset graph materialized against the local emulation: real images in, a checked manifest out."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pyarrow.parquet as pq
import pytest
from PIL import ImageFilter
from typer.testing import CliRunner

from image_etl.cli import app
from image_etl.manifest import DatasetStore, latest_version, list_versions, manifest_table, read_manifest
from image_etl.settings import Settings
from pipelines.definitions import make_definitions
from pipelines.jobs import range_tags
from tests.imaging import encode, photo_like
from tests.pipelines.conftest import upload_and_process

pytestmark = pytest.mark.slow  # each test runs the job in process: 5-25 s

DAY = "2026-11-26"


#: The assets that make and publish a manifest (the report and the export take seconds of plotting).
CORE = [dg.AssetKey(k) for k in ("image_records", "dataset_manifest", "published_manifest")]


def run_dataset_job(
    resources: dict[str, Any],
    instance: dg.DagsterInstance,
    first: str = DAY,
    last: str = DAY,
    *,
    assets: list[dg.AssetKey] | None = None,
) -> dg.ExecuteInProcessResult:
    """Run the job the sensor and the schedule launch, over upload days ``first..last``, in process."""
    job = make_definitions(resources).resolve_job_def("dataset_job")
    return job.execute_in_process(
        instance=instance, tags=range_tags(first, last), raise_on_error=False, asset_selection=assets
    )


def metadata_of(result: Any, asset: str) -> dict[str, Any]:
    [event] = [e for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey(asset)]
    return {k: v.value for k, v in event.materialization.metadata.items()}


def sample_images() -> list[tuple[str, bytes]]:
    cat = photo_like(1, (800, 600))
    return [
        ("uploads/cats/a.png", encode(cat, "PNG")),
        ("uploads/cats/a-copy.png", encode(cat, "PNG")),  # same bytes, another key: exact duplicate
        ("uploads/cats/a-small.jpg", encode(cat.resize((400, 300)), "JPEG", quality=70)),  # near duplicate
        ("uploads/cats/b.jpg", encode(photo_like(2, (640, 480)))),
        ("uploads/dogs/c.jpg", encode(photo_like(3, (1200, 300)))),  # 4:1 is not extreme, 1200x200 is
        ("uploads/dogs/d.jpg", encode(photo_like(4, (640, 480)).filter(ImageFilter.GaussianBlur(3)))),
        ("uploads/dogs/e.jpg", encode(photo_like(5, (1200, 200)))),
        ("uploads/dogs/broken.jpg", b"not an image at all"),
    ]


def test_graph_builds_publishes_and_exports_a_checked_manifest(
    stack: Settings, resources: dict[str, Any], instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    uploaded = upload_and_process(stack, sample_images(), uploaded_at=f"{DAY}T10:00:00Z")

    result = run_dataset_job(resources, instance)

    assert result.success
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {
        "variants_exist_check": True,
        "failed_rate_check": True,
        "split_leak_check": True,
        "row_count_check": True,
        "label_conflict_check": True,
    }
    store = DatasetStore.from_settings(stack)
    meta = metadata_of(result, "dataset_manifest")
    assert latest_version(stack) == meta["version"]
    assert meta["rows"] == 8 and meta["failed"] == 1 and "| cats |" in meta["class_balance"]
    # The UI links the Iceberg table (location, and the metadata file of the build) and shows the
    # version, not the object Dagster hands the version on in.
    iceberg = manifest_table(stack).table()
    built = [e for e in iceberg.metadata.metadata_log if e.metadata_file == meta["uri"]]
    assert meta["path"] == iceberg.location() and built and meta["uri"].endswith(".metadata.json")
    assert int(meta["snapshot_id"]) == manifest_table(stack).resolve(meta["version"]).snapshot_id
    [event] = [
        e for e in result.get_asset_materialization_events() if e.asset_key.path == ["dataset_manifest"]
    ]
    assert event.materialization.tags["dagster/data_version"] == meta["version"]
    published = metadata_of(result, "published_manifest")
    assert (published["path"], published["uri"]) == (iceberg.location(), iceberg.metadata_location)
    assert published["published"] == meta["version"]
    # The table is registered in (moto's) Glue where the CDK's database puts it.
    glue = stack.client("glue").get_table(DatabaseName=stack.glue_database, Name="manifest")["Table"]
    assert glue["Parameters"]["table_type"].upper() == "ICEBERG"
    manifest = read_manifest(settings=stack).set_index("source_key")
    assert set(manifest["image_id"]) == {u["image_id"] for u in uploaded}
    dup = manifest.loc[["uploads/cats/a.png", "uploads/cats/a-copy.png", "uploads/cats/a-small.jpg"]]
    assert dup["dup_group"].nunique() == 1 and dup["split"].nunique() == 1
    assert manifest.loc["uploads/cats/b.jpg", "dup_group"] != dup["dup_group"].iloc[0]
    # One keeper per group: a full-size PNG (the two are the same bytes: the smaller image_id wins).
    assert dup["keep"].sum() == 1 and not dup.loc["uploads/cats/a-small.jpg", "keep"]
    assert dup.loc[dup["keep"], "image_id"].iloc[0] == min(
        dup.loc[["uploads/cats/a.png", "uploads/cats/a-copy.png"], "image_id"]
    )
    broken = manifest.loc["uploads/dogs/broken.jpg"]
    assert pd.isna(broken["split"]) and not broken["keep"] and broken["error_code"] == "not_an_image"
    assert sum(meta["splits"].values()) == 7  # the failed image is in no split
    flags = {key: list(value) for key, value in manifest["quality_flags"].items()}
    assert flags["uploads/dogs/broken.jpg"] == ["failed"]
    assert flags["uploads/dogs/e.jpg"] == ["extreme_aspect"] and flags["uploads/dogs/c.jpg"] == []
    assert flags["uploads/dogs/d.jpg"] == ["blurry"]
    assert manifest.loc["uploads/cats/b.jpg", "variant_small"].endswith("/small.jpg")

    # The published version's annotations are on every record, for the upload API and the gallery.
    annotated = metadata_of(result, "record_annotations")
    assert (annotated["version"], annotated["written"], annotated["skipped"]) == (meta["version"], 8, 0)
    item = stack.client("dynamodb").get_item(
        TableName=stack.table_name,
        Key={"image_id": {"S": manifest.loc["uploads/cats/a-copy.png", "image_id"]}},
    )["Item"]
    assert item["dataset"]["M"]["dup_group"]["S"] == dup["dup_group"].iloc[0]
    assert item["dataset"]["M"]["split"]["S"] == dup["split"].iloc[0]
    # The next run compares with what it wrote: nothing changed, nothing is sent.
    assert metadata_of(run_dataset_job(resources, instance), "record_annotations")["written"] == 0

    report = metadata_of(result, "dataset_report")
    assert report["class_balance"].startswith("![class_balance](data:image/png;base64,")
    assert "images: **8** (7 processed, 1 failed)" in report["summary"]
    assert "(failed images have none)" in report["summary"]
    assert "label conflicts: 0 groups" in report["summary"]
    # The UI's report is also kept beside the version, where its path metadata points.
    saved = f"{store.version_prefix(meta['version'])}report/"
    assert report["path"] == store.uri(saved)
    assert store.read_bytes(f"{saved}summary.md").decode() == report["summary"]
    assert store.read_bytes(f"{saved}class_balance.png").startswith(b"\x89PNG")

    exported = []
    for split in ("train", "val", "test"):
        key = f"{store.version_prefix(meta['version'])}imagefolder-small/{split}/metadata.parquet"
        if store.exists(key):  # a split with no images has no file
            exported += pq.read_table(io.BytesIO(store.read_bytes(key))).to_pylist()
    assert len(exported) == 7  # the processed images; the failed one has no variant
    card = store.read_bytes(f"{store.version_prefix(meta['version'])}README.md").decode()
    assert "license: unknown" in card and "- image-classification" in card
    assert metadata_of(result, "imagefolder_export")["card"].endswith(f"{meta['version']}/README.md")
    folder = tmp_path / "imagefolder"
    downloaded = store.download_imagefolder(
        folder, meta["version"], variants_bucket=stack.variants_bucket, variants_prefix=stack.variants_prefix
    )
    assert downloaded == 7
    for row in exported:
        [path] = folder.glob(f"*/{row['file_name']}")
        assert path.read_bytes()[:2] == b"\xff\xd8"  # a JPEG

    # The CLI downloads what the pointer names.
    data_dir = Path(stack.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "stack.json").write_text(
        json.dumps({"pid": os.getpid(), "aws_port": stack.aws_endpoint_url.rsplit(":", 1)[1]})
    )
    out = tmp_path / "m.parquet"
    cli = CliRunner().invoke(app, ["manifest", "--data-dir", str(data_dir), "--out", str(out)])
    assert cli.exit_code == 0, cli.output
    downloaded_rows = pd.read_parquet(out)
    assert downloaded_rows["image_id"].tolist() == read_manifest(settings=stack)["image_id"].tolist()
    assert downloaded_rows.set_index("source_key").loc["uploads/cats/a.png", "dup_group_size"] == 3
    # Nullable integers as in the record (the failed image has no size), not float64.
    assert {str(downloaded_rows[c].dtype) for c in ("width", "height")} == {"Int64"}
    assert pd.isna(downloaded_rows.set_index("source_key").loc["uploads/dogs/broken.jpg", "width"])
    assert meta["version"] in cli.output
    # An older version by its tag, and a clear error for one that does not exist.
    old = CliRunner().invoke(
        app,
        ["manifest", "--data-dir", str(data_dir), "--version", "20200101T000000Z-abcdef", "--out", str(out)],
    )
    assert old.exit_code == 2 and "no manifest version" in old.output


def test_rebuild_is_idempotent_and_new_images_keep_old_splits(
    stack: Settings, resources: dict[str, Any], instance: dg.DagsterInstance
) -> None:
    upload_and_process(stack, [(f"uploads/cats/{i}.jpg", encode(photo_like(10 + i))) for i in range(3)])
    first = metadata_of(run_dataset_job(resources, instance, assets=CORE), "dataset_manifest")
    store = DatasetStore.from_settings(stack)
    before = read_manifest(settings=stack).set_index("image_id")["split"]

    again = metadata_of(run_dataset_job(resources, instance, assets=CORE), "dataset_manifest")
    assert again["version"] == first["version"] and again["unchanged"] is True
    assert list_versions(stack) == [first["version"]]

    upload_and_process(
        stack,
        [(f"uploads/dogs/{i}.jpg", encode(photo_like(40 + i))) for i in range(2)]
        + [("uploads/cats/0-again.jpg", encode(photo_like(10), "JPEG", quality=60))],
        uploaded_at="2026-11-27T08:00:00Z",
    )
    later = metadata_of(
        run_dataset_job(resources, instance, last="2026-11-27", assets=CORE), "dataset_manifest"
    )
    assert later["version"] > first["version"] and later["rows"] == 6
    assert later["mode"] == "incremental" and later["days_rewritten"] == ["2026-11-27"]
    after = read_manifest(settings=stack).set_index("image_id")
    assert (after.loc[before.index, "split"] == before).all()
    assert latest_version(stack) == later["version"]
    assert list_versions(stack) == [first["version"], later["version"]]
    assert len(read_manifest(first["version"], settings=stack)) == 3  # time travel by tag
    # The two days are two record files; the re-encoded copy joined its original's group and split.
    days = store.s3.list_objects_v2(Bucket=store.bucket, Prefix=f"{store.prefix}records/")["Contents"]
    assert len(days) == 2
    copy = after[after["source_key"] == "uploads/cats/0-again.jpg"].iloc[0]
    original = after[after["source_key"] == "uploads/cats/0.jpg"].iloc[0]
    assert (copy["dup_group"], copy["split"]) == (original["dup_group"], original["split"])


def test_records_before_the_first_partition_are_kept(
    stack: Settings, resources: dict[str, Any], instance: dg.DagsterInstance
) -> None:
    upload_and_process(
        stack, [("uploads/cats/old.jpg", encode(photo_like(7)))], uploaded_at="2019-05-01T00:00:00Z"
    )

    result = run_dataset_job(resources, instance, first="2024-01-01", last="2024-01-01", assets=CORE)

    assert result.success
    manifest = read_manifest(settings=stack)
    assert manifest["uploaded_at"].tolist() == ["2019-05-01T00:00:00.000000Z"]
    assert manifest_table(stack).table().location().endswith(f"{stack.datasets_prefix}iceberg/manifest")
