"""Near-duplicate search over 64-bit pHashes, without comparing all pairs, and union-find over matches.

Two searches share one idea. 64 bits are cut into ``d + m`` blocks: two hashes at most ``d`` bits
apart agree exactly on at least ``m`` blocks, so one exact-match table per ``m``-subset of blocks
finds every candidate pair. :func:`near_duplicate_pairs` finds all pairs among a set (a full
build, or the images of the groups a run touches); :func:`near_duplicate_query` finds, for a few
new hashes, every close hash among millions of old ones without sorting the old ones.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from itertools import combinations, pairwise
from math import comb

import numpy as np


def block_tables(max_distance: int, count: int) -> list[list[tuple[int, int]]]:
    """Return the exact-match tables of a near-duplicate search, each as its blocks ``(shift, width)``.

    Split 64 bits into ``b = max_distance + m`` blocks: two hashes at most ``max_distance`` apart
    differ in at most that many blocks, so (pigeonhole) they agree exactly on at least ``m`` of
    them, i.e. on the union of some ``m``-subset. One table per subset finds every such pair. ``m``
    trades the number of tables (one sort each) against key width (bucket sizes); the cheapest
    estimate for ``count`` hashes wins (1M hashes, distance 6: 84 tables of 21-bit keys).

    :param max_distance: largest Hamming distance that counts as a near duplicate (0..31).
    :param count: number of distinct hashes to search.
    :return: one list of blocks per table; a block is bits ``[shift, shift + width)`` of the hash.
    """
    if not 0 <= max_distance < 32:
        raise ValueError(f"near-duplicate distance must be in 0..31, got {max_distance}")
    if max_distance == 0:
        return []
    best: tuple[float, int] | None = None
    for m in range(1, 64 - max_distance + 1):
        blocks = max_distance + m
        key_bits = 64 * m / blocks
        # Measured on one core: ~60 ns a hash per table (key + sort), ~80 ns a candidate pair.
        pairs = count * count / 2.0 ** (key_bits + 1)
        cost = comb(blocks, m) * (count * 6e-8 + pairs * 8e-8)
        if best is None or cost < best[0]:
            best = (cost, m)
    assert best is not None
    m = best[1]
    edges = np.linspace(0, 64, max_distance + m + 1).round().astype(int)
    spans = [(int(lo), int(hi - lo)) for lo, hi in pairwise(edges)]
    return [[spans[i] for i in subset] for subset in combinations(range(len(spans)), m)]


# Candidate pairs are checked in slices of this many, so memory stays flat whatever the buckets.
_PAIR_CHUNK = 4_000_000


def _runs_pairs(starts: np.ndarray, sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return every (i, j), i < j, of positions inside each run ``[start, start + size)``."""
    offsets = np.repeat(starts, sizes)
    firsts = np.repeat(np.cumsum(sizes) - sizes, sizes)
    positions = offsets + (np.arange(int(sizes.sum()), dtype=np.int64) - firsts)
    later = np.repeat(starts + sizes, sizes) - positions - 1
    a = np.repeat(positions, later)
    b = a + 1 + (np.arange(int(later.sum()), dtype=np.int64) - np.repeat(np.cumsum(later) - later, later))
    return a, b


def _sorted_by_key(
    parts: dict[tuple[int, int], np.ndarray], blocks: list[tuple[int, int]], count: int
) -> tuple[np.ndarray, np.ndarray]:
    """Return (keys sorted, original positions) for one table: its blocks' bits packed into one key."""
    key = np.zeros(count, dtype=np.uint64)
    offset = 0
    for shift, width in blocks:
        key |= parts[(shift, width)] << np.uint64(offset)
        offset += width
    index_bits = max(1, (count - 1).bit_length())
    if offset + index_bits <= 64:
        # Sorting (key, position) packed in one uint64 is ~5x faster than an argsort of the key.
        key <<= np.uint64(index_bits)
        key |= np.arange(count, dtype=np.uint64)
        key.sort()
        return key >> np.uint64(index_bits), (key & np.uint64((1 << index_bits) - 1)).astype(np.int64)
    order = np.argsort(key, kind="stable")
    return key[order], order


