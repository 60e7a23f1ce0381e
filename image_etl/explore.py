"""Dataset inspection for notebooks: load a manifest, look at its images, compare two versions.

Notebooks stay thin: each cell calls one of these, and these are tested like any other code. They
read the same settings as the CLI, so they work against the local stack or a deployed stack.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd
from PIL import Image, ImageDraw, ImageFont

from image_etl.dataset.checks import class_balance, groups_spanning_splits
from image_etl.dataset.checks import (
    label_conflicts as conflict_groups,
)  # explore.label_conflicts pictures them
from image_etl.dataset.rules import SPLITS, STATUS_FAILED, STATUS_PROCESSED
from image_etl.manifest import list_versions, manifest_table, polars_storage_options, read_manifest
from image_etl.settings import Settings, load_settings

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from pyiceberg.table import Table

__all__ = [
    "class_balance",
    "contact_sheet",
    "contact_sheets_by_label",
    "diff_versions",
    "distribution_plots",
    "drift_plot",
    "duplicate_groups",
    "failed_images",
    "flags_table",
    "groups_spanning_splits",
    "iceberg_table",
    "label_conflicts",
    "load_manifest",
    "polars_storage_options",
    "preview",
    "split_sizes_plot",
    "versions",
    "versions_to_compare",
]

#: Columns whose change between versions means an image changed (not just its bookkeeping).
COMPARED_COLUMNS: tuple[str, ...] = (
    "label",
    "status",
    "split",
    "width",
    "height",
    "sha256",
    "dup_group",
    "quality_flags",
)


def load_manifest(version: str | None = None, *, settings: Settings | None = None) -> pd.DataFrame:
    """Return a manifest version (default: the published one) as a DataFrame, its version in ``.attrs``.

    :param version: a version id from :func:`versions` (or a snapshot id), or None for the published one.
    :param settings: where to read from (default: :func:`image_etl.settings.load_settings`).
    """
    return read_manifest(version, settings or load_settings())


def versions(*, settings: Settings | None = None) -> list[str]:
    """Return every kept manifest version, oldest first."""
    return list_versions(settings or load_settings())


def iceberg_table(*, settings: Settings | None = None) -> Table:
    """Return the manifest's pyiceberg table, for other readers (polars ``scan_iceberg``, DuckDB)."""
    return manifest_table(settings or load_settings()).table()


def flags_table(manifest: pd.DataFrame) -> pd.DataFrame:
    """Return one boolean column per quality flag, one row per image."""
    flags = manifest["quality_flags"].map(lambda value: list(value) if value is not None else [])
    names = sorted({flag for row in flags for flag in row})
    return pd.DataFrame(
        {name: flags.map(lambda row, n=name: n in row) for name in names}, index=manifest.index
    )


def failed_images(manifest: pd.DataFrame) -> pd.DataFrame:
    """Return the failed images by the name they were uploaded under, with their reasons, by reason.

    The storage key is not shown: it is an id the uploader never saw (``image_id`` finds the record).
    """
    failed = manifest[manifest["status"] == STATUS_FAILED]
    reason = "error" if "error" in failed.columns else "error_code"
    columns = [
        c
        for c in ("original_filename", "label", "error_code", reason, "source_bytes", "image_id")
        if c in failed.columns
    ]
    order = [c for c in ("error_code", "original_filename", "image_id") if c in failed.columns]
    return failed[list(dict.fromkeys(columns))].sort_values(order).reset_index(drop=True)


#: What a first look at a manifest needs, in this order (the rest is one ``manifest.columns`` away).
PREVIEW_COLUMNS: tuple[str, ...] = (
    "original_filename",
    "label",
    "status",
    "split",
    "keep",
    "width",
    "height",
    "dup_group",
    "quality_flags",
)


