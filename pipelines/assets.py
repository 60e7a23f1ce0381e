"""Assets: daily record files -> versioned manifest -> latest pointer, report, ImageFolder export.

Lineage: ``image_records`` (daily partitions by upload day) feeds ``dataset_manifest`` (an
immutable version in S3), whose blocking checks gate ``published_manifest`` (the ``latest``
pointer consumers read), which feeds ``dataset_report`` and ``imagefolder_export``.
"""

# No `from __future__ import annotations` here: Dagster reads the asset functions' annotations
# at definition time (context, config, resource and input types) and rejects string ones.

import base64
import hashlib
import io
import warnings
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import dagster as dg
import pandas as pd
from dagster import AssetExecutionContext

from image_etl.manifest import VersionExists, new_version_id
from pipelines import manifest as mf
from pipelines.resources import DatasetBucket, DatasetPolicy, ImageRecordTable

#: First upload-day partition. Records uploaded earlier are filed under it (clamped), not lost.
FIRST_DAY = "2024-01-01"
#: ``end_offset=1`` adds today's partition: images uploaded today must reach the manifest today.
upload_days = dg.DailyPartitionsDefinition(start_date=FIRST_DAY, end_offset=1, timezone="UTC")

# A single-run backfill policy is what lets one run cover a partition range; it is marked beta.
warnings.filterwarnings("ignore", message=".*backfill_policy.*", category=dg.BetaWarning)

GROUP = "datasets"
#: Every run that writes record files carries this tag; the local run queue runs one at a time.
DATASET_RUN_TAG = {"image-etl/dataset": "build"}


def upload_day(record: dict[str, Any]) -> str:
    """Return a record's partition: its upload day (UTC), clamped to :data:`FIRST_DAY`."""
    stamp = str(record.get("uploaded_at") or record.get("processed_at") or "")
    return max(stamp[:10], FIRST_DAY)


@dataclass(frozen=True)
class ManifestVersion:
    """What ``dataset_manifest`` hands downstream: which immutable version it built."""

    version: str
    bucket: str
    key: str
    content_hash: str
    rows: int
    created_at: str
    unchanged: bool  # the content equals the latest version: no new version was written


@dg.asset(
    partitions_def=upload_days,
    # One run covers a whole range (sensor, schedule, backfill): the index is read once, not per day.
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name=GROUP,
    kinds={"dynamodb", "s3", "parquet"},
)
def image_records(
    context: AssetExecutionContext, record_table: ImageRecordTable, datasets: DatasetBucket
) -> dg.MaterializeResult:
    """That upload day's image records (processed and failed), as parquet in the datasets bucket.

    Records uploaded on day D are processed on or after D, so one index Query per shard for
    ``processed_at`` after the range's first day finds every record of the range; it costs the
    records processed since then, which for the sensor's and the nightly runs is a few days.
    """
    days = list(context.partition_keys)
    first, last = days[0], days[-1]
    # From the day before: a writer's clock a little behind S3's can stamp processed_at before uploaded_at.
    since = "0" if first == FIRST_DAY else (date.fromisoformat(first) - timedelta(days=1)).isoformat()
    records, items_read = record_table.records_processed_after(since)
    by_day: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        day = upload_day(record)
        if first <= day <= last:
            by_day.setdefault(day, []).append(record)
    store = datasets.store()
    counts: dict[str, int] = {}
    for day in days:
        rows = by_day.get(day)
        key = store.records_key(day)
        if not rows:
            # A record can leave a day (a re-upload has a new upload time): drop a stale file.
            store.s3.delete_object(Bucket=store.bucket, Key=key)
            continue
        frame = mf.records_frame(rows).sort_values("image_id", kind="stable")
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False, compression="zstd")
        store.put(key, buffer.getvalue())
        counts[day] = len(frame)
    context.log.info(
        f"{sum(counts.values())} records in {len(counts)} of {len(days)} days ({items_read} read)"
    )
    return dg.MaterializeResult(
        metadata={
            "records": sum(counts.values()),
            "days_with_records": len(counts),
            "items_read": items_read,
            "per_day": dg.MetadataValue.json(counts if len(counts) <= 60 else {"days": len(counts)}),
            "path": dg.MetadataValue.path(store.uri(store.records_key("<day>"))),
        }
    )


def read_all_records(datasets: DatasetBucket) -> pd.DataFrame:
    """Return every day's record file, concatenated in day order."""
    store = datasets.store()
    frames = []
    pages = store.s3.get_paginator("list_objects_v2").paginate(
        Bucket=store.bucket, Prefix=f"{store.prefix}records/"
    )
    keys = sorted(obj["Key"] for page in pages for obj in page.get("Contents", []))
    for key in keys:
        if key.endswith(".parquet"):
            frames.append(mf.normalize_records(pd.read_parquet(io.BytesIO(store.read_bytes(key)))))
    if not frames:
        return mf.records_frame([])
    return pd.concat(frames, ignore_index=True)


