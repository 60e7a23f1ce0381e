"""Pure manifest logic: duplicate groups, near duplicates, quality flags, splits (no AWS, no Dagster)."""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd
import pytest
from PIL import ImageEnhance, ImageFilter

from lambda_resizer.core import process_image
from pipelines import manifest as mf
from tests.imaging import encode, photo_like
from tests.pipelines.conftest import fake_record


def frame(*records: dict) -> pd.DataFrame:
    return mf.records_frame(records)


def record(name: str, phash: str, *, sha256: str | None = None, uploaded: int = 0, **extra: object) -> dict:
    r = fake_record(name, processed_at=f"2026-11-26T10:00:{uploaded:02d}.000000Z", phash=phash, sha256=sha256)
    r.update(extra)
    return r


def flip(phash: str, bits: int, at: int = 20) -> str:
    """Return ``phash`` with ``bits`` consecutive bits from bit ``at`` inverted."""
    return f"{int(phash, 16) ^ ((1 << bits) - 1) << at:016x}"


def test_exact_and_near_duplicates_share_a_group_and_a_split() -> None:
    base = "c3d1b0e8f0f8e0c1"
    manifest = mf.build_manifest(
        frame(
            record("a", base, sha256="1" * 64, uploaded=1),
            record("a-copy", base, sha256="1" * 64, uploaded=2),
            record("a-edit", flip(base, 6), uploaded=3),
            record("other", flip(base, 7, at=40), uploaded=4),  # 7 from a, 13 from a-edit
            record("far", "0123456789abcdef", uploaded=5),
        )
    ).set_index("image_id")
    by_name = {
        key.rsplit("/", 1)[-1][:-4]: row
        for key, row in zip(manifest["source_key"], manifest.itertuples(), strict=True)
    }
    group = {by_name[n].dup_group for n in ("a", "a-copy", "a-edit")}
    assert len(group) == 1
    assert by_name["a"].dup_group == by_name["a"].Index  # named after the earliest upload
    assert by_name["other"].dup_group != by_name["a"].dup_group  # 7 bits away: not at the default 6
    assert {by_name[n].split for n in ("a", "a-copy", "a-edit")} == {by_name["a"].split}
    assert by_name["a"].dup_group_size == 3 and by_name["far"].dup_group_size == 1


def test_near_duplicate_search_finds_exactly_the_pairs_brute_force_finds() -> None:
    rng = np.random.default_rng(3)
    base = rng.integers(0, 2**63, size=300, dtype=np.int64).astype(np.uint64)
    noise = np.zeros(300, dtype=np.uint64)
    for _ in range(8):
        noise |= np.uint64(1) << rng.integers(0, 64, size=300).astype(np.uint64)
    hashes = np.unique(np.concatenate([base, base ^ noise, base[:50] ^ np.uint64(0b1011)]))
    for distance in (0, 3, 6, 9):
        got = set(zip(*mf.near_duplicate_pairs(hashes, max_distance=distance), strict=True))
        want = {
            (i, j)
            for i, j in combinations(range(len(hashes)), 2)
            if int(hashes[i] ^ hashes[j]).bit_count() <= distance
        }
        assert got == want, distance


def test_threshold_six_covers_reencoding_resizing_and_mild_edits_but_not_other_pictures() -> None:
    # The default distance, measured on generated pictures with the resizer's own pHash.
    edits = []
    others = []
    hashes = []
    for seed in range(6):
        picture = photo_like(seed, (800, 600))
        original = process_image(encode(picture, "PNG")).info.phash
        hashes.append(int(original, 16))
        for changed in (
            encode(picture, "JPEG", quality=50),
            encode(picture.resize((400, 300)), "JPEG"),
            encode(picture.resize((1200, 900)), "WEBP"),
            encode(ImageEnhance.Brightness(picture).enhance(1.1), "JPEG"),
            encode(picture.filter(ImageFilter.GaussianBlur(1)), "JPEG"),
        ):
            edits.append((int(original, 16) ^ int(process_image(changed).info.phash, 16)).bit_count())
    others = [(a ^ b).bit_count() for a, b in combinations(hashes, 2)]
    assert max(edits) <= mf.ManifestConfig().near_dup_distance < min(others)


