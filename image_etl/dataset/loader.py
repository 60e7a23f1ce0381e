"""``image_etl.dataset.load()``: one split of a manifest version as a Hugging Face ``datasets.Dataset``.

The rows are the ImageFolder export's (:func:`image_etl.dataset.export.export_rows`) and the
features its schema's (:func:`image_etl.dataset.card.hf_features`), so a loaded split and an
exported one hold the same examples with the same features.
"""

from __future__ import annotations

import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from image_etl.dataset.card import FILE_COLUMN, HF_SPLITS, IMAGE_FEATURE, hf_features, hf_split
from image_etl.dataset.export import class_names, export_rows, split_table
from image_etl.dataset.rules import SPLITS
from image_etl.dataset.table import ManifestNotFound, ManifestTable, Version

if TYPE_CHECKING:
    import datasets

    from image_etl.settings import Settings

#: Parallel S3 GETs: a variant is small, so a load is bound by request latency, not bandwidth.
DEFAULT_WORKERS = 16


def resolve_default(table: ManifestTable, version: str | None) -> Version:
    """Return ``version`` resolved; for None the published version, or the newest one (with a
    warning) when nothing is published yet.

    :raises ManifestNotFound: there is no version at all, or not the one asked for.
    """
    if version is not None:
        return table.resolve(version)
    if not table.exists():
        raise ManifestNotFound(f"no manifest in {table.identifier} yet: nothing has been built")
    published = table.published()
    if published is not None:
        return published
    kept = table.versions()
    if not kept:
        raise ManifestNotFound(f"no manifest version in {table.identifier} yet: nothing has been built")
    warnings.warn(
        f"no version is published yet: loading the newest, {kept[-1].name} (its blocking checks "
        "have not passed)",
        stacklevel=3,
    )
    return kept[-1]


def _split_name(split: str) -> str:
    """Return the project's split name for ``split`` (``validation`` is accepted for ``val``)."""
    by_hf = {hf: ours for ours, hf in HF_SPLITS.items()}
    if split in SPLITS:
        return split
    if split in by_hf:
        return by_hf[split]
    raise ValueError(f"unknown split {split!r}: one of {', '.join(SPLITS)}")


def load(
    version: str | None = None,
    split: str = "train",
    variant: str = "small",
    *,
    settings: Settings | None = None,
    workers: int = DEFAULT_WORKERS,
) -> datasets.Dataset:
    """Return one split of a manifest version as a ``datasets.Dataset``: ``image`` (an ``Image``
    feature, the variant's file read from S3), ``label`` (a ``ClassLabel`` over the version's
    classes), ``image_id``, ``dup_group``, ``quality_flags``.

    The variant files are read from the variants bucket (local stack or AWS, as ``settings`` say)
    with ``workers`` parallel GETs, and held in the dataset (a ``small`` variant weighs ~10-30 KB).

    :param version: a version id or snapshot id; None is the **published** version, or the newest
        version when none is published yet (a warning says so).
    :param split: ``train``, ``val`` (or ``validation``) or ``test``.
    :param variant: the resized variant (``small``, ``medium``, ``large``, ``thumb``).
    :param settings: where to read (default ``load_settings()``).
    :raises ManifestNotFound: no such version (or none built yet).
    :raises ValueError: an unknown split or variant.
    """
    try:
        import datasets
    except ImportError as error:  # an optional dependency: say which extra brings it
        raise ImportError("image_etl.dataset.load needs `datasets`: pip install 'image-etl[hf]'") from error
    from image_etl.manifest import manifest_table
    from image_etl.settings import load_settings

    settings = settings or load_settings()
    ours = _split_name(split)
    table = manifest_table(settings)
    resolved = resolve_default(table, version)
    manifest = table.read(resolved.name)
    location = table.variants_location()
    bucket = location.get("bucket") or settings.variants_bucket
    prefix = location.get("prefix", settings.variants_prefix)
    names = class_names(manifest)
    rows = export_rows(manifest, variant=variant)
    metadata = split_table(rows, ours, variant=variant, variants_prefix=prefix, names=names)
    keys = [f"{prefix}{name}" for name in metadata.column(FILE_COLUMN).to_pylist()]
    s3 = settings.client("s3")

    def fetch(key: str) -> dict[str, Any]:
        return {"bytes": s3.get_object(Bucket=bucket, Key=key)["Body"].read(), "path": f"s3://{bucket}/{key}"}

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        images = list(pool.map(fetch, keys))
    features = datasets.Features.from_dict(hf_features(metadata.schema, names, image=True))
    columns = {
        IMAGE_FEATURE if name == FILE_COLUMN else name: images
        if name == FILE_COLUMN
        else metadata.column(name).to_pylist()
        for name in metadata.column_names
    }
    info = datasets.DatasetInfo(
        features=features,
        description=f"image-etl manifest version {resolved.name}, variant {variant}, split {ours}",
        dataset_name="image-etl",
        config_name=variant,
    )
    return datasets.Dataset.from_dict(columns, features=features, info=info, split=hf_split(ours))
