"""What a duplicate group decides about its members: the one a training set keeps, and label conflicts.

**Keeper.** Per duplicate group exactly one processed member has ``keep = True``, chosen by, in
order: the most pixels (source width x height: the most information), a lossless source format
over a lossy one (:data:`~image_etl.dataset.rules.LOSSLESS_FORMATS`: no compression artefacts),
the earliest upload (the original rather than a re-post), then the smallest ``image_id`` (a total
order, so every build picks the same one). An image in no group is its own group, so it is kept;
a failed image is never kept, and a group whose members all failed has no keeper. A new member
that wins the order takes ``keep`` over, and the old keeper's row is rewritten with it.

**Label conflict.** A group whose members carry more than one distinct label (the same picture
uploaded as "cat" and as "dog", byte for byte or as a near copy) is a label conflict: every member
gets the ``label_conflict`` flag and the sorted competing labels in ``conflicting_labels``.
Unlabelled members do not compete (no label is not a second opinion).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd


def keepers(
    group: np.ndarray,
    *,
    processed: np.ndarray,
    pixels: np.ndarray,
    lossless: np.ndarray,
    uploaded_us: np.ndarray,
    ids: np.ndarray,
) -> np.ndarray:
    """Return ``keep`` per image: True for exactly one processed member of each group (see the module).

    :param group: group number per image (any integers; equal means same group).
    :param processed: whether the image was processed (failed images are never kept).
    :param pixels: source width x height (0 when unknown).
    :param lossless: whether the source format is lossless.
    :param uploaded_us: upload time key (int64 microseconds).
    :param ids: image id strings (object array): the last tie-break.
    """
    n = len(group)
    keep = np.zeros(n, dtype=bool)
    if not n:
        return keep
    processed = np.asarray(processed, dtype=bool)
    pixels = np.asarray(pixels, dtype=np.int64)
    lossless = np.asarray(lossless, dtype=bool)
    uploaded_us = np.asarray(uploaded_us, dtype=np.int64)
    # Best first within each group; image_id only where the rest ties (sorting 10M ids is not cheap).
    order = np.lexsort((uploaded_us, ~lossless, -pixels, ~processed, group))
    g = group[order]
    first = np.concatenate(([True], g[1:] != g[:-1]))
    best = order[first]
    keep[best] = True
    same_key = (
        (g[1:] == g[:-1])
        & (processed[order][1:] == processed[order][:-1])
        & (pixels[order][1:] == pixels[order][:-1])
        & (lossless[order][1:] == lossless[order][:-1])
        & (uploaded_us[order][1:] == uploaded_us[order][:-1])
    )
    for start in np.flatnonzero(first[:-1] & same_key):
        end = start + 1
        while end < n - 1 and same_key[end]:
            end += 1
        tied = order[start : end + 1]
        keep[tied] = False
        keep[tied[int(np.argmin(np.asarray([str(i) for i in ids[tied]])))]] = True
    return keep & processed


@dataclass(frozen=True)
class LabelConflicts:
    """The groups with competing labels: per image an index into :attr:`labels` (-1: no conflict)."""

    of: np.ndarray  # int32 per image
    #: The sorted competing labels of each conflicting group.
    labels: list[list[str]]

    def lists(self, positions: np.ndarray | None = None) -> list[list[str]]:
        """Return the competing labels per image (an empty list where there is no conflict).

        :param positions: only these images (default all).
        """
        of = self.of if positions is None else self.of[positions]
        return [self.labels[i] if i >= 0 else [] for i in of.tolist()]

    @property
    def images(self) -> int:
        return int((self.of >= 0).sum())


def label_codes(labels: Sequence[object] | np.ndarray | pd.Series, names: dict[str, int]) -> np.ndarray:
    """Return an int32 code per label (-1 for none), adding unseen labels to ``names`` (label -> code).

    :param labels: label strings; None, NaN and "" mean unlabelled.
    :param names: the codes handed out so far (updated in place), so codes agree across days.
    """
    import pandas as pd

    series = pd.Series(np.asarray(labels, dtype=object))
    codes, uniques = pd.factorize(series.replace("", None), use_na_sentinel=True)
    lookup = np.array([names.setdefault(str(u), len(names)) for u in uniques] + [-1], dtype=np.int32)
    return lookup[np.where(codes >= 0, codes, len(uniques))]


def label_conflicts(group: np.ndarray, codes: np.ndarray, names: dict[str, int]) -> LabelConflicts:
    """Return which images sit in a group with more than one distinct label (see the module).

    :param group: group number per image (non-negative integers).
    :param codes: label code per image (:func:`label_codes`; -1 unlabelled).
    :param names: label -> code, as :func:`label_codes` filled it.
    """
    n = len(group)
    of = np.full(n, -1, dtype=np.int32)
    labelled = codes >= 0
    if not labelled.any():
        return LabelConflicts(of, [])
    width = np.int64(max(len(names), 1))
    pairs = np.unique(group[labelled].astype(np.int64) * width + codes[labelled].astype(np.int64))
    pair_group, pair_label = pairs // width, pairs % width
    starts = np.flatnonzero(np.concatenate(([True], pair_group[1:] != pair_group[:-1])))
    counts = np.diff(np.append(starts, len(pairs)))
    conflicted = np.flatnonzero(counts > 1)
    if not len(conflicted):
        return LabelConflicts(of, [])
    by_code = {code: name for name, code in names.items()}
    labels = [
        sorted(by_code[int(c)] for c in pair_label[starts[i] : starts[i] + counts[i]]) for i in conflicted
    ]
    conflict_groups = pair_group[starts[conflicted]]  # sorted, as pairs are
    at = np.searchsorted(conflict_groups, group.astype(np.int64))
    hit = (at < len(conflict_groups)) & (conflict_groups[np.minimum(at, len(conflict_groups) - 1)] == group)
    of[hit] = at[hit].astype(np.int32)
    return LabelConflicts(of, labels)
