"""`image_etl.dataset.load()`: a split of a version as a `datasets.Dataset`, images read from S3."""

from __future__ import annotations

import datasets
import pytest

import image_etl.dataset
from image_etl.dataset.export import imagefolder_tables
from image_etl.dataset.table import ManifestNotFound
from image_etl.manifest import manifest_table
from image_etl.settings import Settings
from tests.image_etl.dataset.versions import build_version

pytestmark = pytest.mark.slow  # each test loads a split with Hugging Face datasets


def test_load_iterates_the_published_split_with_images_from_s3(stack: Settings) -> None:
    built = build_version(stack)
    train = built.manifest[built.manifest["split"] == "train"].set_index("image_id")

    loaded = image_etl.dataset.load(split="train", settings=stack)

    assert isinstance(loaded, datasets.Dataset) and len(loaded) == len(train)
    assert isinstance(loaded.features["image"], datasets.Image)
    assert loaded.features["label"] == datasets.ClassLabel(names=["birds", "cats", "dogs"])
    assert built.version in loaded.info.description
    seen = set()
    for example in loaded:
        row = train.loc[example["image_id"]]
        assert loaded.features["label"].int2str(example["label"]) == row["label"]
        assert example["image"].size == built.sizes[example["image_id"]]  # the variant's own file
        assert list(example["quality_flags"]) == list(row["quality_flags"])
        seen.add(example["image_id"])
    assert seen == set(train.index)
    # The same examples and features as the ImageFolder export of that split.
    export = imagefolder_tables(built.manifest, variant="small", variants_prefix="")["train"]
    assert sorted(export.column("image_id").to_pylist()) == sorted(loaded["image_id"])
    assert datasets.Features.from_arrow_schema(export.schema)["label"] == loaded.features["label"]


def test_without_a_published_version_load_reads_the_newest_and_says_so(stack: Settings) -> None:
    built = build_version(stack, images=6, publish=False)

    with pytest.warns(UserWarning, match=f"no version is published yet: loading the newest, {built.version}"):
        loaded = image_etl.dataset.load(split="validation", settings=stack)

    assert sorted(loaded["image_id"]) == sorted(
        built.manifest.loc[built.manifest["split"] == "val", "image_id"]
    )


def test_load_errors_are_clear(stack: Settings) -> None:
    with pytest.raises(ManifestNotFound, match="nothing has been built"):
        image_etl.dataset.load(settings=stack)
    build_version(stack, images=2)
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        image_etl.dataset.load(split="dev", settings=stack)
    with pytest.raises(ValueError, match="no variant 'huge'"):
        image_etl.dataset.load(variant="huge", settings=stack)
    with pytest.raises(ManifestNotFound, match="no manifest version 'nope'"):
        image_etl.dataset.load("nope", settings=stack)
    assert manifest_table(stack).published() is not None
