"""The slice rule: how many files a day is split into, and which files a change rewrites."""

from __future__ import annotations

import numpy as np
import pytest

from image_etl.dataset import slices


def test_a_day_is_one_file_until_it_outgrows_a_file_then_files_hold_half_to_all_of_the_limit() -> None:
    limit = slices.MAX_ROWS_PER_FILE
    assert slices.slice_bits(0) == slices.slice_bits(limit) == 0
    assert slices.slice_bits(limit + 1) == 1
    for rows in (limit + 1, 3 * limit, 27_400, 200_000):
        per_file = rows / 2 ** slices.slice_bits(rows)
        assert limit / 2 < per_file <= limit
    assert slices.slice_bits(10**9) == slices.MAX_BITS  # beyond the cap, files grow instead


def test_a_slice_is_a_key_range_and_splits_into_two_at_one_more_bit() -> None:
    key = np.array([0, 2**62, 2**63, 2**64 - 1], dtype=np.uint64)
    assert slices.slice_of(key, 0).tolist() == [0, 0, 0, 0]
    assert slices.slice_of(key, 1).tolist() == [0, 0, 1, 1]
    assert slices.slice_of(key, 2).tolist() == [0, 1, 2, 3]
    rng = np.random.default_rng(1)
    many = rng.integers(0, 2**64 - 1, size=1000, dtype=np.uint64)
    np.testing.assert_array_equal(slices.slice_of(many, 3) // 2, slices.slice_of(many, 2))
    with pytest.raises(ValueError, match="slice bits"):
        slices.slice_of(key, slices.MAX_BITS + 1)


def test_the_closure_rewrites_only_the_files_of_changed_slices_and_whole_files() -> None:
    # Day in 4 slices; files 0-3 one slice each, so a change in slice 2 rewrites file 2 only.
    row_slice = np.array([0, 0, 1, 2, 2, 3])
    assert [a.tolist() for a in slices.closure(np.array([2]), row_slice, np.array([0, 0, 1, 2, 2, 3]))] == [
        [2],
        [2],
    ]
    # An old whole-day file (file 7) holds every slice: it is rewritten whole, into every slice.
    files, written = slices.closure(np.array([1]), row_slice, np.full(6, 7))
    assert (files.tolist(), written.tolist()) == ([7], [0, 1, 2, 3])
    # Files of a coarser split (file 5 = slices 2 and 3): both its slices and nothing else.
    files, written = slices.closure(np.array([3]), row_slice, np.array([4, 4, 4, 5, 5, 5]))
    assert (files.tolist(), written.tolist()) == ([5], [2, 3])
    # A slice nobody stores yet (a new image): written, no file rewritten.
    files, written = slices.closure(np.array([1]), np.array([0, 2]), np.array([0, 1]))
    assert (files.tolist(), written.tolist()) == ([], [1])
