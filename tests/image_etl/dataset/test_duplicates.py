"""The near-duplicate searches find exactly what brute force finds, and the default distance separates
edited copies from other pictures (measured with the resizer's own pHash)."""

from __future__ import annotations

from itertools import combinations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import ImageEnhance, ImageFilter

from image_etl.dataset.duplicates import near_duplicate_pairs, near_duplicate_query
from image_etl.dataset.rules import ManifestConfig
from lambda_resizer.core import process_image
from tests.imaging import encode, photo_like


def hashes_with_copies(seed: int, n: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 2**63, size=n, dtype=np.int64).astype(np.uint64)
    noise = np.zeros(n, dtype=np.uint64)
    for _ in range(8):
        noise |= np.uint64(1) << rng.integers(0, 64, size=n).astype(np.uint64)
    return np.unique(np.concatenate([base, base ^ noise, base[: n // 6] ^ np.uint64(0b1011)]))


def test_near_duplicate_search_finds_exactly_the_pairs_brute_force_finds() -> None:
    hashes = hashes_with_copies(3, 300)
    for distance in (0, 3, 6, 9):
        got = set(zip(*near_duplicate_pairs(hashes, max_distance=distance), strict=True))
        want = {
            (i, j)
            for i, j in combinations(range(len(hashes)), 2)
            if int(hashes[i] ^ hashes[j]).bit_count() <= distance
        }
        assert got == want, distance


def test_query_search_of_new_hashes_against_old_ones_finds_exactly_the_close_pairs() -> None:
    old = hashes_with_copies(4, 400)
    rng = np.random.default_rng(5)
    picked = old[rng.integers(0, len(old), size=40)]
    flips = np.zeros(40, dtype=np.uint64)
    for _ in range(5):
        flips |= np.uint64(1) << rng.integers(0, 64, size=40).astype(np.uint64)
    new = np.concatenate(
        [picked ^ flips, picked, rng.integers(0, 2**63, size=20, dtype=np.int64).astype(np.uint64)]
    )
    for distance in (0, 4, 6, 10):
        i, j = near_duplicate_query(old, new, max_distance=distance)
        want = {
            (a, b)
            for a in range(len(old))
            for b in range(len(new))
            if int(old[a] ^ new[b]).bit_count() <= distance
        }
        assert set(zip(i.tolist(), j.tolist(), strict=True)) == want, distance


@settings(max_examples=40, deadline=None)
@given(
    old_count=st.integers(0, 3000),
    new_count=st.integers(0, 300),
    distance=st.integers(0, 12),
    seed=st.integers(0, 2**32 - 1),
)
def test_query_search_equals_brute_force_whatever_the_sizes_and_distance(
    old_count: int, new_count: int, distance: int, seed: int
) -> None:
    # Sizes from a few to thousands pick different block layouts (7 tables of 9-bit keys, 28 tables
    # of whole bytes, ...); half the new hashes are copies of old ones with up to distance + 2 bits
    # flipped, so pairs sit on both sides of the threshold. Old hashes repeat (exact copies).
    rng = np.random.default_rng(seed)
    old = rng.integers(0, 2**64 - 1, size=old_count, dtype=np.uint64, endpoint=True)
    if old_count > 10:
        old[: old_count // 10] = old[rng.integers(0, old_count, size=old_count // 10)]
    new = rng.integers(0, 2**64 - 1, size=new_count, dtype=np.uint64, endpoint=True)
    if old_count:
        copies = new_count // 2
        flips = np.zeros(copies, dtype=np.uint64)
        for _ in range(distance + 2):
            flips |= np.where(
                rng.random(copies) < 0.8, np.uint64(1) << rng.integers(0, 64, copies).astype(np.uint64), 0
            )
        new[:copies] = old[rng.integers(0, old_count, size=copies)] ^ flips

    i, j = near_duplicate_query(old, new, max_distance=distance)

    want_i, want_j = np.nonzero(np.bitwise_count(old[:, None] ^ new[None, :]) <= distance)
    np.testing.assert_array_equal(i, want_i)  # sorted by old position, then new, each pair once
    np.testing.assert_array_equal(j, want_j)


def test_threshold_six_covers_reencoding_resizing_and_mild_edits_but_not_other_pictures() -> None:
    edits = []
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
    assert max(edits) <= ManifestConfig().near_dup_distance < min(others)
