"""Notebook helpers on real manifests (built by the pipeline's own logic) and real thumbnails in moto."""

from __future__ import annotations

import io
import json
from typing import Any

import pandas as pd
import pytest
from PIL import Image

from image_etl import explore
from image_etl.dataset.record_files import build_from_record_files, write_record_files
from image_etl.dataset.rules import ManifestConfig
from image_etl.manifest import DatasetStore, manifest_table
from image_etl.settings import Settings
from tests.image_etl.dataset.conftest import build_once

COLOURS = {"cats": (200, 40, 40), "dogs": (40, 160, 60)}


def record(n: int, label: str, **extra: Any) -> dict[str, Any]:
    image_id = f"{n:032x}"
    return {
        "image_id": image_id,
        "status": "processed",
        "label": label,
        "width": 640,
        "height": 480,
        "sha256": f"{n:064x}",
        # Far-apart hashes: only the records a test makes alike are duplicates.
        "phash": f"{(n * 0x9E3779B97F4A7C15) % 2**64:016x}",
        "brightness": 0.5,
        "blur_score": 500.0,
        "uploaded_at": "2026-11-26T10:00:00.000000Z",
        "processed_at": f"2026-11-26T10:00:{n:02d}.000000Z",
        "variants": {"thumb": {"key": f"variants/{image_id}/thumb.jpg", "width": 128, "height": 96}},
        **extra,
    }


@pytest.fixture
def manifest_of(tmp_path_factory: pytest.TempPathFactory) -> Any:
    def build(records: list[dict[str, Any]], version: str) -> pd.DataFrame:
        manifest = build_once(tmp_path_factory.mktemp("build"), records)
        manifest.attrs["version"] = version
        return manifest

    return build


@pytest.fixture
def records() -> list[dict[str, Any]]:
    rows = [record(n, "cats" if n % 3 else "dogs") for n in range(1, 13)]
    rows.append(record(13, "cats", sha256=rows[0]["sha256"], phash=rows[0]["phash"]))  # exact copy of 1
    rows.append(
        {
            **record(14, "dogs"),
            "status": "failed",
            "error": "image file is truncated",
            "error_code": "truncated",
            "original_filename": "holiday.jpg",
            "source_key": "uploads/dogs/2f9c0d1e-holiday.jpg",
            "variants": {},
        }
    )
    return rows


def test_class_balance_counts_processed_images_per_label_and_split(
    records: list[dict[str, Any]], manifest_of: Any
) -> None:
    table = explore.class_balance(manifest_of(records, "v1"))
    assert table.loc["cats", "total"] == 9 and table.loc["dogs", "total"] == 4
    assert list(table.columns) == ["train", "val", "test", "total"]
    assert (table[["train", "val", "test"]].sum(axis=1) == table["total"]).all()


def test_failed_images_and_duplicate_groups(records: list[dict[str, Any]], manifest_of: Any) -> None:
    manifest = manifest_of(records, "v1")
    failed = explore.failed_images(manifest)
    assert list(failed["error_code"]) == ["truncated"]
    # The name the uploader knows, not the storage key.
    assert list(failed["original_filename"]) == ["holiday.jpg"] and "source_key" not in failed.columns
    groups = explore.duplicate_groups(manifest)
    assert set(groups["image_id"]) == {f"{1:032x}", f"{13:032x}"} and set(groups["group_size"]) == {2}
    assert explore.groups_spanning_splits(manifest).empty


def test_preview_shows_the_columns_that_matter_and_the_split_plot_is_one_figure(
    records: list[dict[str, Any]], manifest_of: Any
) -> None:
    from matplotlib.figure import Figure

    manifest = manifest_of(records, "v1")
    preview = explore.preview(manifest)
    assert len(preview) == 5 and len(preview.columns) < len(manifest.columns) / 2
    assert {"original_filename", "label", "status", "split", "quality_flags"} <= set(preview.columns)
    figure = explore.split_sizes_plot(manifest)
    assert isinstance(figure, Figure) and [a.get_title() for a in figure.axes] == ["split sizes per label"]


def test_a_group_split_across_splits_is_reported() -> None:
    leaky = pd.DataFrame(
        {"image_id": ["a", "b"], "dup_group": ["g", "g"], "sha256": ["x", "y"], "split": ["train", "test"]}
    )
    report = explore.groups_spanning_splits(leaky)
    assert report.to_dict("records") == [{"kind": "dup_group", "value": "g", "splits": ["test", "train"]}]