class ManifestBuildConfig(dg.Config):
    #: Ignore the previous version's splits and assign every group from its hash again.
    resplit: bool = False


@dg.asset(deps=[image_records], group_name=GROUP, kinds={"s3", "parquet", "pandas"})
def dataset_manifest(
    context: AssetExecutionContext,
    config: ManifestBuildConfig,
    datasets: DatasetBucket,
    policy: DatasetPolicy,
) -> dg.Output[ManifestVersion]:
    """One row per distinct source image with duplicate group, quality flags and split, as an
    immutable version ``versions/<version>/manifest.parquet`` (not yet the ``latest``: see
    ``published_manifest``)."""
    store = datasets.store()
    records = read_all_records(datasets)
    latest = store.latest()
    previous = None
    if latest and not config.resplit:
        # Splits are sticky: what was in train stays in train (see assign_groups_and_splits).
        old = pd.read_parquet(io.BytesIO(store.read_bytes(latest["key"])), columns=["image_id", "split"])
        previous = pd.Series(old["split"].to_numpy(), index=old["image_id"].to_numpy())
    manifest = mf.build_manifest(records, config=policy.manifest_config(), previous_splits=previous)
    body = mf.to_parquet_bytes(
        manifest,
        metadata={"variants_bucket": datasets.variants_bucket, "variants_prefix": datasets.variants_prefix},
    )
    digest = hashlib.sha256(body).hexdigest()[:12]
    now = datetime.now(UTC)
    unchanged = bool(latest and latest.get("content_hash") == digest)
    version = str(latest["version"]) if unchanged and latest else new_version_id(digest, now=now)
    key = store.manifest_key(version)
    if not unchanged:
        try:
            store.put_immutable(key, body)
        except VersionExists:
            unchanged = True  # the same content in the same second: that file is this manifest
    facts = mf.summary(manifest)
    balance = mf.class_balance(manifest)
    return dg.Output(
        ManifestVersion(version, store.bucket, key, digest, len(manifest), now.isoformat(), unchanged),
        metadata={
            "version": version,
            "path": dg.MetadataValue.path(store.uri(key)),
            "rows": facts["rows"],
            "processed": facts["processed"],
            "failed": facts["failed"],
            "dup_groups": facts["dup_groups"],
            "images_in_dup_groups": facts["images_in_dup_groups"],
            "splits": dg.MetadataValue.json(facts["splits"]),
            "quality_flags": dg.MetadataValue.json(facts["flags"]),
            "class_balance": dg.MetadataValue.md(
                mf.markdown_table(balance) if len(balance) else "(no images)"
            ),
            "unchanged": unchanged,
            "dagster/row_count": facts["rows"],
        },
    )


@dg.asset(group_name=GROUP, kinds={"s3"})
def published_manifest(
    context: AssetExecutionContext, dataset_manifest: ManifestVersion, datasets: DatasetBucket
) -> dg.Output[ManifestVersion]:
    """The ``latest.json`` pointer consumers read: moved to a version only after its blocking checks
    passed, and never backwards (a slower run of an older build cannot undo a newer one)."""
    store = datasets.store()
    current = store.latest()
    moved = not current or str(current["version"]) <= dataset_manifest.version
    if moved:
        store.set_latest(
            {
                "version": dataset_manifest.version,
                "key": dataset_manifest.key,
                "uri": store.uri(dataset_manifest.key),
                "rows": dataset_manifest.rows,
                "content_hash": dataset_manifest.content_hash,
                "published_at": datetime.now(UTC).isoformat(),
                "variants_bucket": datasets.variants_bucket,
                "variants_prefix": datasets.variants_prefix,
            }
        )
    else:
        context.log.warning(f"latest stays at {current['version']} (newer than {dataset_manifest.version})")
    return dg.Output(
        dataset_manifest,
        metadata={
            "latest": dataset_manifest.version if moved else str(current["version"]),
            "moved": moved,
            "pointer": dg.MetadataValue.path(store.uri(store.latest_key())),
        },
    )


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
    balance = mf.class_balance(manifest).head(30)
    figure, axis = plt.subplots(figsize=(8, 4))
    balance[list(mf.SPLITS)].plot.bar(stacked=True, ax=axis)
    axis.set_title("images per label and split")
    axis.set_ylabel("images")
    plots["class_balance"] = _png(figure)

    processed = manifest[manifest["status"] == mf.STATUS_PROCESSED]
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

    facts = mf.summary(manifest)
    figure, axis = plt.subplots(figsize=(8, 3.5))
    axis.bar(list(facts["flags"]), list(facts["flags"].values()))
    axis.set_title("quality flags (images)")
    plots["quality_flags"] = _png(figure)

    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 3.5))
    left.hist(processed["brightness"].astype("float64").dropna(), bins=40, range=(0, 1))
    left.set_title("brightness")
    right.hist(processed["blur_score"].astype("float64").clip(upper=3000).dropna(), bins=40)
    right.set_title("blur score (variance of Laplacian, clipped at 3000)")
    plots["quality_signals"] = _png(figure)
    return plots


