"""Assets: daily record files -> a version of the manifest table -> ``published`` tag, report, export.

Lineage: ``image_records`` (daily partitions by upload day, ``pipelines.partitions``) feeds
``dataset_manifest`` (a tagged snapshot of the Iceberg table), whose blocking checks
(``pipelines.asset_checks``) gate ``published_manifest`` (the ``published`` tag consumers read),
which feeds ``dataset_report``, ``imagefolder_export`` and ``record_annotations``. Every rule lives
in ``image_etl.dataset``; these functions only wire it to Dagster.
"""

# No `from __future__ import annotations` here: Dagster reads the asset functions' annotations
# at definition time (context, config, resource and input types) and rejects string ones.

import base64
import warnings
from datetime import date, timedelta

import dagster as dg
from dagster import AssetExecutionContext

from image_etl.dataset import checks as dataset_checks
from image_etl.dataset.annotations import write_back
from image_etl.dataset.export import export_prefix, write_imagefolder_export
from image_etl.dataset.record_files import build_from_record_files, write_record_files
from image_etl.dataset.report import save_report
from pipelines.partitions import FIRST_UPLOAD_DAY, upload_days
from pipelines.resources import (
    MANIFEST_IO_MANAGER,
    DatasetBucket,
    DatasetPolicy,
    ImageRecordTable,
    ManifestVersion,
)

# A single-run backfill policy is what lets one run cover a partition range; it is marked beta.
warnings.filterwarnings("ignore", message=".*backfill_policy.*", category=dg.BetaWarning)
# An output's data version (the manifest version id, shown beside the asset in the UI) is beta too.
warnings.filterwarnings("ignore", message=".*data_version.*", category=dg.BetaWarning)

