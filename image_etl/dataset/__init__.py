"""The dataset manifest, with no Dagster in it: records to rows, duplicate groups, splits, quality flags,
and the Iceberg table that holds every version.

The Dagster assets, the notebooks' helpers (``image_etl.explore``), the CLI and the benchmark all
import this package, so a rule lives in exactly one place. Modules by role:

``rules``       thresholds, split ratios, retention policy (the defaults)
``records``     image records (DynamoDB items as dicts) to typed frames, one upload day at a time
``keys``        the 8-byte integer forms of ids, hashes and times that the compact index holds
``duplicates``  the block search for near-duplicate pHashes and the union-find over matches
``groups``      duplicate-group names and sticky splits
``members``     what a group decides about its members: the keeper, label conflicts
``flags``       quality flags
``rows``        manifest rows and the table's Arrow schema
``table``       the Iceberg table: catalog, index, partitions, versions (tags), publishing
``build``       incremental runs and full rebuilds (both replace only partitions that changed)
``record_files`` the daily record files in S3: written per day, read back by changed fingerprint
``retention``   expiring versions and deleting the files no kept version references
``checks``      the logic of the blocking and warning checks, and summaries
``export``      Hugging Face ImageFolder metadata (``metadata.parquet`` with declared features)
``card``        dataset cards: Hugging Face ``README.md`` and Croissant JSON-LD, from the export's schema
``loader``      :func:`load`: a split of a version as a ``datasets.Dataset`` (images read from S3)
``report``      plots and the markdown summary of a version
``annotations`` a version's split, duplicate group and flags written back onto the DynamoDB records
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import datasets


def load(
    version: str | None = None, split: str = "train", variant: str = "small", **options: Any
) -> datasets.Dataset:
    """Return one split of a manifest version as a ``datasets.Dataset`` (:func:`.loader.load`).

    ``version=None`` is the published version, or the newest one when none is published yet.
    Imported on call: the package's other modules need neither ``datasets`` nor S3.
    """
    from image_etl.dataset.loader import load as _load

    return _load(version, split, variant, **options)
