"""The logic of the manifest checks, and the summaries a reader looks at first (no Dagster here).

Blocking in the pipeline: missing variants, split leaks, a row count off. Warning only: the
failed-image rate, and label conflicts unless the policy makes them blocking. The notebooks'
helpers show the same numbers from the same functions. Split counts leave failed images out:
they have no split.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from image_etl.dataset.records import VARIANT_PREFIX
from image_etl.dataset.rules import FLAGS, SPLITS, STATUS_FAILED, STATUS_PROCESSED


def class_balance(manifest: pd.DataFrame) -> pd.DataFrame:
    """Return image counts per label and split (processed images only), with a total column."""
    processed = manifest[manifest["status"] == STATUS_PROCESSED]
    table = pd.crosstab(processed["label"].fillna("(unlabelled)"), processed["split"]).reindex(
        columns=list(SPLITS), fill_value=0
    )
    table["total"] = table.sum(axis=1)
    return table.sort_values("total", ascending=False)


def markdown_table(table: pd.DataFrame) -> str:
    """Return a DataFrame (index included) as a GitHub markdown table (pandas' needs tabulate)."""
    header = [str(table.index.name or "")] + [str(c) for c in table.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += [
        "| " + " | ".join([str(i), *(str(v) for v in row)]) + " |"
        for i, row in zip(table.index, table.to_numpy(), strict=True)
    ]
    return "\n".join(lines)


def summary(manifest: pd.DataFrame) -> dict[str, Any]:
    """Return counts a reader checks first: rows, statuses, splits (failed images have none), groups,
    keepers, label conflicts, flags."""
    flags = manifest["quality_flags"].explode().value_counts()
    groups = manifest["dup_group_size"]
    conflicts = label_conflicts(manifest) if "conflicting_labels" in manifest.columns else None
    return {
        "rows": len(manifest),
        "processed": int((manifest["status"] == STATUS_PROCESSED).sum()),
        "failed": int((manifest["status"] == STATUS_FAILED).sum()),
        "labels": int(manifest["label"].nunique()),
        "splits": {s: int((manifest["split"] == s).sum()) for s in SPLITS},
        "dup_groups": int(manifest["dup_group"].nunique()),
        "images_in_dup_groups": int((groups > 1).sum()),
        "kept": int(manifest["keep"].fillna(False).astype(bool).sum())
        if "keep" in manifest.columns
        else None,
        "label_conflict_groups": len(conflicts) if conflicts is not None else None,
        "label_conflict_images": int(conflicts["images"].sum()) if conflicts is not None else None,
        "flags": {f: int(flags.get(f, 0)) for f in FLAGS},
    }


def label_conflicts(manifest: pd.DataFrame) -> pd.DataFrame:
    """Return the duplicate groups whose members carry more than one label, most images first.

    :return: one row per group: ``dup_group``, ``labels`` (the competing labels, sorted), ``images``.
    """
    competing = manifest["conflicting_labels"].map(lambda v: tuple(v) if v is not None else ())
    conflicted = manifest.assign(labels=competing)[competing.map(len) > 0]
    table = (
        conflicted.groupby("dup_group", sort=True)
        .agg(labels=("labels", "first"), images=("image_id", "size"))
        .reset_index()
    )
    table["labels"] = table["labels"].map(list)
    return table.sort_values(["images", "dup_group"], ascending=[False, True], kind="stable").reset_index(
        drop=True
    )


def split_leaks(manifest: pd.DataFrame) -> dict[str, list[str]]:
    """Return sha256 values and dup_groups that appear in more than one split (empty when clean)."""
    leaks: dict[str, list[str]] = {}
    for column in ("sha256", "dup_group"):
        present = manifest[manifest[column].notna()]
        spread = present.groupby(column)["split"].nunique()
        leaks[column] = sorted(spread[spread > 1].index.astype(str))[:20]
    return leaks


def failed_rate(manifest: pd.DataFrame) -> float:
    """Return the share of images whose record is ``failed`` (0.0 for an empty manifest)."""
    return float((manifest["status"] == STATUS_FAILED).mean()) if len(manifest) else 0.0


def missing_variants(manifest: pd.DataFrame, existing: set[str]) -> pd.DataFrame:
    """Return (image_id, variant, key) of processed images whose variant key is not in ``existing``."""
    processed = manifest[manifest["status"] == STATUS_PROCESSED]
    columns = [c for c in manifest.columns if c.startswith(VARIANT_PREFIX)]
    long = processed.melt(id_vars="image_id", value_vars=columns, var_name="variant", value_name="key")
    long = long[long["key"].notna()]
    absent = long[~long["key"].isin(existing)]
    without_any = processed[processed[columns].isna().all(axis=1)] if columns else processed
    extra = pd.DataFrame({"image_id": without_any["image_id"], "variant": "(none)", "key": None})
    return pd.concat([absent, extra], ignore_index=True)


def groups_spanning_splits(manifest: pd.DataFrame) -> pd.DataFrame:
    """Return the duplicate groups (and sha256 values) found in more than one split: empty when leak-free.

    :return: one row per leak: ``kind`` (``dup_group`` or ``sha256``), ``value``, ``splits``.
    """
    rows = []
    for column in ("dup_group", "sha256"):
        known = manifest[manifest[column].notna()]
        spread = known.groupby(column)["split"].agg(lambda s: sorted(set(s)))
        for value, splits in spread[spread.map(len) > 1].items():
            rows.append({"kind": column, "value": value, "splits": splits})
    return pd.DataFrame(rows, columns=["kind", "value", "splits"])
