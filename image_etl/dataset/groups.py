"""Duplicate-group names and splits: a group never spans two splits, and splits are sticky.

A group is named after its earliest member (by upload time, then image key): an image that
arrives later joins an existing group without renaming it. A group that already had members with a
split keeps the split of its earliest such member, so a rebuild, a backfill, a late record or a
new near-copy never moves an image; only a new image that bridges two groups from different splits
moves the later group. A group with no earlier split gets one from a stable hash of its name.

Failed images get no split (they are not in any training set): they stay in the manifest with
their reason, and a failed image that is later processed gets its group's split then.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from image_etl.dataset.rules import SPLITS, SplitRatios

#: Split codes as the index keeps them: position in :data:`SPLITS`; no split yet is -1.
NO_SPLIT = -1


def split_codes(names: Sequence[str | None] | np.ndarray) -> np.ndarray:
    """Return int8 codes (index into :data:`SPLITS`, else -1) for split names."""
    lookup: dict[str | None, int] = {name: code for code, name in enumerate(SPLITS)}
    return np.fromiter((lookup.get(n, NO_SPLIT) for n in names), dtype=np.int8, count=len(names))


def unit_interval(ids: Sequence[str] | np.ndarray) -> np.ndarray:
    """Return a stable number in [0, 1) per id: the first 8 bytes of sha256("split:" + id).

    sha256 (not Python's or pandas' hash) so the value never changes across versions or machines.
    """
    scale = float(2**64)
    return np.fromiter(
        (
            int.from_bytes(hashlib.sha256(b"split:" + str(i).encode()).digest()[:8], "big") / scale
            for i in ids
        ),
        dtype=np.float64,
        count=len(ids),
    )


def split_for(u: np.ndarray, ratios: SplitRatios) -> np.ndarray:
    """Return split codes for numbers in [0, 1) by cumulative ratio (train, then val, then test)."""
    bounds = np.array([ratios.train, ratios.train + ratios.val])
    return np.searchsorted(bounds, u, side="right").astype(np.int8)


def assign_groups(
    components: np.ndarray,
    order_time: np.ndarray,
    order_key: np.ndarray,
    ids: np.ndarray,
    previous_split: np.ndarray,
    ratios: SplitRatios,
    *,
    splittable: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Return each image's group name (as the position of the naming image) and split code.

    :param components: component number per image (:func:`image_etl.dataset.duplicates.duplicate_components`).
    :param order_time: upload time key per image (int64 microseconds); earliest names the group.
    :param order_key: image key per image (uint64): breaks ties of ``order_time``.
    :param ids: image id strings (object array): the group's name is its naming image's id.
    :param previous_split: the image's split code in the version before (-1 for none).
    :param ratios: train/val/test fractions for groups that have no split yet.
    :param splittable: per image, whether it gets a split (False: failed images, which get
        :data:`NO_SPLIT` and whose old split no longer counts); default all.
    :return: (name position int64, split code int8) per image.
    """
    n = len(components)
    if not n:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int8)
    order = np.lexsort((order_key, order_time, components))
    sorted_components = components[order]
    first = np.concatenate(([True], sorted_components[1:] != sorted_components[:-1]))
    group_of_sorted = np.cumsum(first) - 1
    group_first = order[first]  # naming image of each group
    name = np.empty(n, dtype=np.int64)
    name[order] = group_first[group_of_sorted]
    if splittable is not None:
        previous_split = np.where(splittable, previous_split, NO_SPLIT).astype(np.int8)
    # The earliest member that had a split decides the group's split.
    had = previous_split[order] != NO_SPLIT
    group_split = np.full(len(group_first), NO_SPLIT, dtype=np.int8)
    if had.any():
        kept_groups = group_of_sorted[had]
        kept_first = np.concatenate(([True], kept_groups[1:] != kept_groups[:-1]))
        group_split[kept_groups[kept_first]] = previous_split[order][had][kept_first]
    fresh = np.flatnonzero(group_split == NO_SPLIT)
    if len(fresh):
        group_split[fresh] = split_for(unit_interval(ids[group_first[fresh]]), ratios)
    split = np.empty(n, dtype=np.int8)
    split[order] = group_split[group_of_sorted]
    if splittable is not None:
        split[~splittable] = NO_SPLIT
    return name, split
