"""Quality flags: tiny, extreme aspect, too dark, too bright, blurry, label conflict, failed (missing
signals raise none). What each means in numbers: :class:`~image_etl.dataset.rules.QualityThresholds`."""

from __future__ import annotations

import numpy as np
import pandas as pd

from image_etl.dataset.rules import FLAGS, STATUS_FAILED, QualityThresholds


def quality_flag_matrix(frame: pd.DataFrame, thresholds: QualityThresholds) -> pd.DataFrame:
    """Return one boolean column per flag in :data:`FLAGS` (a signal that is missing raises no flag)."""
    width = frame["width"].to_numpy(dtype="float64", na_value=np.nan)
    height = frame["height"].to_numpy(dtype="float64", na_value=np.nan)
    brightness = frame["brightness"].to_numpy(dtype="float64", na_value=np.nan)
    blur = frame["blur_score"].to_numpy(dtype="float64", na_value=np.nan)
    short, long = np.fmin(width, height), np.fmax(width, height)
    with np.errstate(divide="ignore", invalid="ignore"):
        aspect = long / short
    failed = (frame["status"] == STATUS_FAILED).to_numpy(dtype=bool, na_value=False)
    conflict = np.zeros(len(frame), dtype=bool)
    if "conflicting_labels" in frame:
        conflict = np.fromiter(
            (v is not None and len(v) > 0 for v in frame["conflicting_labels"]), dtype=bool, count=len(frame)
        )
    return pd.DataFrame(
        {
            "tiny": short < thresholds.min_side,
            "extreme_aspect": aspect > thresholds.max_aspect,
            "too_dark": brightness < thresholds.dark_below,
            "too_bright": brightness > thresholds.bright_above,
            "blurry": blur < thresholds.blurry_below,
            "label_conflict": conflict,
            "failed": failed,
        },
        index=frame.index,
    )


def flag_lists(matrix: pd.DataFrame) -> pd.Series:
    """Return the flags of each row as a list column (Arrow ``list<string>``), built without a row loop."""
    import pyarrow as pa

    bits = matrix[list(FLAGS)].to_numpy(dtype=bool)
    _, cols = np.nonzero(bits)  # row-major: each row's flags come out in FLAGS order
    offsets = np.concatenate(([0], np.cumsum(bits.sum(axis=1)))).astype(np.int32)
    names = pa.array(np.asarray(FLAGS, dtype=object)[cols], type=pa.string())
    lists = pa.ListArray.from_arrays(pa.array(offsets), names)
    return pd.Series(pd.arrays.ArrowExtensionArray(lists), index=matrix.index, name="quality_flags")
