"""Builds of the manifest table: the rules (groups, flags, splits), incremental runs against full
rebuilds, which partitions a run rewrites, and two writers at once."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from image_etl.dataset import checks, slices
from image_etl.dataset.groups import split_for, unit_interval
from image_etl.dataset.rules import SPLITS, SplitRatios
from image_etl.dataset.table import ManifestTable, local_catalog
from tests.image_etl.dataset.conftest import build_once, by_day, head, incremental, rebuild
from tests.pipelines.conftest import fake_record


def record(
    name: str, phash: str, *, sha256: str | None = None, at: str = "2026-11-26T10:00:00", **extra: Any
) -> dict:
    r = fake_record(name, processed_at=f"{at}.000000Z", phash=phash, sha256=sha256)
    r.update(extra)
    return r


def flip(phash: str, bits: int, at: int = 20) -> str:
    """Return ``phash`` with ``bits`` consecutive bits from bit ``at`` inverted."""
    return f"{int(phash, 16) ^ ((1 << bits) - 1) << at:016x}"


def named(manifest: pd.DataFrame) -> dict[str, Any]:
    return {
        key.rsplit("/", 1)[-1][:-4]: row
        for key, row in zip(manifest["source_key"], manifest.itertuples(), strict=True)
    }


BASE = "c3d1b0e8f0f8e0c1"


def test_exact_and_near_duplicates_share_a_group_and_a_split(tmp_path: Path) -> None:
    manifest = build_once(
        tmp_path,
        [
            record("a", BASE, sha256="1" * 64, at="2026-11-26T10:00:01"),
            record("a-copy", BASE, sha256="1" * 64, at="2026-11-26T10:00:02"),
            record("a-edit", flip(BASE, 6), at="2026-11-26T10:00:03"),
            record("other", flip(BASE, 7, at=40), at="2026-11-26T10:00:04"),  # 7 from a, 13 from a-edit
            record("far", "0123456789abcdef", at="2026-11-26T10:00:05"),
        ],
    )
    rows = named(manifest)
    assert len({rows[n].dup_group for n in ("a", "a-copy", "a-edit")}) == 1
    assert rows["a"].dup_group == rows["a"].image_id  # named after the earliest upload
    assert rows["other"].dup_group != rows["a"].dup_group  # 7 bits away: not at the default 6
    assert {rows[n].split for n in ("a", "a-copy", "a-edit")} == {rows["a"].split}
    assert rows["a"].dup_group_size == 3 and rows["far"].dup_group_size == 1


def test_quality_flags(tmp_path: Path) -> None:
    manifest = build_once(
        tmp_path,
        [
            record("ok", "1" * 16, width=640, height=480),
            record("tiny", "2" * 16, width=40, height=30),
            record("banner", "3" * 16, width=1000, height=200),
            record("dark", "4" * 16, brightness=0.05),
            record("bright", "5" * 16, brightness=0.95),
            record("soft", "6" * 16, blur_score=0.9),
            fake_record("broken", processed_at="2026-11-26T10:00:00.000000Z", status="failed"),
        ],
    )
    flags = {name: list(row.quality_flags) for name, row in named(manifest).items()}
    assert flags == {
        "ok": [],
        "tiny": ["tiny"],
        "banner": ["extreme_aspect"],
        "dark": ["too_dark"],
        "bright": ["too_bright"],
        "soft": ["blurry"],
        "broken": ["failed"],
    }


def test_failed_images_stay_with_their_reason_but_get_no_split_and_are_never_kept(tmp_path: Path) -> None:
    manifest = build_once(
        tmp_path,
        [
            record("ok", "1" * 16),
            fake_record("broken", processed_at="2026-11-26T10:00:00.000000Z", status="failed"),
        ],
    )
    rows = named(manifest)
    broken = rows["broken"]
    assert pd.isna(broken.split) and not broken.keep
    assert (broken.error_code, list(broken.quality_flags)) == ("not_an_image", ["failed"])
    assert rows["ok"].split in SPLITS and rows["ok"].keep
    facts = checks.summary(manifest)
    assert sum(facts["splits"].values()) == 1 and facts["failed"] == 1


def test_the_same_picture_under_two_labels_is_a_label_conflict(tmp_path: Path) -> None:
    manifest = build_once(
        tmp_path,
        [
            record("cat", BASE, sha256="1" * 64, label="cats"),
            record("dog", BASE, sha256="1" * 64, label="dogs"),  # the same bytes
            record("emu", flip(BASE, 3), label="emus"),  # a near copy of both
            record("unlabelled", flip(BASE, 2), label=None),
            record("alone", "0123456789abcdef", label="cats"),
            record("twin-a", "fedcba9876543210", label="cats"),
            record("twin-b", flip("fedcba9876543210", 1), label="cats"),  # same label: no conflict
        ],
    )
    rows = named(manifest)
    for name in ("cat", "dog", "emu", "unlabelled"):
        assert list(rows[name].conflicting_labels) == ["cats", "dogs", "emus"]
        assert "label_conflict" in rows[name].quality_flags
    for name in ("alone", "twin-a", "twin-b"):
        assert list(rows[name].conflicting_labels) == [] and "label_conflict" not in rows[name].quality_flags
    assert checks.summary(manifest)["flags"]["label_conflict"] == 4


def test_a_better_copy_arriving_later_takes_keep_over_and_rewrites_only_the_days_that_change(
    table: ManifestTable,
) -> None:
    a = record("a", BASE, at="2026-11-20T10:00:00", width=640, height=480, format="JPEG")
    b = record("b", "0123456789abcdef", at="2026-11-21T10:00:00")
    rebuild(table, by_day([a, b]))
    assert named(head(table))["a"].keep

    smaller = record("smaller", flip(BASE, 2), at="2026-11-24T10:00:00", width=320, height=240)
    result = incremental(table, by_day([smaller]))
    assert result.days_rewritten == ["2026-11-24"]  # a stays the keeper: its day is untouched
    rows = named(head(table))
    assert rows["a"].keep and not rows["smaller"].keep

    # Same size as a but lossless: it takes over, and a's row (day 20) is rewritten with keep False.
    png = record("png", flip(BASE, 3), at="2026-11-26T10:00:00", width=640, height=480, format="PNG")
    result = incremental(table, by_day([png]))
    assert result.days_rewritten == ["2026-11-20", "2026-11-26"]
    rows = named(head(table))
    assert [rows[n].keep for n in ("a", "smaller", "png", "b")] == [False, False, True, True]

    # A copy under another label: every member's row gets the conflict, b's day stays as it was.
    dog = record("dog", flip(BASE, 1), at="2026-11-27T10:00:00", label="dogs", width=10, height=10)
    result = incremental(table, by_day([dog]))
    assert result.days_rewritten == ["2026-11-20", "2026-11-24", "2026-11-26", "2026-11-27"]
    rows = named(head(table))
    for name in ("a", "smaller", "png", "dog"):
        assert list(rows[name].conflicting_labels) == ["cats", "dogs"]
        assert "label_conflict" in rows[name].quality_flags
    assert list(rows["b"].conflicting_labels) == [] and rows["png"].keep

    # Relabelled (the same key re-processed with the group's label): the conflict is gone again.
    fixed = dict(dog, label="cats", processed_at="2026-11-27T11:00:00.000000Z")
    incremental(table, by_day([fixed]))
    rows = named(head(table))
    assert all(list(rows[n].conflicting_labels) == [] for n in ("a", "smaller", "png", "dog"))
    assert all("label_conflict" not in rows[n].quality_flags for n in ("a", "smaller", "png", "dog"))


def test_width_and_height_are_nullable_integers_as_in_the_record(table: ManifestTable) -> None:
    rebuild(
        table,
        by_day(
            [
                record("ok", "1" * 16, width=641, height=479),
                fake_record("broken", processed_at="2026-11-26T10:00:00.000000Z", status="failed"),
            ]
        ),
    )
    manifest = head(table)
    assert str(manifest["width"].dtype) == "Int64" and str(manifest["height"].dtype) == "Int64"
    rows = named(manifest)
    assert (rows["ok"].width, rows["ok"].height) == (641, 479) and pd.isna(rows["broken"].width)
    schema = table.table().schema().as_arrow()
    assert str(schema.field("width").type) == "int64" and str(schema.field("keep").type) == "bool"
    assert str(by_day([record("x", "1" * 16)])["2026-11-26"]["width"].dtype) == "Int64"


def test_latest_record_of_an_image_wins_even_across_days(tmp_path: Path) -> None:
    old = record("a", "1" * 16, label="cats")
    moved = dict(
        old,
        uploaded_at="2026-11-27T09:00:00.000000Z",
        processed_at="2026-11-27T10:00:00.000000Z",
        label="dogs",
    )
    manifest = build_once(tmp_path, [old, moved])
    assert manifest["label"].tolist() == ["dogs"] and str(manifest["upload_day"].iloc[0]) == "2026-11-27"


def test_splits_follow_the_ratios_and_do_not_move_when_new_images_arrive(table: ManifestTable) -> None:
    rng = np.random.default_rng(1)
    first = [
        record(f"img-{i}", f"{int(rng.integers(0, 2**63)):016x}", at=f"2026-11-2{i % 3}T10:00:00")
        for i in range(600)
    ]
    rebuild(table, by_day(first))
    before = head(table).set_index("image_id")["split"]
    counts = before.value_counts(normalize=True)
    assert abs(counts["train"] - 0.8) < 0.05 and abs(counts["val"] - 0.1) < 0.04

    late = record("late-copy", first[5]["phash"], uploaded_at="2024-06-01T00:00:00.000000Z")  # earlier upload
    more = [
        record(f"new-{i}", f"{int(rng.integers(0, 2**63)):016x}", at="2026-11-27T10:00:00")
        for i in range(100)
    ]
    incremental(table, by_day([late, *more]))
    after = head(table).set_index("image_id")
    assert (after.loc[before.index, "split"] == before).all()
    late_row = after[after["source_key"].str.endswith("late-copy.jpg")].iloc[0]
    assert late_row["split"] == after.loc[first[5]["image_id"], "split"]
    assert late_row["dup_group"] == late_row.name  # the earlier upload names the group now
    assert checks.split_leaks(after.reset_index()) == {"sha256": [], "dup_group": []}


def test_split_hash_is_stable_across_runs_and_machines() -> None:
    # sha256("split:" + id): pinned values, so a library upgrade can never reshuffle the dataset.
    assert unit_interval(["abc"])[0] == pytest.approx(0.14984508970548235, abs=1e-15)
    codes = split_for(np.array([0.0, 0.79, 0.8, 0.89, 0.9, 0.999]), SplitRatios())
    assert [SPLITS[c] for c in codes] == ["train", "train", "val", "val", "test", "test"]


def test_a_run_rewrites_only_the_days_whose_rows_change(table: ManifestTable) -> None:
    a = record("a", BASE, at="2026-11-20T10:00:00")
    b = record("b", flip(BASE, 7, at=30), at="2026-11-21T10:00:00")  # 7 bits from a: its own group
    c = record("c", "0123456789abcdef", at="2026-11-22T10:00:00")
    rebuild(table, by_day([a, b, c]))

    copy = record("a-copy", flip(BASE, 2), at="2026-11-26T10:00:00")  # later: joins a's group, no rename
    joined = incremental(table, by_day([copy]))
    assert joined.days_rewritten == ["2026-11-26"]
    rows = named(head(table))
    assert rows["a-copy"].dup_group == rows["a"].image_id and rows["a"].dup_group_size == 2

    # 4 bits from a and 3 from b: bridges the two groups; b's group is renamed, so b's day is rewritten.
    bridge = record("bridge", flip(BASE, 4, at=30), at="2026-11-27T10:00:00")
    bridged = incremental(table, by_day([bridge]))
    assert bridged.days_rewritten == ["2026-11-21", "2026-11-27"]
    rows = named(head(table))
    assert {rows[n].dup_group for n in ("a", "b", "a-copy", "bridge")} == {rows["a"].image_id}
    assert {rows[n].split for n in ("a", "b", "a-copy", "bridge")} == {rows["a"].split}

    again = incremental(table, by_day([bridge]))
    assert again.unchanged and again.bytes_written == 0 and again.version == bridged.version


# ---------------------------------------------------------------- slices: a fraction of a day per file


def day_files(table: ManifestTable, day: str) -> dict[str, set[str]]:
    """Return the day's data files (path -> the names of the images in it)."""
    return {
        f.file_path: {
            key.rsplit("/", 1)[-1][:-4] for key in table.read_files([f], columns=["source_key"])["source_key"]
        }
        for f in table.data_files([day])
    }


