"""Hugging Face ImageFolder export of one variant of a manifest version, and its dataset card.

Each split's metadata is a ``metadata.parquet`` whose schema declares the features (the class
names of ``label`` included) in the ``huggingface`` schema metadata ``datasets`` reads, so
``load_dataset("imagefolder", data_dir=...)`` never infers them: inferred from JSON lines, a split
whose ``quality_flags`` are all empty came out ``List(null)`` against another's ``List(string)`` and
the load failed.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from image_etl.dataset.card import (
    FILE_COLUMN,
    LABEL_COLUMN,
    CardInfo,
    ExportFiles,
    croissant,
    dataset_card,
    hf_features,
    sha256_of,
)
from image_etl.dataset.records import VARIANT_PREFIX
from image_etl.dataset.rows import arrow_schema
from image_etl.dataset.rules import SPLITS, STATUS_PROCESSED

if TYPE_CHECKING:
    from image_etl.manifest import DatasetStore

#: Manifest columns each exported image carries besides its file and label (types from the table).
EXPORT_COLUMNS: tuple[str, ...] = ("image_id", "dup_group", "keep", "quality_flags", "conflicting_labels")
#: The list columns among them: an empty list, never null, so every split has the same features.
_LIST_COLUMNS = ("quality_flags", "conflicting_labels")
METADATA_FILE = "metadata.parquet"
CARD_FILE = "README.md"
CROISSANT_FILE = "croissant.json"


def class_names(manifest: pd.DataFrame) -> list[str]:
    """Return the version's class names, sorted: the ``ClassLabel`` of every split and variant."""
    processed = manifest[manifest["status"] == STATUS_PROCESSED]
    return sorted({str(label) for label in processed["label"] if isinstance(label, str) and label})


def export_schema(names: Sequence[str]) -> pa.Schema:
    """Return the Arrow schema of a split's ``metadata.parquet``, its features declared for ``datasets``.

    ``label`` is the class index (``ClassLabel``); the other columns keep the table's types.

    :param names: the class names, index order.
    """
    table = arrow_schema([])
    schema = pa.schema(
        [
            pa.field(FILE_COLUMN, pa.string()),
            pa.field(LABEL_COLUMN, pa.int64()),
            *(table.field(name) for name in EXPORT_COLUMNS),
        ]
    )
    features = hf_features(schema, names, image=False)
    return schema.with_metadata({"huggingface": json.dumps({"info": {"features": features}})})


def export_rows(manifest: pd.DataFrame, *, variant: str) -> pd.DataFrame:
    """Return the rows an export of ``variant`` holds: processed images that have that variant.

    :raises ValueError: the manifest has no such variant.
    """
    column = f"{VARIANT_PREFIX}{variant}"
    if column not in manifest.columns:
        raise ValueError(f"no variant {variant!r} in this manifest (have {variant_names_of(manifest)})")
    usable = manifest[(manifest["status"] == STATUS_PROCESSED) & manifest[column].notna()]
    return usable


def split_table(
    rows: pd.DataFrame, split: str, *, variant: str, variants_prefix: str, names: Sequence[str]
) -> pa.Table:
    """Return one split's metadata table: ``file_name`` (the variant's key below the variants prefix),
    the label's class index, then :data:`EXPORT_COLUMNS`.

    :param rows: :func:`export_rows`.
    :param names: the class names (:func:`class_names` of the whole version).
    """
    part = rows[rows["split"] == split]
    index = {name: i for i, name in enumerate(names)}
    keys = [str(key) for key in part[f"{VARIANT_PREFIX}{variant}"]]
    columns: dict[str, list[Any]] = {
        FILE_COLUMN: [k[len(variants_prefix) :] if k.startswith(variants_prefix) else k for k in keys],
        LABEL_COLUMN: [index.get(label) if isinstance(label, str) else None for label in part["label"]],
        **{name: part[name].tolist() for name in EXPORT_COLUMNS},
    }
    for name in _LIST_COLUMNS:
        columns[name] = [list(values) if values is not None else [] for values in columns[name]]
    return pa.table(columns, schema=export_schema(names))


def imagefolder_tables(manifest: pd.DataFrame, *, variant: str, variants_prefix: str) -> dict[str, pa.Table]:
    """Return, per split that has images, the ImageFolder metadata of one variant (failed images and
    images without that variant are left out).

    ``file_name`` is the variant's key below the variants prefix (``<image_id>/<variant>.jpg``), so
    copying those objects into ``<dir>/<split>/`` (``DatasetStore.download_imagefolder``) gives a
    folder ``datasets.load_dataset("imagefolder", data_dir=dir)`` reads. A split with no images is
    absent, as in any Hugging Face dataset (``datasets`` cannot read an empty ``metadata.parquet``).
    """
    rows = export_rows(manifest, variant=variant)
    names = class_names(manifest)
    tables = {
        split: split_table(rows, split, variant=variant, variants_prefix=variants_prefix, names=names)
        for split in SPLITS
    }
    return {split: table for split, table in tables.items() if table.num_rows}


