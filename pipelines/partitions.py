"""The upload-day partitions of ``image_records``, and the ranges of them runs ask for."""

from __future__ import annotations

from datetime import date, timedelta

import dagster as dg

from image_etl.settings import load_settings

#: Where the daily partitions start (``Settings.first_day``: the local stack's first start, a
#: deployed stack's creation day, or IMAGE_ETL_FIRST_DAY), so a new dataset shows the days it has,
#: not every day since a fixed date. Read once, when the code location loads.
FIRST_UPLOAD_DAY = load_settings().first_day
#: ``end_offset=1`` adds today's partition: images uploaded today must reach the manifest today.
upload_days = dg.DailyPartitionsDefinition(start_date=FIRST_UPLOAD_DAY, end_offset=1, timezone="UTC")


def recent_days(today: date, days: int) -> tuple[str, str]:
    """Return the partition range (first, last) of ``days`` days before ``today`` and today, clamped
    to the partitions that exist (none before :data:`FIRST_UPLOAD_DAY`)."""
    first = max((today - timedelta(days=days)).isoformat(), FIRST_UPLOAD_DAY)
    return first, max(today.isoformat(), FIRST_UPLOAD_DAY)