def test_diff_versions_finds_added_removed_changed_and_drift(
    records: list[dict[str, Any]], manifest_of: Any
) -> None:
    old = manifest_of(records[:10], "v1")
    newer = [dict(r) for r in records[1:]]  # 1 removed, 10..14 added
    newer[0]["label"] = "dogs"  # record 2 relabelled
    new = manifest_of(newer, "v2")

    diff = explore.diff_versions(old, new)

    assert set(diff.removed["image_id"]) == {f"{1:032x}"}
    assert set(diff.added["image_id"]) == {f"{n:032x}" for n in range(11, 15)}
    label_change = diff.changed[diff.changed["column"] == "label"]
    assert label_change.to_dict("records") == [
        {"image_id": f"{2:032x}", "column": "label", "old": "cats", "new": "dogs"}
    ]
    assert diff.labels.loc["dogs", "delta"] == len(new[new["label"] == "dogs"]) - len(
        old[old["label"] == "dogs"]
    )
    assert diff.flags.loc["failed", "new"] == 1 and diff.flags.loc["failed", "old"] == 0
    assert diff.summary() == {
        "old_version": "v1",
        "new_version": "v2",
        "added": 4,
        "removed": 1,
        "changed_images": int(diff.changed["image_id"].nunique()),
    }


def test_contact_sheet_tiles_the_thumbnails_from_s3(
    stack: Settings, records: list[dict[str, Any]], manifest_of: Any
) -> None:
    s3 = stack.client("s3")
    manifest = manifest_of(records, "v1").sort_values("image_id").reset_index(drop=True)
    for _, row in manifest.iterrows():
        if isinstance(row["variant_thumb"], str) and row["variant_thumb"].startswith("variants/"):
            buffer = io.BytesIO()
            Image.new("RGB", (128, 96), COLOURS[row["label"]]).save(buffer, "JPEG", quality=95)
            s3.put_object(Bucket=stack.variants_bucket, Key=row["variant_thumb"], Body=buffer.getvalue())

    sheet = explore.contact_sheet(manifest, columns=4, cell=128, settings=stack)

    assert sheet.size == (4 * 132 + 4, 4 * (128 + 16 + 4) + 4)  # 14 images -> 4 rows of 4
    for index, (_, row) in enumerate(manifest.iterrows()):
        x = 4 + (index % 4) * 132 + 64
        y = 4 + (index // 4) * 148 + 64
        pixel = sheet.getpixel((x, y))
        if row["status"] == "processed":
            assert all(abs(a - b) < 12 for a, b in zip(pixel, COLOURS[row["label"]], strict=True)), (
                index,
                pixel,
            )
        else:
            assert pixel == (236, 238, 242)  # the failed image has no thumbnail: an empty tile


def test_load_manifest_reads_the_published_or_a_given_version(
    stack: Settings, records: list[dict[str, Any]]
) -> None:
    store = DatasetStore.from_settings(stack)
    table = manifest_table(stack)
    built = []
    for rows in (records[:5], records):
        write_record_files(store, rows, ["2026-11-26"])
        built.append(build_from_record_files(table, store, config=ManifestConfig()).version)
    table.publish(built[-1])

    assert explore.versions(settings=stack) == built
    latest = explore.load_manifest(settings=stack)
    first = explore.load_manifest(built[0], settings=stack)
    assert latest.attrs["version"] == built[1] and len(latest) == len(records)
    assert len(first) == 5
    assert json.loads(json.dumps(explore.diff_versions(first, latest).summary()))["added"] == len(records) - 5


def test_with_one_version_the_comparison_is_against_an_empty_one_and_says_what_it_needs(
    stack: Settings, records: list[dict[str, Any]]
) -> None:
    nothing = explore.versions_to_compare(settings=stack)
    assert "No manifest version yet" in nothing.note and len(nothing.new) == 0
    assert explore.diff_versions(nothing.old, nothing.new).summary()["added"] == 0
    explore.drift_plot(explore.diff_versions(nothing.old, nothing.new))  # draws, with nothing in it

    store = DatasetStore.from_settings(stack)
    write_record_files(store, records, ["2026-11-26"])
    only = build_from_record_files(manifest_table(stack), store, config=ManifestConfig()).version
    one = explore.versions_to_compare(settings=stack)
    assert one.new.attrs["version"] == only and one.old.attrs["version"] == explore.EMPTY_VERSION
    assert "Only one version" in one.note and "two manifest versions" in one.note
    diff = explore.diff_versions(one.old, one.new)
    assert diff.summary()["added"] == len(records) and diff.summary()["removed"] == 0
    assert diff.labels["old"].sum() == 0 and diff.labels["new"].sum() == len(records)

    write_record_files(store, records[:-2], ["2026-11-26"])
    second = build_from_record_files(manifest_table(stack), store, config=ManifestConfig()).version
    two = explore.versions_to_compare(settings=stack)
    assert (two.old.attrs["version"], two.new.attrs["version"]) == (only, second)
    assert explore.diff_versions(two.old, two.new).summary()["removed"] == 2
