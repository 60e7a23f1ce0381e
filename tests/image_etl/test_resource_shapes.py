"""The resource shapes both the CDK stacks and the local stack are built from."""

from __future__ import annotations

import pytest

from image_etl.resource_shapes import LABEL_INDEX, PROCESSED_INDEX, IndexShape, TableShape


def test_the_queried_indexes_are_found_by_name_in_any_order() -> None:
    extra = IndexShape(name="by_sha256", partition_key="sha256", sort_key="image_id")
    for indexes in ((PROCESSED_INDEX, LABEL_INDEX), (LABEL_INDEX, extra, PROCESSED_INDEX)):
        table = TableShape(name="images", indexes=indexes)
        assert (table.processed_index, table.label_index) == ("by_processed_at", "by_label")


def test_a_table_without_an_index_the_code_queries_says_which_is_missing() -> None:
    table = TableShape(name="images", indexes=(PROCESSED_INDEX,))
    assert table.processed_index == "by_processed_at"
    with pytest.raises(
        ValueError, match=r"table images has no index by_label \(its indexes: by_processed_at\)"
    ):
        _ = table.label_index
