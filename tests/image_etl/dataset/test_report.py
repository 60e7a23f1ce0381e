"""The report's markdown: split counts without failed images, keepers, and the label conflicts."""

from __future__ import annotations

from pathlib import Path

from image_etl.dataset.report import report_markdown
from tests.image_etl.dataset.conftest import build_once
from tests.image_etl.dataset.test_build import BASE, record
from tests.pipelines.conftest import fake_record


def test_the_report_counts_conflicts_and_keepers_and_leaves_failed_images_out_of_the_splits(
    tmp_path: Path,
) -> None:
    manifest = build_once(
        tmp_path,
        [
            record("cat", BASE, sha256="1" * 64, label="cats"),
            record("dog", BASE, sha256="1" * 64, label="dogs"),
            record("alone", "0123456789abcdef", label="cats"),
            fake_record("broken", processed_at="2026-11-26T10:00:00.000000Z", status="failed"),
        ],
    )
    text = report_markdown(manifest, "v1")
    splits = manifest.loc[manifest["status"] == "processed", "split"].value_counts()
    expected = ", ".join(f"{s} {int(splits.get(s, 0))}" for s in ("train", "val", "test"))
    assert f"- splits: {expected} (failed images have none)" in text  # 3 images, not 4
    assert "2 kept, one per group" in text
    assert "- label conflicts: 1 group with more than one label (2 images)" in text
    assert "| cats, dogs | 2 |" in text
