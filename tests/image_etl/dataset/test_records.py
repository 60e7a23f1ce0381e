"""Upload days: a record's partition, clamped to the first upload day so nothing falls outside."""

from __future__ import annotations

from image_etl.dataset.records import upload_day
from image_etl.dataset.rules import FIRST_DAY


def test_an_upload_before_the_first_day_is_filed_under_it_and_later_ones_keep_their_day() -> None:
    old = {"uploaded_at": "2026-11-01T09:00:00Z", "processed_at": "2026-11-01T09:00:01Z"}
    assert upload_day(old, first_day="2026-11-30") == "2026-11-30"
    assert upload_day(old) == "2026-11-01" and FIRST_DAY < "2026-11-01"
    assert upload_day({"processed_at": "2026-12-02T00:00:00Z"}, first_day="2026-11-30") == "2026-12-02"