def preview(manifest: pd.DataFrame, rows: int = 5) -> pd.DataFrame:
    """Return the first ``rows`` images with the columns that matter (:data:`PREVIEW_COLUMNS` present)."""
    return manifest[[c for c in PREVIEW_COLUMNS if c in manifest.columns]].head(rows)


def split_sizes_plot(manifest: pd.DataFrame) -> Figure:
    """Return a figure of processed images per label, stacked by split."""
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(8, 3.5), layout="constrained")
    class_balance(manifest)[list(SPLITS)].plot.bar(stacked=True, ax=axis, title="split sizes per label")
    plt.close(figure)  # returned, not left open: a notebook shows it once
    return figure


def duplicate_groups(manifest: pd.DataFrame, *, min_size: int = 2) -> pd.DataFrame:
    """Return the images of duplicate groups with at least ``min_size`` members, largest group first."""
    sizes = manifest.groupby("dup_group")["image_id"].transform("size")
    groups = manifest[sizes >= min_size].assign(group_size=sizes[sizes >= min_size])
    return groups.sort_values(["group_size", "dup_group", "image_id"], ascending=[False, True, True])


@dataclass(frozen=True)
class LabelConflict:
    """One duplicate group whose members carry more than one label, and its members side by side."""

    dup_group: str
    #: the competing labels, sorted
    labels: list[str]
    #: the group's images, by label then file name
    members: pd.DataFrame
    #: one tile per member, its label and file name under it
    sheet: Image.Image

    @property
    def heading(self) -> str:
        """Return a Markdown line naming the group, its labels and its size."""
        labels = " vs ".join(f"**{label}**" for label in self.labels)
        return f"`{self.dup_group}`: {len(self.members)} images labelled {labels}"


@dataclass(frozen=True)
class LabelConflicts:
    """The label-conflict groups of a manifest (the first ``limit``) and a sentence about all of them."""

    groups: list[LabelConflict]
    note: str


def label_conflicts(
    manifest: pd.DataFrame,
    *,
    variant: str = "small",
    limit: int = 12,
    cell: int = 192,
    settings: Settings | None = None,
) -> LabelConflicts:
    """Return each duplicate group with competing labels (members flagged ``label_conflict``), most
    images first, with a row of its ``variant`` images captioned with label and file name.

    The groups and their labels are the pipeline's (``conflicting_labels``, read with
    :func:`image_etl.dataset.checks.label_conflicts`); nothing is recomputed here.

    :param limit: how many groups get a picture (the note counts them all).
    :param cell: tile size in pixels (a ``small`` variant is 256 px; 192 keeps 6 in a row readable).
    """
    if "conflicting_labels" not in manifest.columns:
        return LabelConflicts(
            [],
            "This manifest version has no `conflicting_labels` column: it was built before label "
            "conflicts were checked, so they are not known (rebuild it to find them).",
        )
    table = conflict_groups(manifest)
    if table.empty:
        return LabelConflicts(
            [], "No label conflicts: no duplicate group holds images with different labels."
        )
    images = int(table["images"].sum())
    note = (
        f"{len(table)} duplicate group{'s' if len(table) != 1 else ''} "
        f"{'hold' if len(table) != 1 else 'holds'} the same picture under different labels "
        f"({images} images, each flagged `label_conflict`): relabel or drop them before training"
        + (f"; the first {limit} are shown." if len(table) > limit else ".")
    )
    competing = manifest["conflicting_labels"].map(lambda v: v is not None and len(v) > 0)
    flagged = manifest[competing]
    groups = []
    for _, group in table.head(limit).iterrows():
        members = flagged[flagged["dup_group"] == group["dup_group"]]
        order = [c for c in ("label", "original_filename", "image_id") if c in members.columns]
        members = members.sort_values(order, na_position="last").reset_index(drop=True)
        sheet = contact_sheet(
            members,
            variant=variant,
            columns=min(len(members), 6),
            limit=len(members),
            cell=cell,
            caption=[c for c in ("label", "original_filename") if c in members.columns],
            settings=settings,
        )
        groups.append(LabelConflict(str(group["dup_group"]), list(group["labels"]), members, sheet))
    return LabelConflicts(groups, note)


