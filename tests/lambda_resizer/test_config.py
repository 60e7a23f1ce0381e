"""The resize function's settings: exactly what `image_etl.resource_shapes` sets, each one required."""

from __future__ import annotations

import pytest

from image_etl.resource_shapes import LOCAL, resizer_environment
from lambda_resizer.config import MissingSetting, ResizerConfig
from lambda_resizer.recipe import Recipe


def environment(*, standard: bool = True) -> dict[str, str]:
    function = LOCAL.function if standard else LOCAL.large_function
    return resizer_environment(
        upload_prefix=LOCAL.upload_prefix,
        variants_bucket="variants-1a2b",
        variants_prefix=LOCAL.variants_prefix,
        table_name="Images-1a2b",
        table=LOCAL.table,
        function=function,
        queue=LOCAL.queue,
        large_queue_url="https://sqs.eu-west-1.amazonaws.com/111111111111/large" if standard else None,
        large_function=LOCAL.large_function if standard else None,
    )


def test_the_config_carries_the_values_the_resource_module_sets() -> None:
    config = ResizerConfig.from_env(environment())
    assert (config.index_shards, config.max_receive_count) == (
        LOCAL.table.index_shards,
        LOCAL.queue.max_receive_count,
    )
    assert (config.max_object_bytes, config.start_margin_ms, config.tier) == (
        LOCAL.function.max_object_bytes,
        LOCAL.function.start_margin_s * 1000,
        "standard",
    )
    assert (config.recipe.jpeg_quality, config.recipe.max_pixels, config.recipe.formats) == (
        LOCAL.function.jpeg_quality,
        LOCAL.function.max_pixels,
        LOCAL.function.output_formats,
    )
    assert config.large_memory_mb == LOCAL.large_function.memory_mb


def test_the_large_tier_hands_nothing_over() -> None:
    config = ResizerConfig.from_env(environment(standard=False))
    assert (config.tier, config.large_queue_url, config.large_memory_mb) == ("large", None, None)


# The handover variables are the standard tier's only; Pillow reads PILLOW_* and Powertools its own.
@pytest.mark.parametrize(
    "name",
    sorted(
        set(environment())
        - {
            "LARGE_QUEUE_URL",
            "LARGE_MEMORY_MB",
            "POWERTOOLS_SERVICE_NAME",
            "PILLOW_BLOCKS_MAX",
            "PILLOW_BLOCK_SIZE",
        }
    ),
)
def test_a_missing_variable_stops_the_function_naming_it(name: str) -> None:
    env = {key: value for key, value in environment().items() if key != name}
    with pytest.raises(MissingSetting, match=f"environment variable {name} is not set"):
        ResizerConfig.from_env(env)


@pytest.mark.parametrize("standard", [True, False], ids=["standard", "large"])
def test_the_core_recipe_defaults_are_the_deployed_ones(standard: bool) -> None:
    # The core is deployed alone and keeps defaults for callers that build a Recipe themselves
    # (`process_image`, tests, the benchmark); they must be what both tiers are deployed with.
    assert Recipe() == ResizerConfig.from_env(environment(standard=standard)).recipe