def old_day(count: int) -> list[dict]:
    """Return a (the keeper-to-be of its group) and ``count - 1`` unrelated images, all on 2026-11-20."""
    rng = np.random.default_rng(7)
    a = record("a", BASE, at="2026-11-20T10:00:00", width=640, height=480, format="JPEG")
    return [a] + [
        record(f"other{i}", f"{int(rng.integers(0, 2**63)):016x}", at=f"2026-11-20T10:{i:02d}:01")
        for i in range(count - 1)
    ]


def better_copy_of_a() -> dict:
    """Return a lossless copy of a, uploaded later: it takes ``keep`` over, so a's row changes."""
    return record("png", flip(BASE, 3), at="2026-11-26T10:00:00", width=640, height=480, format="PNG")


def test_a_changed_row_of_an_old_day_rewrites_only_the_file_of_its_slice(
    table: ManifestTable, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(slices, "MAX_ROWS_PER_FILE", 2)
    rebuild(table, by_day(old_day(12)))
    before = day_files(table, "2026-11-20")
    assert len(before) > 1 and sum(len(names) for names in before.values()) == 12  # sliced, each row once
    (holding_a,) = [path for path, names in before.items() if "a" in names]

    result = incremental(table, by_day([better_copy_of_a()]))
    after = day_files(table, "2026-11-20")
    assert result.days_rewritten == ["2026-11-20", "2026-11-26"]
    assert set(before) - set(after) == {holding_a}  # the only file of the old day removed
    (added,) = set(after) - set(before)
    assert after[added] == before[holding_a]  # and written again with the same images
    rows = named(head(table))
    assert not rows["a"].keep and rows["png"].keep


def test_a_table_written_one_file_per_day_is_sliced_by_its_next_update(
    tmp_path: Path, table: ManifestTable, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(slices, "MAX_ROWS_PER_FILE", 10**6)  # as tables were written before slicing
    rebuild(table, by_day(old_day(12)))
    (whole_day,) = day_files(table, "2026-11-20")

    monkeypatch.setattr(slices, "MAX_ROWS_PER_FILE", 2)
    incremental(table, by_day([better_copy_of_a()]))
    sliced = day_files(table, "2026-11-20")
    assert whole_day not in sliced and len(sliced) > 1
    assert sorted(n for names in sliced.values() for n in names) == sorted(
        r["source_key"].rsplit("/", 1)[-1][:-4] for r in old_day(12)
    )

    # From now on a change of a's row rewrites its slice only.
    dog = record("dog", flip(BASE, 1), at="2026-11-27T10:00:00", label="dogs", width=10, height=10)
    incremental(table, by_day([dog]))
    now = day_files(table, "2026-11-20")
    assert set(sliced) - set(now) == {p for p, names in sliced.items() if "a" in names}
    assert len(set(now) - set(sliced)) == 1
    # And the table is what a full build of the same records makes.
    got = head(table)
    want = build_once(tmp_path, [*old_day(12), better_copy_of_a(), dog], name="fresh")
    got.attrs, want.attrs = {}, {}
    pd.testing.assert_frame_equal(got, want)


# ---------------------------------------------------------------- incremental == full (hypothesis)

_KINDS = ("new", "duplicate", "near", "bridge", "reprocessed", "reupload", "failed")


@st.composite
def arrival_runs(draw: st.DrawFn) -> list[list[tuple[str, int, int]]]:
    """Runs of arrivals: (kind, which earlier image it refers to, upload day 0..5)."""
    runs = draw(st.integers(min_value=2, max_value=3))
    return [
        draw(
            st.lists(
                st.tuples(st.sampled_from(_KINDS), st.integers(0, 1_000), st.integers(0, 5)),
                min_size=1,
                max_size=6,
            )
        )
        for _ in range(runs)
    ]


class World:
    """The record table (one current record per image) and the daily record files built from it."""

    def __init__(self) -> None:
        self.records: dict[str, dict[str, Any]] = {}
        self.files: dict[str, pd.DataFrame] = {}
        self.count = 0
        self.clock = 0

    def stamp(self, day: int) -> tuple[str, str]:
        self.clock += 1
        return (f"2026-11-{10 + day:02d}T10:{self.clock // 60:02d}:{self.clock % 60:02d}.000000Z",
                f"2026-11-{20:02d}T10:{self.clock // 60:02d}:{self.clock % 60:02d}.000000Z")  # fmt: skip

    def add(
        self,
        phash: str | None,
        day: int,
        *,
        sha256: str | None = None,
        failed: bool = False,
        rng: np.random.Generator | None = None,
    ) -> None:
        self.count += 1
        uploaded, processed = self.stamp(day)
        status = "failed" if failed else "processed"
        # Copies differ in label, size and format, so keepers and label conflicts move between runs.
        label = str(rng.choice(["cats", "dogs"])) if rng is not None else "cats"
        r = fake_record(f"img{self.count}", processed_at=processed, uploaded_at=uploaded, label=label,
                        phash=phash or "0" * 16, sha256=sha256, status=status)  # fmt: skip
        if rng is not None and not failed:
            side = int(rng.choice([320, 640]))
            r.update(width=side, height=side * 3 // 4, format=str(rng.choice(["JPEG", "PNG"])))
        self.records[r["image_id"]] = r

    def apply(self, run: list[tuple[str, int, int]], rng: np.random.Generator) -> dict[str, pd.DataFrame]:
        """Apply a run's arrivals, rewrite the record files of its days; return the changed ones."""
        before = dict(self.records)
        existing = [r for r in self.records.values() if r["status"] == "processed"]
        for kind, which, day in run:
            pick = existing[which % len(existing)] if existing else None
            if kind == "new" or pick is None:
                # Pairs 7 bits apart (two groups) so a later "bridge" can join them.
                base = int(rng.integers(0, 2**63))
                self.add(f"{base:016x}", day, rng=rng)
                self.add(f"{base ^ 0b1111111 << 20:016x}", day, rng=rng)
            elif kind == "duplicate":
                self.add(pick["phash"], day, sha256=pick["sha256"], rng=rng)
            elif kind == "near":
                self.add(f"{int(pick['phash'], 16) ^ 0b101 << 40:016x}", day, rng=rng)
            elif kind == "bridge":
                self.add(f"{int(pick['phash'], 16) ^ 0b1111 << 20:016x}", day, rng=rng)
            elif kind == "failed":
                self.add(None, day, failed=True)
            else:
                uploaded, processed = self.stamp(day)
                moved = dict(
                    pick, processed_at=processed, label="dogs" if pick["label"] == "cats" else "cats"
                )
                if kind == "reupload":
                    moved["uploaded_at"] = uploaded
                self.records[pick["image_id"]] = moved
        fresh = [r for image_id, r in self.records.items() if before.get(image_id) != r]
        days = sorted({r["uploaded_at"][:10] for r in fresh})
        first, last = days[0], days[-1]
        changed = {}
        for day, frame in by_day(
            r for r in self.records.values() if first <= r["uploaded_at"][:10] <= last
        ).items():
            if day not in self.files or not self.files[day].equals(frame):
                self.files[day] = changed[day] = frame
        return changed


@pytest.mark.slow
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    runs=arrival_runs(),
    seed=st.integers(0, 2**16),
    # Rows per file before a day is sliced, per run: 4,096 keeps these days one file each (as tables
    # written before slicing), 1-3 slice them, and changing it between runs re-slices old days.
    rows_per_file=st.lists(st.sampled_from([1, 2, 3, slices.MAX_ROWS_PER_FILE]), min_size=3, max_size=3),
)
def test_incremental_runs_equal_a_full_rebuild_after_every_run(
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
    runs: list[list[tuple[str, int, int]]],
    seed: int,
    rows_per_file: list[int],
) -> None:
    root = tmp_path_factory.mktemp("equal")
    inc = ManifestTable(local_catalog(root / "incremental"), "image_etl")
    full = ManifestTable(local_catalog(root / "full"), "image_etl")
    world = World()
    rng = np.random.default_rng(seed)
    for number, (run, limit) in enumerate(zip(runs, rows_per_file, strict=False)):
        monkeypatch.setattr(slices, "MAX_ROWS_PER_FILE", limit)
        changed = world.apply(run, rng)
        if number == 0:
            rebuild(inc, changed)
        else:
            incremental(inc, changed)
        # Today's way: everything rebuilt from every record file, splits carried from the last version.
        rebuild(full, world.files)
        # The index the next run starts from, out of the cache, is the one the table's files hold.
        cached, read = (
            inc.read_index(),
            ManifestTable(inc.catalog, "image_etl", index_cache=False).read_index(),
        )
        assert inc.index_files_read == [] and len(read.image_key) == len(cached.image_key)
        for name in read.__dataclass_fields__:
            np.testing.assert_array_equal(getattr(cached, name), getattr(read, name), name)
        got, want = head(inc), head(full)
        got.attrs, want.attrs = {}, {}
        pd.testing.assert_frame_equal(got, want)
        # One keeper per group that has a processed member, after every run.
        processed = got[got["status"] == "processed"]
        assert (processed.groupby("dup_group")["keep"].sum() == 1).all()
        assert not got.loc[got["status"] == "failed", "keep"].any()
    assert checks.split_leaks(head(inc)) == {"sha256": [], "dup_group": []}


# ---------------------------------------------------------------- concurrent writers


def test_two_writers_at_once_never_lose_a_commit(tmp_path: Path) -> None:
    catalog_dir = tmp_path / "shared"
    first = ManifestTable(local_catalog(catalog_dir), "image_etl")
    rebuild(first, by_day([record("seed", BASE, at="2026-11-20T10:00:00")]))
    batches = {
        "x": by_day(
            [
                record(f"x{i}", f"{(i * 0x9E3779B97F4A7C15) % 2**64:016x}", at="2026-11-25T10:00:00")
                for i in range(20)
            ]
        ),
        "y": by_day(
            [
                record(f"y{i}", f"{(i * 0xC2B2AE3D27D4EB4F) % 2**64:016x}", at="2026-11-26T10:00:00")
                for i in range(20)
            ]
        ),
    }
    barrier = threading.Barrier(2)
    results: dict[str, Any] = {}

    def write(name: str) -> None:
        writer = ManifestTable(local_catalog(catalog_dir), "image_etl")
        writer.table()
        barrier.wait()
        results[name] = incremental(writer, batches[name])

    threads = [threading.Thread(target=write, args=(name,)) for name in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    final = ManifestTable(local_catalog(catalog_dir), "image_etl")
    rows = head(final)
    assert len(rows) == 41  # the seed and both batches: neither commit was lost
    assert {results["x"].version, results["y"].version} <= {v.name for v in final.versions()}
    assert max(results["x"].attempts, results["y"].attempts) >= 1