def near_duplicate_pairs(hashes: np.ndarray, *, max_distance: int) -> tuple[np.ndarray, np.ndarray]:
    """Return index pairs (i < j) of hashes at most ``max_distance`` bits apart, without comparing all pairs.

    Each table sorts the hashes by one key (see :func:`block_tables`) and checks only the pairs
    inside a bucket of equal keys; a pair found by several tables is reported once.

    :param hashes: distinct uint64 hashes.
    :param max_distance: largest Hamming distance that counts.
    :return: (i, j) int64 arrays into ``hashes``, sorted.
    """
    hashes = np.asarray(hashes, dtype=np.uint64)
    tables = block_tables(max_distance, len(hashes))
    # Each block's bits are cut out once and reused by every table that contains the block.
    parts = {
        span: (hashes >> np.uint64(span[0])) & np.uint64((1 << span[1]) - 1)
        for span in sorted({span for blocks in tables for span in blocks})
    }
    found: list[np.ndarray] = []
    for blocks in tables:
        sorted_keys, order = _sorted_by_key(parts, blocks, len(hashes))
        same = np.flatnonzero(sorted_keys[1:] == sorted_keys[:-1])  # few: positions i with key[i] == key[i+1]
        if not len(same):
            continue
        run_start = same[np.concatenate(([True], np.diff(same) > 1))]
        run_last = same[np.concatenate((np.diff(same) > 1, [True]))] + 1
        starts, sizes = run_start, run_last - run_start + 1
        # Slices of runs with a bounded pair count; one huge run is a slice of its own.
        slice_id = np.cumsum(sizes * (sizes - 1) // 2) // _PAIR_CHUNK
        for chunk in np.split(np.arange(len(starts)), np.flatnonzero(np.diff(slice_id)) + 1):
            a, b = _runs_pairs(starts[chunk], sizes[chunk])
            ia, ib = order[a], order[b]
            close = np.bitwise_count(hashes[ia] ^ hashes[ib]) <= max_distance
            lo, hi = np.minimum(ia[close], ib[close]), np.maximum(ia[close], ib[close])
            found.append(lo.astype(np.uint64) << np.uint64(32) | hi.astype(np.uint64))
    if not found:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    pairs = np.unique(np.concatenate(found))
    return (pairs >> np.uint64(32)).astype(np.int64), (pairs & np.uint64(0xFFFFFFFF)).astype(np.int64)


def connected_components(count: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Return, for each of ``count`` nodes, the smallest node of its component (edges ``a[k] - b[k]``).

    Union-find in vectorized rounds: hook every root onto the smaller root across an edge, then
    jump pointers until each node points at its root; a few rounds suffice for duplicate groups.
    """
    parent = np.arange(count, dtype=np.int64)
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    while len(a):
        ra, rb = parent[a], parent[b]
        differ = ra != rb
        if not differ.any():
            break
        lo, hi = np.minimum(ra[differ], rb[differ]), np.maximum(ra[differ], rb[differ])
        np.minimum.at(parent, hi, lo)
        while True:
            jumped = parent[parent]
            if np.array_equal(jumped, parent):
                break
            parent = jumped
        a, b = a[differ], b[differ]
    return parent


def _query_blocks(max_distance: int, old: int, new: int) -> list[list[tuple[int, int]]]:
    """Return the tables of a query search: ``new`` hashes against ``old`` ones (see :func:`block_tables`).

    A query table costs one pass over the old hashes (key and look-up, ~6 ns a hash) plus the
    candidates it finds (old * new / 2**key_bits, ~80 ns each); the cheapest ``m`` wins (10M old,
    1,000 new, distance 6: 28 tables of 16-bit keys).
    """
    if not 0 <= max_distance < 32:
        raise ValueError(f"near-duplicate distance must be in 0..31, got {max_distance}")
    best: tuple[float, int] | None = None
    for m in range(1, 64 - max_distance + 1):
        blocks = max_distance + m
        key_bits = 64 * m / blocks
        if key_bits > _LOOKUP_BITS:
            break
        pairs = old * new / 2.0**key_bits
        cost = comb(blocks, m) * (old * 6e-9 + pairs * 8e-8)
        if best is None or cost < best[0]:
            best = (cost, m)
    m = best[1] if best else 1
    edges = np.linspace(0, 64, max_distance + m + 1).round().astype(int)
    spans = [(int(lo), int(hi - lo)) for lo, hi in pairwise(edges)]
    return [[spans[i] for i in subset] for subset in combinations(range(len(spans)), m)]


#: Query keys index a boolean look-up table of 2**bits entries (16 MB at 24 bits).
_LOOKUP_BITS = 24


class _OldKeys:
    """The old hashes' block values, cut out once (narrowest dtype) and kept moved to where the
    tables' keys want them, so each table's pass over millions of old hashes is one OR into a reused
    buffer, one gather from a look-up table that fits in cache and one scan for the hits."""

    def __init__(self, old: np.ndarray) -> None:
        self.old = old
        self._planes: dict[tuple[int, int], np.ndarray] = {}
        self._moved: dict[tuple[int, int, int, type], np.ndarray] = {}
        self._buffers: dict[type, np.ndarray] = {}

    def plane(self, span: tuple[int, int]) -> np.ndarray:
        """Return bits ``[shift, shift + width)`` of every old hash, in the narrowest unsigned dtype."""
        if span not in self._planes:
            shift, width = span
            if width == 8 and shift % 8 == 0 and sys.byteorder == "little":
                # A whole byte: a strided view of the hashes, copied once into a contiguous plane.
                values = np.ascontiguousarray(self.old.view(np.uint8)[shift // 8 :: 8])
            else:
                narrow = np.uint8 if width <= 8 else np.uint16 if width <= 16 else np.uint32
                values = ((self.old >> np.uint64(shift)) & np.uint64((1 << width) - 1)).astype(narrow)
            self._planes[span] = values
        return self._planes[span]

    def moved(self, span: tuple[int, int], offset: int, dtype: type) -> np.ndarray:
        """Return :meth:`plane` as ``dtype``, shifted left by ``offset`` bits."""
        name = (*span, offset, dtype)
        if name not in self._moved:
            values: np.ndarray = self.plane(span).astype(dtype)
            np.left_shift(values, dtype(offset), out=values)
            self._moved[name] = values
        return self._moved[name]

    def key(self, blocks: list[tuple[int, int]], dtype: type) -> np.ndarray:
        """Return one table's key of every old hash (in a buffer the next call reuses)."""
        if dtype not in self._buffers:
            self._buffers[dtype] = np.empty(len(self.old), dtype=dtype)
        key = self._buffers[dtype]
        first, *rest = blocks
        if not rest:
            key[:] = self.plane(first)
            return key
        offset = first[1]
        # The first block needs no shift: its narrow plane is widened inside the OR's loop.
        np.bitwise_or(self.moved(rest[0], offset, dtype), self.plane(first), out=key)
        offset += rest[0][1]
        for span in rest[1:]:
            key |= self.moved(span, offset, dtype)
            offset += span[1]
        return key


def _compose_key(hashes: np.ndarray, blocks: Sequence[tuple[int, int]]) -> np.ndarray:
    """Return each hash's key: its ``(shift, width)`` bit blocks packed side by side, low first."""
    key = np.zeros(len(hashes), dtype=np.uint64)
    offset = 0
    for shift, width in blocks:
        key |= ((hashes >> np.uint64(shift)) & np.uint64((1 << width) - 1)) << np.uint64(offset)
        offset += width
    return key


def near_duplicate_query(
    old: np.ndarray, new: np.ndarray, *, max_distance: int
) -> tuple[np.ndarray, np.ndarray]:
    """Return index pairs (i into ``old``, j into ``new``) of hashes at most ``max_distance`` bits apart.

    One pass over ``old`` per table: its key looks up a boolean table of the new keys, so the old
    hashes are never sorted; only their few hits are matched against the (sorted) new keys.

    :param old: uint64 hashes already in the table (millions).
    :param new: uint64 hashes of a run's new images (thousands).
    :param max_distance: largest Hamming distance that counts.
    :return: (i, j) int64 arrays, sorted by i then j, each pair once.
    """
    old = np.ascontiguousarray(old, dtype=np.uint64)
    new = np.asarray(new, dtype=np.uint64)
    if not len(old) or not len(new):
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    if max_distance == 0:
        # One exact-match table over all 64 bits.
        tables: list[list[tuple[int, int]]] = [[(0, 64)]]
    else:
        tables = _query_blocks(max_distance, len(old), len(new))
    old_keys = _OldKeys(old)
    found: list[np.ndarray] = []
    for blocks in tables:
        bits = sum(width for _, width in blocks)
        new_key = _compose_key(new, blocks)
        if bits <= _LOOKUP_BITS:
            key_dtype = np.uint16 if bits <= 16 else np.uint32
            old_key = old_keys.key(blocks, key_dtype)
            lookup = np.zeros(1 << bits, dtype=bool)
            lookup[new_key] = True
            hits = np.flatnonzero(lookup[old_key])
        else:
            # Wide keys: the old hashes' key is cut from the same blocks as the new ones' (a whole
            # 64-bit block is the hash itself).
            old_key = old if blocks == [(0, 64)] else _compose_key(old, blocks)
            hits = np.flatnonzero(np.isin(old_key, new_key))
        if not len(hits):
            continue
        order = np.argsort(new_key, kind="stable")
        if bits <= 16:
            # Each hit's run of equal new keys, from a count per key value (no binary search).
            per_key = np.bincount(new_key.astype(np.int64), minlength=1 << bits)
            hit_keys = old_key[hits]
            counts = per_key[hit_keys]
            lo = (np.cumsum(per_key) - per_key)[hit_keys]
        else:
            sorted_new = new_key[order]
            hit_keys = old_key[hits].astype(np.uint64)
            lo = np.searchsorted(sorted_new, hit_keys, side="left")
            counts = np.searchsorted(sorted_new, hit_keys, side="right") - lo
        i = np.repeat(hits, counts)
        j = order[
            np.repeat(lo, counts)
            + (np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts))
        ]
        close = np.bitwise_count(old[i] ^ new[j]) <= max_distance
        found.append(i[close].astype(np.int64) * len(new) + j[close].astype(np.int64))
    if not found:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    pairs = np.unique(np.concatenate(found))
    return pairs // len(new), pairs % len(new)


def duplicate_components(
    phash: np.ndarray,
    phash_valid: np.ndarray,
    sha: np.ndarray,
    sha_valid: np.ndarray,
    *,
    max_distance: int,
) -> np.ndarray:
    """Return a component number per image: same sha256, same pHash, or pHashes within ``max_distance``.

    Exact duplicates collapse first (equal pHash values), so the near-duplicate search only sees
    distinct hashes; equal sha256 then joins whatever the hashes did not (identical bytes always
    hash alike, so normally nothing). Images with neither hash (failed ones) stay alone.

    :param phash: uint64 pHash keys; ``phash_valid`` marks the real ones.
    :param sha: uint64 sha256 keys (first 8 bytes); ``sha_valid`` marks the real ones.
    :param max_distance: largest Hamming distance that counts.
    :return: int64 array; images of one group share a number.
    """
    n = len(phash)
    phash_valid = np.asarray(phash_valid, dtype=bool)
    uniques, codes = np.unique(np.asarray(phash, dtype=np.uint64)[phash_valid], return_inverse=True)
    n_phash = len(uniques)
    if max_distance > 0 and n_phash > 1:
        i, j = near_duplicate_pairs(uniques, max_distance=max_distance)
        hash_component = connected_components(n_phash, i, j)
    else:
        hash_component = np.arange(n_phash, dtype=np.int64)
    # Node space: distinct pHashes, then one node per image (for images without a pHash).
    component = n_phash + np.arange(n, dtype=np.int64)
    component[phash_valid] = hash_component[codes.reshape(-1)]
    sha_valid = np.asarray(sha_valid, dtype=bool)
    if sha_valid.any():
        sha_uniques, sha_codes = np.unique(np.asarray(sha, dtype=np.uint64)[sha_valid], return_inverse=True)
        members = np.flatnonzero(sha_valid)
        smallest = np.full(len(sha_uniques), np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(smallest, sha_codes, component[members])
        target = smallest[sha_codes]
        apart = component[members] != target
        if apart.any():
            roots = connected_components(n_phash + n, component[members][apart], target[apart])
            component = roots[component]
    return component
