"""The keeper of a duplicate group and label conflicts, as pure functions over group numbers."""

from __future__ import annotations

import numpy as np

from image_etl.dataset.members import keepers, label_codes, label_conflicts


def keep_of(**columns: list) -> list[bool]:
    n = len(columns["group"])
    defaults = {
        "processed": [True] * n,
        "pixels": [100] * n,
        "lossless": [False] * n,
        "uploaded_us": [0] * n,
        "ids": [f"id{i}" for i in range(n)],
    }
    values = {**defaults, **columns}
    return keepers(
        np.asarray(values["group"]),
        processed=np.asarray(values["processed"]),
        pixels=np.asarray(values["pixels"]),
        lossless=np.asarray(values["lossless"]),
        uploaded_us=np.asarray(values["uploaded_us"]),
        ids=np.asarray(values["ids"], dtype=object),
    ).tolist()


def test_the_largest_image_is_kept_before_format_and_age() -> None:
    # The big one is lossy and the newest: pixels decide first.
    assert keep_of(
        group=[0, 0, 0], pixels=[100, 400, 100], lossless=[True, False, True], uploaded_us=[1, 3, 2]
    ) == [False, True, False]


def test_lossless_wins_a_tie_on_pixels_then_the_earliest_upload_then_the_image_id() -> None:
    assert keep_of(group=[0, 0], lossless=[False, True], uploaded_us=[1, 2]) == [False, True]
    assert keep_of(group=[0, 0, 0], uploaded_us=[5, 2, 9]) == [False, True, False]
    # Everything ties: the smallest image_id, wherever it sits.
    assert keep_of(group=[0, 0, 0], ids=["c", "a", "b"]) == [False, True, False]


def test_exactly_one_keeper_per_group_and_none_for_failed_images() -> None:
    rng = np.random.default_rng(3)
    group = rng.integers(0, 40, size=300)
    processed = rng.random(300) > 0.1
    keep = np.asarray(
        keep_of(
            group=group.tolist(),
            processed=processed.tolist(),
            pixels=rng.integers(0, 3, size=300).tolist(),  # many ties
            uploaded_us=rng.integers(0, 3, size=300).tolist(),
        )
    )
    assert not keep[~processed].any()
    for g in np.unique(group):
        members = group == g
        assert keep[members].sum() == (1 if processed[members].any() else 0)


def test_a_singleton_is_kept_unless_it_failed() -> None:
    assert keep_of(group=[0, 1], processed=[True, False]) == [True, False]


def test_groups_with_two_labels_conflict_and_unlabelled_members_do_not_compete() -> None:
    names: dict[str, int] = {}
    codes = label_codes(["dogs", "cats", "cats", None, "", "birds", "birds"], names)
    group = np.array([0, 0, 1, 1, 2, 3, 3])
    conflicts = label_conflicts(group, codes, names)
    assert conflicts.lists() == [["cats", "dogs"], ["cats", "dogs"], [], [], [], [], []]
    assert conflicts.images == 2


def test_label_codes_agree_across_calls() -> None:
    names: dict[str, int] = {}
    first = label_codes(["cats", "dogs"], names)
    second = label_codes(["dogs", "emus", None], names)
    assert second[0] == first[1] and second[2] == -1 and len(names) == 3