def parquet_bytes(table: pa.Table) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd")
    return buffer.getvalue()


def variant_names_of(manifest: pd.DataFrame) -> list[str]:
    """Return the variant names of a manifest (its ``variant_<name>`` columns)."""
    return sorted(c[len(VARIANT_PREFIX) :] for c in manifest.columns if c.startswith(VARIANT_PREFIX))


# ---------------------------------------------------------------- in the datasets bucket


def export_prefix(store: DatasetStore, version: str, variant: str) -> str:
    return f"{store.version_prefix(version)}imagefolder-{variant}/"


def write_imagefolder_export(
    store: DatasetStore,
    manifest: pd.DataFrame,
    *,
    version: str,
    variant: str,
    variants_bucket: str,
    variants_prefix: str,
    license: str,
) -> dict[str, int]:
    """Write a version's export of ``variant`` (``imagefolder-<variant>/<split>/metadata.parquet``),
    then the version's dataset card (``README.md``, ``croissant.json``) over every variant exported.

    :return: split -> images exported (0 for a split left out: it had none).
    """
    tables = imagefolder_tables(manifest, variant=variant, variants_prefix=variants_prefix)
    prefix = export_prefix(store, version, variant)
    for split, table in tables.items():
        store.put(
            f"{prefix}{split}/{METADATA_FILE}", parquet_bytes(table), content_type="application/x-parquet"
        )
    write_version_card(
        store, version, license=license, images_uri=f"s3://{variants_bucket}/{variants_prefix}"
    )
    return {split: tables[split].num_rows if split in tables else 0 for split in SPLITS}


def exported_variants(store: DatasetStore, version: str) -> list[str]:
    """Return the variants a version has an export of (one listing of the version's folder)."""
    pages = store.s3.get_paginator("list_objects_v2").paginate(
        Bucket=store.bucket, Prefix=f"{store.version_prefix(version)}imagefolder-", Delimiter="/"
    )
    found = []
    for page in pages:
        for common in page.get("CommonPrefixes", []):
            found.append(common["Prefix"].rstrip("/").rsplit("imagefolder-", 1)[1])
    return sorted(found)


def export_files(store: DatasetStore, version: str, variant: str) -> dict[str, bytes]:
    """Return split -> the ``metadata.parquet`` of a version's export of ``variant`` (splits in order).

    :raises ManifestNotFound: there is no such export.
    """
    from image_etl.dataset.table import ManifestNotFound

    prefix = export_prefix(store, version, variant)
    files = {split: f"{prefix}{split}/{METADATA_FILE}" for split in SPLITS}
    pages = store.s3.get_paginator("list_objects_v2").paginate(Bucket=store.bucket, Prefix=prefix)
    present = {obj["Key"] for page in pages for obj in page.get("Contents", [])}
    found = {split: store.read_bytes(key) for split, key in files.items() if key in present}
    if not found:
        raise ManifestNotFound(f"no ImageFolder export of variant {variant!r} for version {version}")
    return found


def export_of(
    files: dict[str, bytes], *, variant: str, folder: str = "", images_next_to_card: bool = False
) -> ExportFiles:
    """Return what a card says about one export, from its metadata files.

    :param files: :func:`export_files`.
    :param folder: the export's folder relative to the card (``imagefolder-small/``, or "").
    :param images_next_to_card: the images sit in each split's folder (a downloaded export).
    """
    return ExportFiles(
        variant=variant,
        tables={split: pq.read_table(io.BytesIO(data)) for split, data in files.items()},
        metadata_paths={split: f"{folder}{split}/{METADATA_FILE}" for split in files},
        metadata_bytes={split: len(data) for split, data in files.items()},
        metadata_sha256={split: sha256_of(data) for split, data in files.items()},
        image_folders={split: f"{folder}{split}" for split in files} if images_next_to_card else None,
    )


def write_version_card(store: DatasetStore, version: str, *, license: str, images_uri: str) -> str:
    """Write ``versions/<version>/README.md`` and ``croissant.json`` from the exports there; return
    the card's key. Paths in both are relative to the version's folder."""
    exports = [
        export_of(export_files(store, version, variant), variant=variant, folder=f"imagefolder-{variant}/")
        for variant in exported_variants(store, version)
    ]
    info = CardInfo(version=version, license=license, images_uri=images_uri)
    write_card(store, store.version_prefix(version), exports, info)
    return f"{store.version_prefix(version)}{CARD_FILE}"


def write_card(store: DatasetStore, prefix: str, exports: Sequence[ExportFiles], info: CardInfo) -> None:
    """Write ``README.md`` and ``croissant.json`` under ``prefix`` in the datasets bucket."""
    store.put(f"{prefix}{CARD_FILE}", dataset_card(exports, info).encode(), content_type="text/markdown")
    store.put(
        f"{prefix}{CROISSANT_FILE}",
        json.dumps(croissant(exports, info), indent=2).encode(),
        content_type="application/ld+json",
    )
