"""How a day's rows are split into data files: the unit an incremental run rewrites.

Copy-on-write rewrites every data file holding a changed row. With one file per upload day, a run
whose 100 copies of old images change ``keep`` or ``conflicting_labels`` on ~7 old days rewrote
those days whole (1.65% of a 10M-image table). So a big day is split into **slices**: ranges of the
image's 64-bit ``image_key`` (a hash of ``image_id``, so uniform and stable), one data file each,
and a run rewrites only the slices holding changed rows.

The rule (the only place it is decided): a day of ``n`` rows gets ``2**b`` slices, ``b`` the
smallest number of top key bits such that ``n / 2**b <= MAX_ROWS_PER_FILE``, at most
``MAX_BITS``. So a file holds 4,096-8,192 rows (~1-2 MB of parquet at ~270 bytes a row) once
a day is big, and a small day stays one file: Athena and a scan plan see few tiny files on small
tables, and a 10M-image table (27k rows a day) has 4 files a day, ~1,460 in all. Why 8,192: a run
touching ~7 old slices then writes ~12 MB of a 2.7 GB table (~0.45%, target <= 1%), while what
costs per file (a cold run reads every file's footer and index columns; a commit rewrites the
manifest listing every file) stays within the 10 s a run has at 10M: with 4,096 rows a file (2,921
files) a run with an empty index cache took 12 s there, most of it per-file work.

Slices nest (a slice of ``b`` bits is two of ``b + 1``), so the rule can change as a day grows or
shrinks, and tables written with one file per day need no migration: a rewrite takes the
:func:`closure` of the changed slices over the day's existing files (every file holding a row of a
rewritten slice is rewritten, and every slice holding a row of a rewritten file), so no row is ever
in two files and an old whole-day file is split into slices the first time one of its rows changes.
"""

from __future__ import annotations

import numpy as np

#: The most rows a data file of a sliced day holds (see the module docstring for why 8,192).
MAX_ROWS_PER_FILE = 8192
#: At most 2**MAX_BITS slices a day (a day beyond 262k rows gets bigger files instead).
MAX_BITS = 6


def slice_bits(rows: int) -> int:
    """Return how many top bits of ``image_key`` name a slice of a day of ``rows`` rows (0: one file)."""
    if rows < 0:
        raise ValueError(f"a day cannot have {rows} rows")
    bits = 0
    while bits < MAX_BITS and rows > MAX_ROWS_PER_FILE << bits:
        bits += 1
    return bits


def slice_of(image_key: np.ndarray, bits: int) -> np.ndarray:
    """Return each image's slice (0 .. 2**bits - 1) from its unsigned 64-bit ``image_key``."""
    if not 0 <= bits <= MAX_BITS:
        raise ValueError(f"slice bits must be 0..{MAX_BITS}, not {bits}")
    image_key = np.asarray(image_key, dtype=np.uint64)
    if bits == 0:
        return np.zeros(len(image_key), dtype=np.int64)
    return (image_key >> np.uint64(64 - bits)).astype(np.int64)


def closure(seed: np.ndarray, row_slice: np.ndarray, row_file: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (files to rewrite, slices to write) for a day, starting from the changed ``seed`` slices.

    Every file holding a row of a slice to write is rewritten, and every slice holding a row of a
    rewritten file is written, so the new files replace the old ones row for row.

    :param seed: slices holding a changed, new or removed row.
    :param row_slice: the slice of each stored row of the day (at the day's current slice bits).
    :param row_file: the data file (any integer id) of each stored row.
    """
    slices = np.unique(np.asarray(seed, dtype=np.int64))
    files = np.empty(0, dtype=np.asarray(row_file).dtype)
    while True:
        files = np.unique(row_file[np.isin(row_slice, slices)])
        grown = np.union1d(slices, row_slice[np.isin(row_file, files)])
        if len(grown) == len(slices):
            return files, slices
        slices = grown
