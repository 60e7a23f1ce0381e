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
``export``      Hugging Face ImageFolder metadata
``report``      plots and the markdown summary of a version
"""