def report_markdown(manifest: pd.DataFrame, version: str) -> str:
    """Return the report's markdown summary (no images)."""
    facts = mf.summary(manifest)
    balance = mf.class_balance(manifest)
    lines = [
        f"# Dataset {version}",
        "",
        f"- images: **{facts['rows']}** ({facts['processed']} processed, {facts['failed']} failed), "
        f"{facts['labels']} labels",
        "- splits: " + ", ".join(f"{k} {v}" for k, v in facts["splits"].items()),
        f"- duplicate groups: {facts['dup_groups']} ({facts['images_in_dup_groups']} images share a group)",
        "- quality flags: " + ", ".join(f"{k} {v}" for k, v in facts["flags"].items()),
        "",
        "## Class balance (processed images)",
        "",
        mf.markdown_table(balance) if len(balance) else "(no images)",
    ]
    return "\n".join(lines) + "\n"


@dg.asset(group_name=GROUP, kinds={"s3", "matplotlib"})
def dataset_report(published_manifest: ManifestVersion, datasets: DatasetBucket) -> dg.MaterializeResult:
    """Class balance, sizes and quality as plots (shown in the UI) and a markdown summary, also saved
    under ``versions/<version>/report/``."""
    store = datasets.store()
    manifest = store.read_manifest(published_manifest.version)
    plots = report_plots(manifest)
    summary_md = report_markdown(manifest, published_manifest.version)
    prefix = f"{store.version_prefix(published_manifest.version)}report/"
    for name, png in plots.items():
        store.put(f"{prefix}{name}.png", png, content_type="image/png")
    store.put(f"{prefix}summary.md", summary_md.encode(), content_type="text/markdown")
    images = {
        name: dg.MetadataValue.md(f"![{name}](data:image/png;base64,{base64.b64encode(png).decode()})")
        for name, png in plots.items()
    }
    return dg.MaterializeResult(
        metadata={
            "summary": dg.MetadataValue.md(summary_md),
            **images,
            "path": dg.MetadataValue.path(store.uri(prefix)),
        }
    )


class ImageFolderConfig(dg.Config):
    #: Variant the export points at (a recipe size name: large, medium, small, thumb).
    variant: str = "small"


@dg.asset(group_name=GROUP, kinds={"s3", "huggingface"})
def imagefolder_export(
    config: ImageFolderConfig, published_manifest: ManifestVersion, datasets: DatasetBucket
) -> dg.MaterializeResult:
    """Hugging Face ImageFolder ``metadata.jsonl`` per split, pointing at one variant, under
    ``versions/<version>/imagefolder-<variant>/<split>/``."""
    store = datasets.store()
    manifest = store.read_manifest(published_manifest.version)
    per_split = mf.imagefolder_metadata(
        manifest, variant=config.variant, variants_prefix=datasets.variants_prefix
    )
    prefix = f"{store.version_prefix(published_manifest.version)}imagefolder-{config.variant}/"
    counts = {}
    for split, text in per_split.items():
        store.put(f"{prefix}{split}/metadata.jsonl", text.encode(), content_type="application/jsonl")
        counts[split] = text.count("\n")
    return dg.MaterializeResult(
        metadata={
            "variant": config.variant,
            "images": dg.MetadataValue.json(counts),
            "path": dg.MetadataValue.path(store.uri(prefix)),
            "variants_bucket": datasets.variants_bucket,
        }
    )


def recent_days(today: date, days: int) -> tuple[str, str]:
    """Return the partition range (first, last) of ``days`` days before ``today`` and today, clamped."""
    first = max((today - timedelta(days=days)).isoformat(), FIRST_DAY)
    return first, max(today.isoformat(), FIRST_DAY)


def range_tags(first: str, last: str) -> dict[str, str]:
    """Return the run tags that make one run cover partitions ``first..last`` (single-run backfill)."""
    return {"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last}


dataset_job = dg.define_asset_job(
    "dataset_job",
    selection=dg.AssetSelection.assets(image_records).downstream(),
    # One process for the whole run: a step subprocess costs seconds of imports, and the manifest
    # must land within a minute of an upload.
    executor_def=dg.in_process_executor,
    tags=DATASET_RUN_TAG,
    description="Refresh upload-day record files, build and check the manifest, publish it.",
)
