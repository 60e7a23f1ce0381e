"""A version's report: class balance, sizes, quality flags, brightness and blur as PNG plots, and a
markdown summary (the Dagster UI shows both; they are also saved next to the version)."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from image_etl.dataset.checks import class_balance, label_conflicts, markdown_table, summary
from image_etl.dataset.rules import SPLITS, STATUS_PROCESSED

if TYPE_CHECKING:
    from image_etl.manifest import DatasetStore


def _png(figure: Any) -> bytes:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


def report_plots(manifest: pd.DataFrame) -> dict[str, bytes]:
    """Return PNG plots: class balance per split, image sizes, quality flags, brightness and blur."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plots: dict[str, bytes] = {}
    balance = class_balance(manifest).head(30)
    figure, axis = plt.subplots(figsize=(8, 4))
    balance[list(SPLITS)].plot.bar(stacked=True, ax=axis)
    axis.set_title("images per label and split")
    axis.set_ylabel("images")
    plots["class_balance"] = _png(figure)

    processed = manifest[manifest["status"] == STATUS_PROCESSED]
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    longest = processed[["width", "height"]].max(axis=1).astype("float64").dropna()
    left.hist(longest, bins=40)
    left.set_title("longest side (px)")
    if len(processed):
        right.hexbin(
            processed["width"].astype("float64"), processed["height"].astype("float64"), gridsize=30, mincnt=1
        )
    right.set_title("width x height")
    plots["sizes"] = _png(figure)

    facts = summary(manifest)
    figure, axis = plt.subplots(figsize=(8, 3.5))
    axis.bar(list(facts["flags"]), list(facts["flags"].values()))
    axis.set_title("quality flags (images)")
    plots["quality_flags"] = _png(figure)

    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 3.5))
    left.hist(processed["brightness"].astype("float64").dropna(), bins=40, range=(0, 1))
    left.set_title("brightness")
    right.hist(processed["blur_score"].astype("float64").clip(upper=5).dropna(), bins=40, range=(0, 5))
    right.set_title("blur score (higher is sharper; clipped at 5)")
    plots["quality_signals"] = _png(figure)
    return plots


def _count(n: int | None, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def report_markdown(manifest: pd.DataFrame, version: str) -> str:
    """Return the report's markdown summary (no images)."""
    facts = summary(manifest)
    balance = class_balance(manifest)
    lines = [
        f"# Dataset {version}",
        "",
        f"- images: **{facts['rows']}** ({facts['processed']} processed, {facts['failed']} failed), "
        f"{facts['labels']} labels",
        "- splits: "
        + ", ".join(f"{k} {v}" for k, v in facts["splits"].items())
        + " (failed images have none)",
        f"- duplicate groups: {facts['dup_groups']} ({facts['images_in_dup_groups']} images share a group; "
        f"{facts['kept']} kept, one per group)",
        f"- label conflicts: {_count(facts['label_conflict_groups'], 'group')} with more than one label "
        f"({_count(facts['label_conflict_images'], 'image')})",
        "- quality flags: " + ", ".join(f"{k} {v}" for k, v in facts["flags"].items()),
        "",
        "## Class balance (processed images)",
        "",
        markdown_table(balance) if len(balance) else "(no images)",
    ]
    conflicts = label_conflicts(manifest) if "conflicting_labels" in manifest.columns else None
    if conflicts is not None and len(conflicts):
        shown = conflicts.head(20).assign(labels=conflicts["labels"].head(20).map(", ".join))
        lines += [
            "",
            f"## Label conflicts ({len(conflicts)} groups; the first {len(shown)})",
            "",
            markdown_table(shown.set_index("dup_group")),
        ]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class SavedReport:
    """A version's report as :func:`save_report` wrote it."""

    plots: dict[str, bytes]  # PNG bytes by plot name
    summary: str  # markdown
    prefix: str  # the key prefix they were written under


def report_prefix(store: DatasetStore, version: str) -> str:
    """Return the key prefix of ``version``'s report: ``versions/<version>/report/``."""
    return f"{store.version_prefix(version)}report/"


def save_report(store: DatasetStore, manifest: pd.DataFrame, version: str) -> SavedReport:
    """Render ``version``'s report and write it beside the version: ``<name>.png`` per plot and
    ``summary.md`` under :func:`report_prefix`."""
    plots = report_plots(manifest)
    summary_md = report_markdown(manifest, version)
    prefix = report_prefix(store, version)
    for name, png in plots.items():
        store.put(f"{prefix}{name}.png", png, content_type="image/png")
    store.put(f"{prefix}summary.md", summary_md.encode(), content_type="text/markdown")
    return SavedReport(plots, summary_md, prefix)
