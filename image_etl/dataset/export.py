"""Hugging Face ImageFolder metadata for one variant of a manifest version."""

from __future__ import annotations

import json

import pandas as pd

from image_etl.dataset.records import VARIANT_PREFIX
from image_etl.dataset.rules import SPLITS, STATUS_PROCESSED


def imagefolder_metadata(manifest: pd.DataFrame, *, variant: str, variants_prefix: str) -> dict[str, str]:
    """Return, per split, a Hugging Face ImageFolder ``metadata.jsonl`` pointing at one variant.

    ``file_name`` is the variant's key below the variants prefix (``<image_id>/<variant>.jpg``), so
    copying those objects into ``<dir>/<split>/`` (``DatasetStore.download_imagefolder``)
    gives a folder ``datasets.load_dataset("imagefolder", data_dir=dir)`` reads. Failed images and
    images without that variant are left out.

    :return: split -> JSON lines (one object per image, ``file_name`` first).
    """
    column = f"{VARIANT_PREFIX}{variant}"
    if column not in manifest.columns:
        raise ValueError(f"no variant {variant!r} in this manifest (have {variant_names_of(manifest)})")
    usable = manifest[(manifest["status"] == STATUS_PROCESSED) & manifest[column].notna()]
    out: dict[str, str] = {}
    for split in SPLITS:
        part = usable[usable["split"] == split]
        lines = [
            json.dumps(
                {
                    "file_name": str(key)[len(variants_prefix) :]
                    if str(key).startswith(variants_prefix)
                    else str(key),
                    "label": label if isinstance(label, str) else None,
                    "image_id": image_id,
                    "dup_group": group,
                    "quality_flags": list(flags) if flags is not None else [],
                }
            )
            for key, label, image_id, group, flags in zip(
                part[column],
                part["label"],
                part["image_id"],
                part["dup_group"],
                part["quality_flags"],
                strict=True,
            )
        ]
        out[split] = "".join(line + "\n" for line in lines)
    return out


def variant_names_of(manifest: pd.DataFrame) -> list[str]:
    """Return the variant names of a manifest (its ``variant_<name>`` columns)."""
    return sorted(c[len(VARIANT_PREFIX) :] for c in manifest.columns if c.startswith(VARIANT_PREFIX))
