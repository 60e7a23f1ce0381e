"""The compact index's integer forms: ids and hashes as 8-byte keys, timestamps as microseconds.

A run compares new records with every image already in the table through these columns (tens of
bytes per image), never through whole rows. Parsing is vectorized: no Python loop per row for hex.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import pandas as pd

_HEX = np.full(256, 255, dtype=np.uint8)
for _i, _c in enumerate(b"0123456789abcdef"):
    _HEX[_c] = _i
for _i, _c in enumerate(b"ABCDEF"):
    _HEX[_c] = 10 + _i

#: The time key of a missing timestamp: it sorts before every real one.
NO_TIME = np.iinfo(np.int64).min


def _strings(values: pd.Series | Sequence[str | None] | np.ndarray) -> np.ndarray:
    series = values if isinstance(values, pd.Series) else pd.Series(list(values), dtype="object")
    return series.astype("object").where(series.notna(), "").to_numpy(dtype=object)


def hex_keys(
    values: pd.Series | Sequence[str | None] | np.ndarray, *, length: int
) -> tuple[np.ndarray, np.ndarray]:
    """Return the first 16 hex digits of each string as a uint64, and which strings are valid.

    :param values: strings such as a pHash (16 hex digits) or a sha256 (64).
    :param length: the exact number of hex digits a valid value has; others get key 0, valid False.
    :return: (keys uint64, valid bool).
    """
    raw = np.asarray(_strings(values), dtype=f"S{length + 1}")
    width = length + 1
    nibbles = _HEX[raw.view(np.uint8).reshape(-1, width)]
    valid = (nibbles[:, :length] < 16).all(axis=1) & (nibbles[:, length] == 255)
    keys = np.zeros(len(raw), dtype=np.uint64)
    for position in range(min(16, length)):
        keys = (keys << np.uint64(4)) | (nibbles[:, position] & 15).astype(np.uint64)
    keys[~valid] = 0
    return keys, valid


def image_keys(ids: pd.Series | Sequence[str] | np.ndarray) -> np.ndarray:
    """Return a uint64 key per image id: the first 8 bytes of blake2b(id).

    A hash of the whole id, not a prefix of it: ids that share a prefix must never share a key (a
    64-bit collision among 10M ids has odds of about 3 in a million).

    :param ids: image ids.
    """
    strings = _strings(ids)
    digests = b"".join(hashlib.blake2b(str(i).encode(), digest_size=8).digest() for i in strings)
    return np.frombuffer(digests, dtype=">u8").astype(np.uint64)


def digest_keys(
    values: pd.Series | Sequence[str | None] | np.ndarray, *, length: int
) -> tuple[np.ndarray, np.ndarray]:
    """Return a uint64 key per valid hex digest (blake2b of the whole string), and which are valid.

    :param values: digests such as sha256 hex strings.
    :param length: the exact number of hex digits of a valid value; others get key 0, valid False.
    """
    _, valid = hex_keys(values, length=length)
    keys = np.zeros(len(valid), dtype=np.uint64)
    if valid.any():
        keys[valid] = image_keys(_strings(values)[valid])
    return keys, valid


def time_keys(stamps: pd.Series | Sequence[str | None] | np.ndarray) -> np.ndarray:
    """Return ISO 8601 timestamps as int64 microseconds since the epoch (UTC); missing ones :data:`NO_TIME`.

    :param stamps: timestamps such as ``2026-11-26T10:00:00.000000Z`` (any ISO form; naive means UTC).
    """
    series = stamps if isinstance(stamps, pd.Series) else pd.Series(list(stamps), dtype="object")
    parsed = pd.to_datetime(series.astype("object"), utc=True, format="ISO8601", errors="coerce")
    values = parsed.to_numpy(dtype="datetime64[us]").astype(np.int64)
    values[parsed.isna().to_numpy()] = NO_TIME
    return values


def as_signed(keys: np.ndarray) -> np.ndarray:
    """Return uint64 keys as the int64 an Iceberg ``long`` column stores (same bits)."""
    return np.asarray(keys, dtype=np.uint64).view(np.int64)


def as_unsigned(values: np.ndarray) -> np.ndarray:
    """Return int64 column values as the uint64 keys they stand for (same bits)."""
    return np.asarray(values, dtype=np.int64).view(np.uint64)