def fetch_variants(
    keys: Sequence[str | None], *, settings: Settings | None = None, max_workers: int = 16
) -> list[Image.Image | None]:
    """Return the variant images at ``keys``, fetched in parallel (None where missing or unreadable)."""
    settings = settings or load_settings()
    s3 = settings.client("s3")

    def fetch(key: str | None) -> Image.Image | None:
        if not key or not isinstance(key, str):
            return None
        try:
            body = s3.get_object(Bucket=settings.variants_bucket, Key=key)["Body"].read()
            with Image.open(io.BytesIO(body)) as image:
                return image.convert("RGB")
        except Exception:  # a missing or broken variant shows as an empty cell, not a failed notebook
            return None

    with ThreadPoolExecutor(max_workers=max_workers) as pool:
        return list(pool.map(fetch, keys))


def contact_sheet(
    manifest: pd.DataFrame,
    *,
    variant: str = "thumb",
    columns: int = 8,
    limit: int = 64,
    cell: int = 128,
    caption: str | Sequence[str] | None = "label",
    settings: Settings | None = None,
) -> Image.Image:
    """Return one picture tiling the ``variant`` of the first ``limit`` images, a caption under each.

    :param manifest: rows to show, in order (filter and sort before calling).
    :param variant: which variant to tile (``thumb`` is 128 px; ``small`` 256 px).
    :param columns: tiles per row.
    :param cell: tile size in pixels; images are fitted inside, aspect kept.
    :param caption: column to print under each tile, or several (one line each), or None for no
        captions; a value wider than the tile ends in an ellipsis.
    """
    rows = manifest.head(limit)
    column = f"variant_{variant}"
    keys = list(rows[column]) if column in rows.columns else [None] * len(rows)
    images = fetch_variants(keys, settings=settings)
    lines = [caption] if isinstance(caption, str) else list(caption or ())
    text_height = CAPTION_LINE * len(lines) + (2 if lines else 0)
    count = max(len(images), 1)
    grid_columns = max(1, min(columns, count))
    grid_rows = -(-count // grid_columns)
    sheet = Image.new(
        "RGB", (grid_columns * (cell + 4) + 4, grid_rows * (cell + text_height + 4) + 4), "white"
    )
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=11)
    for index, (image, (_, row)) in enumerate(zip(images, rows.iterrows(), strict=True)):
        x = 4 + (index % grid_columns) * (cell + 4)
        y = 4 + (index // grid_columns) * (cell + text_height + 4)
        if image is None:
            draw.rectangle((x, y, x + cell - 1, y + cell - 1), fill=(236, 238, 242))
            draw.text(
                (x + 6, y + cell // 2 - 6), str(row.get("status", "no image")), fill=(180, 35, 24), font=font
            )
        else:
            image.thumbnail((cell, cell))
            sheet.paste(image, (x + (cell - image.width) // 2, y + (cell - image.height) // 2))
        for line, name in enumerate(lines):
            text = _fit(_caption_text(row.get(name)), font, cell - 4)
            draw.text((x + 2, y + cell + 2 + line * CAPTION_LINE), text, fill=(29, 35, 48), font=font)
    return sheet


#: Height of one caption line under a contact-sheet tile, in pixels.
CAPTION_LINE = 14


def _caption_text(value: Any) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    return str(value)


def _fit(text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont, width: int) -> str:
    """Return ``text``, cut to ``width`` pixels with an ellipsis when it is wider (a clipped name
    without one reads as the whole name)."""
    if font.getlength(text) <= width:
        return text
    while text and font.getlength(text + "…") > width:
        text = text[:-1]
    return text + "…"


def contact_sheets_by_label(
    manifest: pd.DataFrame, *, per_label: int = 16, columns: int = 8, settings: Settings | None = None
) -> dict[str, Image.Image]:
    """Return label -> contact sheet of up to ``per_label`` processed images of that label."""
    processed = manifest[manifest["status"] == STATUS_PROCESSED]
    sheets = {}
    for label, rows in processed.groupby(processed["label"].fillna("(unlabelled)"), sort=True):
        sheets[str(label)] = contact_sheet(
            rows, limit=per_label, columns=columns, caption="split", settings=settings
        )
    return sheets


def distribution_plots(manifest: pd.DataFrame) -> Figure:
    """Return a figure: class balance, image sizes, aspect ratios, brightness and blur score."""
    import matplotlib.pyplot as plt

    processed = manifest[manifest["status"] == STATUS_PROCESSED]
    figure, axes = plt.subplots(2, 3, figsize=(14, 7.5), layout="constrained")
    balance = class_balance(manifest).drop(columns="total")
    balance.plot.barh(stacked=True, ax=axes[0, 0], title="images per label and split")
    axes[0, 1].scatter(processed["width"], processed["height"], s=10, alpha=0.6)
    axes[0, 1].set(title="size (px)", xlabel="width", ylabel="height")
    aspect = processed["width"].astype(float) / processed["height"].astype(float)
    axes[0, 2].hist(aspect.dropna(), bins=30)
    axes[0, 2].set(title="aspect ratio (width / height)")
    axes[1, 0].hist(processed["brightness"].dropna(), bins=30, range=(0, 1))
    axes[1, 0].set(title="mean brightness")
    axes[1, 1].hist(processed["blur_score"].dropna(), bins=30, log=True)
    axes[1, 1].set(title="blur score (higher is sharper)")
    flags = flags_table(manifest).sum().sort_values()
    (flags if len(flags) else pd.Series({"none": 0})).plot.barh(ax=axes[1, 2], title="quality flags")
    plt.close(figure)  # returned, not left open: a notebook shows it once, as the cell's value
    return figure


@dataclass(frozen=True)
class VersionDiff:
    """What changed between two manifest versions."""

    old_version: str
    new_version: str
    added: pd.DataFrame
    removed: pd.DataFrame
    #: one row per changed value: image_id, column, old, new
    changed: pd.DataFrame
    #: images per label: old, new, delta
    labels: pd.DataFrame
    #: images per quality flag: old, new, delta
    flags: pd.DataFrame

    def summary(self) -> dict[str, Any]:
        return {
            "old_version": self.old_version,
            "new_version": self.new_version,
            "added": len(self.added),
            "removed": len(self.removed),
            "changed_images": int(self.changed["image_id"].nunique()) if len(self.changed) else 0,
        }


#: The version name an empty manifest stands in for, when there is no older version to compare with.
EMPTY_VERSION = "(empty)"


@dataclass(frozen=True)
class Comparison:
    """Two manifests to compare and a sentence on what was chosen (and what is missing, if anything)."""

    old: pd.DataFrame
    new: pd.DataFrame
    note: str


def empty_manifest(like: pd.DataFrame | None = None) -> pd.DataFrame:
    """Return a manifest with no rows (the columns of ``like``, else those a comparison reads)."""
    columns = list(like.columns) if like is not None else ["image_id", *COMPARED_COLUMNS]
    empty = pd.DataFrame({c: pd.Series(dtype="object") for c in columns})
    empty.attrs["version"] = EMPTY_VERSION
    return empty


def versions_to_compare(
    old_version: str | None = None, new_version: str | None = None, *, settings: Settings | None = None
) -> Comparison:
    """Return the manifests to compare: the versions given, else the two newest.

    With one version only (what there is right after the first build) it is compared with an
    empty manifest, so everything shows as added; with none, two empty manifests. The note says so
    and what would make a real comparison.
    """
    settings = settings or load_settings()
    known = versions(settings=settings)
    if old_version and new_version:
        old = load_manifest(old_version, settings=settings)
        new = load_manifest(new_version, settings=settings)
        return Comparison(old, new, f"`{old_version}` against `{new_version}` (chosen).")
    need = (
        "A comparison needs two manifest versions: upload more images (or run `image-etl demo`, "
        "which uploads in two rounds) and let the pipeline build another version, or set "
        "OLD_VERSION and NEW_VERSION."
    )
    if not known:
        return Comparison(empty_manifest(), empty_manifest(), f"No manifest version yet. {need}")
    newest = load_manifest(new_version or known[-1], settings=settings)
    name = str(newest.attrs.get("version"))
    older = known[: known.index(name)] if name in known else [v for v in known if v != name]
    if old_version or older:
        old = load_manifest(old_version or older[-1], settings=settings)
        return Comparison(old, newest, f"`{old.attrs['version']}` against `{newest.attrs['version']}`.")
    note = f"Only one version, `{newest.attrs['version']}`: it is shown against an empty one. {need}"
    return Comparison(empty_manifest(newest), newest, note)


def _drift(old: pd.Series, new: pd.Series) -> pd.DataFrame:
    table = pd.DataFrame({"old": old, "new": new}).fillna(0).astype("int64")
    table["delta"] = table["new"] - table["old"]
    return table.sort_values(["delta", "new"], ascending=[False, False])


def _comparable(value: Any) -> Any:
    if value is None or (isinstance(value, float) and pd.isna(value)) or value is pd.NA:
        return None
    if hasattr(value, "tolist"):
        value = value.tolist()
    return tuple(value) if isinstance(value, list) else value


def diff_versions(old: pd.DataFrame, new: pd.DataFrame) -> VersionDiff:
    """Return what was added, removed and changed from ``old`` to ``new``, and how distributions moved."""
    old_ids, new_ids = set(old["image_id"]), set(new["image_id"])
    added = new[new["image_id"].isin(new_ids - old_ids)].reset_index(drop=True)
    removed = old[old["image_id"].isin(old_ids - new_ids)].reset_index(drop=True)
    both = old.set_index("image_id").merge(
        new.set_index("image_id"), left_index=True, right_index=True, suffixes=("_old", "_new")
    )
    changes = []
    for column in COMPARED_COLUMNS:
        if f"{column}_old" not in both.columns:
            continue
        for image_id, before, after in zip(
            both.index, both[f"{column}_old"], both[f"{column}_new"], strict=True
        ):
            if _comparable(before) != _comparable(after):
                changes.append({"image_id": image_id, "column": column, "old": before, "new": after})
    labels = _drift(
        old["label"].fillna("(unlabelled)").value_counts(), new["label"].fillna("(unlabelled)").value_counts()
    )
    return VersionDiff(
        old_version=str(old.attrs.get("version", "old")),
        new_version=str(new.attrs.get("version", "new")),
        added=added,
        removed=removed,
        changed=pd.DataFrame(changes, columns=["image_id", "column", "old", "new"]),
        labels=labels,
        flags=_drift(flags_table(old).sum(), flags_table(new).sum()),
    )


def drift_plot(diff: VersionDiff) -> Figure:
    """Return a figure of label and quality-flag counts, old next to new."""
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(13, 4.5), layout="constrained")
    labels = (
        diff.labels[["old", "new"]]
        if len(diff.labels)
        else pd.DataFrame({"old": [0], "new": [0]}, index=["none"])
    )
    labels.plot.barh(ax=axes[0], title="images per label")
    flags = (
        diff.flags[["old", "new"]]
        if len(diff.flags)
        else pd.DataFrame({"old": [0], "new": [0]}, index=["none"])
    )
    flags.plot.barh(ax=axes[1], title="images per quality flag")
    figure.suptitle(f"{diff.old_version}  ->  {diff.new_version}")
    plt.close(figure)
    return figure
