"""The ImageFolder export loads with the real `datasets`, whatever flags each split has."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import datasets
import pyarrow.parquet as pq
import pytest

from image_etl.dataset.card import hf_split
from image_etl.dataset.export import (
    class_names,
    export_prefix,
    export_rows,
    imagefolder_tables,
    split_table,
    write_imagefolder_export,
)
from image_etl.dataset.rules import SPLITS
from image_etl.manifest import DatasetStore
from image_etl.settings import Settings
from tests.image_etl.dataset.versions import build_version


def only_train_flagged(manifest):
    """Return the manifest with flags on every train image and none at all in val and test."""
    manifest = manifest.copy()
    manifest["quality_flags"] = [["blurry"] if s == "train" else [] for s in manifest["split"]]
    return manifest


@pytest.mark.slow  # Hugging Face datasets reads the folder
def test_an_export_whose_val_split_has_no_flags_loads_with_datasets(stack: Settings, tmp_path: Path) -> None:
    built = build_version(stack)
    manifest = only_train_flagged(built.manifest)
    assert set(manifest["split"]) == set(SPLITS)  # every split has images, so every file is read
    store = DatasetStore.from_settings(stack)
    counts = write_imagefolder_export(
        store,
        manifest,
        version=built.version,
        variant="small",
        variants_bucket=stack.variants_bucket,
        variants_prefix=stack.variants_prefix,
        license="cc-by-4.0",
    )
    folder = tmp_path / "export"

    written = store.download_imagefolder(
        folder, built.version, variants_bucket=stack.variants_bucket, variants_prefix=stack.variants_prefix
    )

    assert written == sum(counts.values()) == len(manifest)
    by_id = manifest.set_index("image_id")
    for loaded in (
        datasets.load_dataset("imagefolder", data_dir=str(folder), cache_dir=str(tmp_path / "hf")),
        datasets.load_dataset(str(folder), cache_dir=str(tmp_path / "hf-card")),  # reads the folder's card
    ):
        assert sorted(loaded) == sorted(hf_split(s) for s in SPLITS)
        label = loaded["train"].features["label"]
        assert isinstance(label, datasets.ClassLabel) and label.names == ["birds", "cats", "dogs"]
        assert loaded["validation"].features == loaded["train"].features
        assert isinstance(loaded["train"].features["image"], datasets.Image)
        for split in SPLITS:
            part = loaded[hf_split(split)]
            assert len(part) == counts[split]
            for example in part:
                row = by_id.loc[example["image_id"]]
                assert row["split"] == split
                assert label.int2str(example["label"]) == row["label"]
                assert example["quality_flags"] == (["blurry"] if split == "train" else [])
                assert example["image"].size == built.sizes[example["image_id"]]  # decoded, the right file


def test_a_split_with_no_images_is_left_out_and_the_others_keep_their_features(stack: Settings) -> None:
    built = build_version(stack, images=2)
    manifest = only_train_flagged(built.manifest)
    rows = export_rows(manifest, variant="small")
    names = class_names(manifest)

    tables = imagefolder_tables(manifest, variant="small", variants_prefix=stack.variants_prefix)

    assert sorted(tables) == sorted(set(manifest["split"]))  # two images cannot fill three splits
    schemas = [
        split_table(rows, split, variant="small", variants_prefix=stack.variants_prefix, names=names).schema
        for split in SPLITS
    ]
    assert all(schema.equals(schemas[0], check_metadata=True) for schema in schemas)
    features = datasets.Features.from_arrow_schema(schemas[0])
    assert features["quality_flags"] == datasets.List(datasets.Value("string"))
    assert features["label"] == datasets.ClassLabel(names=sorted(set(built.manifest["label"])))


def test_the_version_card_lists_every_exported_variant(stack: Settings) -> None:
    built = build_version(stack, images=6)
    store = DatasetStore.from_settings(stack)
    for variant in ("small", "thumb"):
        write_imagefolder_export(
            store,
            built.manifest,
            version=built.version,
            variant=variant,
            variants_bucket=stack.variants_bucket,
            variants_prefix=stack.variants_prefix,
            license="cc-by-4.0",
        )

    card = store.read_bytes(f"{store.version_prefix(built.version)}README.md").decode()
    jsonld = json.loads(store.read_bytes(f"{store.version_prefix(built.version)}croissant.json"))

    configs = card.split("configs:", 1)[1]
    assert "config_name: small\n  default: true" in configs and "config_name: thumb" in configs
    for variant in ("small", "thumb"):
        for split in set(built.manifest["split"]):
            key = f"{export_prefix(store, built.version, variant)}{split}/metadata.parquet"
            table = pq.read_table(io.BytesIO(store.read_bytes(key)))
            assert f"imagefolder-{variant}/{split}/metadata.parquet" in configs
            [entry] = [d for d in jsonld["distribution"] if d["@id"] == f"{variant}-{split}-metadata-file"]
            assert entry["contentUrl"] == f"imagefolder-{variant}/{split}/metadata.parquet"
            assert entry["sha256"] == hashlib.sha256(store.read_bytes(key)).hexdigest()
            assert table.num_rows == (built.manifest["split"] == split).sum()
    assert f"s3://{stack.variants_bucket}/{stack.variants_prefix}" in card


def test_an_unknown_variant_is_a_clear_error(stack: Settings) -> None:
    built = build_version(stack, images=2)
    with pytest.raises(ValueError, match=r"no variant 'huge'.*small"):
        imagefolder_tables(built.manifest, variant="huge", variants_prefix=stack.variants_prefix)