def test_quality_flags() -> None:
    rows = frame(
        record("ok", "1" * 16, width=640, height=480),
        record("tiny", "2" * 16, width=40, height=30),
        record("banner", "3" * 16, width=1000, height=200),
        record("dark", "4" * 16, brightness=0.05),
        record("bright", "5" * 16, brightness=0.95),
        record("soft", "6" * 16, blur_score=10.0),
        fake_record("broken", processed_at="2026-11-26T10:00:00.000000Z", status="failed"),
    )
    manifest = mf.build_manifest(rows)
    flags = {
        k.rsplit("/", 1)[-1][:-4]: list(v)
        for k, v in zip(manifest["source_key"], manifest["quality_flags"], strict=True)
    }
    assert flags == {
        "ok": [],
        "tiny": ["tiny"],
        "banner": ["extreme_aspect"],
        "dark": ["too_dark"],
        "bright": ["too_bright"],
        "soft": ["blurry"],
        "broken": ["failed"],
    }


def test_latest_record_of_an_image_wins() -> None:
    old = record("a", "1" * 16, uploaded=1, label="cats")
    new = dict(old, processed_at="2026-11-27T10:00:00.000000Z", label="dogs")
    manifest = mf.build_manifest(frame(old, new))
    assert manifest["label"].tolist() == ["dogs"]


def synthetic(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return frame(
        *(record(f"img{seed}-{i}", f"{int(rng.integers(0, 2**63)):016x}", uploaded=i % 60) for i in range(n))
    )


def test_splits_follow_the_ratios_and_do_not_move_when_new_images_arrive() -> None:
    first = synthetic(2000, seed=1)
    before = mf.build_manifest(first)
    counts = before["split"].value_counts(normalize=True)
    assert abs(counts["train"] - 0.8) < 0.03 and abs(counts["val"] - 0.1) < 0.02

    # New images, including a near copy of an old one uploaded *earlier* (a late record).
    old = first.iloc[5]
    late = record("late-copy", old["phash"], uploaded=0)
    late["uploaded_at"] = "2020-01-01T00:00:00.000000Z"
    grown = pd.concat([first, synthetic(500, seed=2), frame(late)], ignore_index=True)
    previous = pd.Series(before["split"].to_numpy(), index=before["image_id"].to_numpy())
    after = mf.build_manifest(grown, previous_splits=previous).set_index("image_id")

    assert (after.loc[before["image_id"], "split"].to_numpy() == before["split"].to_numpy()).all()
    late_row = after[after["source_key"].str.endswith("late-copy.jpg")].iloc[0]
    assert late_row["split"] == after.loc[old["image_id"], "split"]
    assert mf.split_leaks(after.reset_index()) == {"sha256": [], "dup_group": []}
    # Without the previous version a rebuild gives the same splits too (same data, same hash).
    assert mf.build_manifest(first)["split"].tolist() == before["split"].tolist()


def test_split_hash_is_stable_across_runs_and_machines() -> None:
    # sha256("split:" + id): pinned values, so a library upgrade can never reshuffle the dataset.
    assert mf.unit_interval(["abc"])[0] == pytest.approx(0.14984508970548235, abs=1e-15)
    values = mf.unit_interval(["abc", "abc", "xyz"])
    assert values[0] == values[1] != values[2]
    assert mf.split_for(np.array([0.0, 0.79, 0.8, 0.89, 0.9, 0.999]), mf.SplitRatios()).tolist() == [
        "train", "train", "val", "val", "test", "test",
    ]  # fmt: skip


def test_checks_logic_detects_leaks_missing_variants_and_failures() -> None:
    manifest = mf.build_manifest(
        frame(
            record("a", "1" * 16),
            record("b", "2" * 16),
            fake_record("c", processed_at="2026-11-26T10:00:00Z", status="failed"),
        )
    )
    leaked = manifest.copy()
    leaked.loc[1, "sha256"] = leaked.loc[0, "sha256"]
    leaked.loc[1, "split"] = "test" if leaked.loc[0, "split"] != "test" else "train"
    assert len(mf.split_leaks(leaked)["sha256"]) == 1

    keys = set(manifest["variant_small"].dropna()) | set(manifest["variant_large"].dropna())
    missing = mf.missing_variants(manifest, keys)
    assert sorted(missing["variant"]) == [
        "variant_medium",
        "variant_medium",
        "variant_thumb",
        "variant_thumb",
    ]
    assert mf.failed_rate(manifest) == pytest.approx(1 / 3)