GROUP = "datasets"


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

    Partitions start on the first upload day of the settings (IMAGE_ETL_FIRST_DAY; by default the
    day the local stack was first started, or the deployed stack was created); an older upload is
    filed under the first partition. Records uploaded on day D are processed on or after D, so one
    index Query per shard for ``processed_at`` after the range's first day finds every record of
    the range; it costs the records processed since then, a few days for the sensor's and the
    nightly runs.
    """
    days = list(context.partition_keys)
    first = days[0]
    # From the day before: a writer's clock a little behind S3's can stamp processed_at before uploaded_at.
    since = "0" if first == FIRST_UPLOAD_DAY else (date.fromisoformat(first) - timedelta(days=1)).isoformat()
    records, items_read = record_table.records_processed_after(since)
    store = datasets.store()
    counts = write_record_files(store, records, days, first_day=FIRST_UPLOAD_DAY)
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


class ManifestBuildConfig(dg.Config):
    #: Ignore the previous version's splits and assign every group from its hash again.
    resplit: bool = False


@dg.asset(
    deps=[image_records],
    group_name=GROUP,
    kinds={"iceberg", "s3", "glue"},
    io_manager_key=MANIFEST_IO_MANAGER,
)
def dataset_manifest(
    context: AssetExecutionContext,
    config: ManifestBuildConfig,
    datasets: DatasetBucket,
    policy: DatasetPolicy,
) -> dg.Output[ManifestVersion]:
    """One row per distinct source image with duplicate group, quality flags and split: a new version
    of the Iceberg manifest table (a snapshot tagged with its id; not yet ``published``). Only the
    upload days whose record file changed are read, and only days whose rows differ are rewritten."""
    table = datasets.table()
    result = build_from_record_files(
        table,
        datasets.store(),
        config=policy.manifest_config(),
        resplit=config.resplit,
        variants=datasets.variants(),
        progress=context.log.info,
    )
    if result.version is None:
        raise dg.Failure("no records yet: nothing to build a manifest version from")
    context.log.info(
        f"{result.mode} build: {len(result.days_rewritten)} days rewritten, "
        f"{result.bytes_written} bytes written, {result.indexed_images} images indexed"
    )
    manifest = table.read(
        result.version,
        columns=[
            "image_id",
            "label",
            "status",
            "split",
            "dup_group",
            "sha256",
            "keep",
            "quality_flags",
            "conflicting_labels",
        ],
    )
    facts = dataset_checks.summary(manifest)
    balance = dataset_checks.class_balance(manifest)
    return dg.Output(
        ManifestVersion(result.version, int(result.snapshot_id or 0), result.rows, result.unchanged),
        # The UI shows the data version beside the asset: the manifest version this run built.
        data_version=dg.DataVersion(result.version),
        metadata={
            "version": result.version,
            "snapshot_id": str(result.snapshot_id),
            "table": table.identifier,
            "dagster/table_name": table.identifier,
            "mode": result.mode,
            "days_rewritten": dg.MetadataValue.json(result.days_rewritten[:60]),
            "bytes_written": result.bytes_written,
            "rows": facts["rows"],
            "processed": facts["processed"],
            "failed": facts["failed"],
            "dup_groups": facts["dup_groups"],
            "images_in_dup_groups": facts["images_in_dup_groups"],
            "kept": facts["kept"],
            "label_conflict_groups": facts["label_conflict_groups"],
            "label_conflict_images": facts["label_conflict_images"],
            "splits": dg.MetadataValue.json(facts["splits"]),
            "quality_flags": dg.MetadataValue.json(facts["flags"]),
            "class_balance": dg.MetadataValue.md(
                dataset_checks.markdown_table(balance) if len(balance) else "(no images)"
            ),
            "unchanged": result.unchanged,
            "dagster/row_count": facts["rows"],
        },
    )


@dg.asset(group_name=GROUP, kinds={"iceberg"}, io_manager_key=MANIFEST_IO_MANAGER)
def published_manifest(
    context: AssetExecutionContext, dataset_manifest: ManifestVersion, datasets: DatasetBucket
) -> dg.Output[ManifestVersion]:
    """The ``published`` tag consumers read: moved to a version only after its blocking checks passed,
    and never backwards (a slower run of an older build cannot undo a newer one)."""
    table = datasets.table()
    moved = table.publish(dataset_manifest.version)
    current = table.published()
    if not moved:
        context.log.warning(
            f"published stays at {current.name if current else None} (newer than {dataset_manifest.version})"
        )
    return dg.Output(
        dataset_manifest,
        data_version=dg.DataVersion(current.name) if current else None,
        metadata={
            "published": current.name if current else "",
            "snapshot_id": str(current.snapshot_id) if current else "",
            "moved": moved,
            "table": table.identifier,
            "dagster/table_name": table.identifier,
        },
    )


@dg.asset(group_name=GROUP, kinds={"s3", "matplotlib"})
def dataset_report(published_manifest: ManifestVersion, datasets: DatasetBucket) -> dg.MaterializeResult:
    """Class balance, sizes and quality as plots (shown in the UI) and a markdown summary, also saved
    under ``versions/<version>/report/``."""
    store = datasets.store()
    manifest = datasets.table().read(published_manifest.version)
    report = save_report(store, manifest, published_manifest.version)
    images = {
        name: dg.MetadataValue.md(f"![{name}](data:image/png;base64,{base64.b64encode(png).decode()})")
        for name, png in report.plots.items()
    }
    return dg.MaterializeResult(
        metadata={
            "summary": dg.MetadataValue.md(report.summary),
            **images,
            "path": dg.MetadataValue.path(store.uri(report.prefix)),
        }
    )


@dg.asset(group_name=GROUP, kinds={"dynamodb"})
def record_annotations(
    context: AssetExecutionContext,
    published_manifest: ManifestVersion,
    datasets: DatasetBucket,
    record_table: ImageRecordTable,
) -> dg.MaterializeResult:
    """The published version's split, duplicate group, quality flags and keeper on each image's
    DynamoDB record (attribute ``dataset``), where the upload API and the gallery read them. Only
    rows changed since the version this asset wrote last are sent, each conditional on the record
    still being the one the version was built from."""
    table = datasets.table()
    current = table.published()
    if current is None:
        return dg.MaterializeResult(metadata={"version": "", "written": 0})
    last = context.instance.get_latest_materialization_event(context.asset_key)
    written_before = (
        last.asset_materialization.metadata.get("version") if last and last.asset_materialization else None
    )
    previous = str(written_before.value) if written_before is not None and written_before.value else None
    result = write_back(
        table, record_table.client(), record_table.table_name, version=current.name, previous_version=previous
    )
    context.log.info(
        f"{result.written} records annotated from {current.name}, {result.unchanged} unchanged, "
        f"{result.skipped} gone or reprocessed since (the next build writes those)"
    )
    return dg.MaterializeResult(
        metadata={
            "version": current.name,
            "compared_with": previous or "",
            "written": result.written,
            "unchanged": result.unchanged,
            "skipped": result.skipped,
            "table": record_table.table_name,
        }
    )


class ImageFolderConfig(dg.Config):
    #: Variant the export points at (a recipe size name: large, medium, small, thumb).
    variant: str = "small"


@dg.asset(group_name=GROUP, kinds={"s3", "huggingface"})
def imagefolder_export(
    config: ImageFolderConfig, published_manifest: ManifestVersion, datasets: DatasetBucket
) -> dg.MaterializeResult:
    """Hugging Face ImageFolder ``metadata.parquet`` per split (features declared), pointing at one
    variant, under ``versions/<version>/imagefolder-<variant>/<split>/``; and the version's dataset
    card beside it (``versions/<version>/README.md``, ``croissant.json``)."""
    store = datasets.store()
    manifest = datasets.table().read(published_manifest.version)
    counts = write_imagefolder_export(
        store,
        manifest,
        version=published_manifest.version,
        variant=config.variant,
        variants_bucket=datasets.variants_bucket,
        variants_prefix=datasets.variants_prefix,
        license=datasets.dataset_license,
    )
    prefix = export_prefix(store, published_manifest.version, config.variant)
    return dg.MaterializeResult(
        metadata={
            "variant": config.variant,
            "images": dg.MetadataValue.json(counts),
            "path": dg.MetadataValue.path(store.uri(prefix)),
            "card": dg.MetadataValue.path(
                store.uri(f"{store.version_prefix(published_manifest.version)}README.md")
            ),
            "variants_bucket": datasets.variants_bucket,
        }
    )
