"""The dataset policy resource: the dataset rules' own defaults, overridden only by variables that are set."""

from __future__ import annotations

from pathlib import Path

import pytest

from image_etl.dataset.rules import ManifestConfig, RetentionPolicy, SplitRatios
from image_etl.settings import load_settings
from pipelines.resources import DatasetPolicy, build_resources

VARIABLES = (
    "IMAGE_ETL_NEAR_DUP_DISTANCE",
    "IMAGE_ETL_SPLIT_RATIOS",
    "IMAGE_ETL_MAX_FAILED_RATE",
    "IMAGE_ETL_LABEL_CONFLICTS_BLOCK",
    "IMAGE_ETL_NIGHTLY_DAYS",
    "IMAGE_ETL_SENSOR_OVERLAP_S",
    "IMAGE_ETL_RETAIN_DAYS",
    "IMAGE_ETL_RETAIN_VERSIONS",
)


@pytest.fixture(autouse=True)
def unset(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)


def test_with_nothing_set_the_policy_is_the_dataset_rules() -> None:
    policy = DatasetPolicy.from_env()
    assert policy.manifest_config() == ManifestConfig()
    assert policy.retention() == RetentionPolicy()


def test_set_variables_override_the_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMAGE_ETL_SPLIT_RATIOS", "0.7,0.2,0.1")
    monkeypatch.setenv("IMAGE_ETL_NEAR_DUP_DISTANCE", "4")
    monkeypatch.setenv("IMAGE_ETL_RETAIN_VERSIONS", "3")
    policy = DatasetPolicy.from_env()
    config = policy.manifest_config()
    assert (config.ratios, config.near_dup_distance) == (SplitRatios(0.7, 0.2, 0.1), 4)
    assert policy.retention() == RetentionPolicy(keep_last=3)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("IMAGE_ETL_NIGHTLY_DAYS", "three"),
        ("IMAGE_ETL_MAX_FAILED_RATE", "a fifth"),
        ("IMAGE_ETL_SPLIT_RATIOS", "0.5,0.5,0.5"),
        ("IMAGE_ETL_SPLIT_RATIOS", "0.9,0.1"),
    ],
)
def test_a_bad_value_is_refused_at_load_time(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=name):
        DatasetPolicy.from_env()


def test_the_dataset_cards_license_comes_from_the_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("IMAGE_ETL_DATASET_LICENSE", raising=False)
    assert build_resources(load_settings(tmp_path))["datasets"].dataset_license == "unknown"
    monkeypatch.setenv("IMAGE_ETL_DATASET_LICENSE", "cc-by-4.0")
    assert build_resources(load_settings(tmp_path))["datasets"].dataset_license == "cc-by-4.0"
