"""The upload API's settings: exactly what `image_etl.resource_shapes` sets, each one required."""

from __future__ import annotations

import pytest

from image_etl.resource_shapes import LOCAL
from lambda_upload_api.config import ApiConfig, MissingSetting
from tests.function_environments import upload_api_env

ENV = upload_api_env(allowed_origin="https://d111.cloudfront.net/")


def test_the_config_carries_the_values_the_resource_module_sets() -> None:
    config = ApiConfig.from_env(ENV)
    assert (config.index_shards, config.processed_index, config.label_index) == (
        LOCAL.table.index_shards,
        LOCAL.table.processed_index,
        LOCAL.table.label_index,
    )
    assert (config.max_upload_bytes, config.presign_expiry_s, config.variant_url_expiry_s) == (
        LOCAL.upload_api.max_upload_bytes,
        LOCAL.upload_api.presign_expiry_s,
        LOCAL.upload_api.variant_url_expiry_s,
    )
    assert config.upload_prefix == LOCAL.upload_prefix
    assert config.allowed_origin == "https://d111.cloudfront.net"  # an origin has no trailing slash


@pytest.mark.parametrize("name", sorted(set(ENV) - {"POWERTOOLS_SERVICE_NAME"}))
def test_a_missing_variable_stops_the_function_naming_it(name: str) -> None:
    env = {key: value for key, value in ENV.items() if key != name}
    with pytest.raises(MissingSetting, match=f"environment variable {name} is not set"):
        ApiConfig.from_env(env)
