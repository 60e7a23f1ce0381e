"""Dataset cards: the Hugging Face card and the Croissant file say what the loaders find."""

from __future__ import annotations

import io
from pathlib import Path

import datasets
import mlcroissant as mlc
import pytest
from huggingface_hub import DatasetCard
from PIL import Image

from image_etl.dataset.card import size_category
from image_etl.dataset.export import write_imagefolder_export
from image_etl.manifest import DatasetStore
from image_etl.settings import Settings
from tests.image_etl.dataset.versions import BuiltVersion, build_version


@pytest.mark.parametrize(
    ("rows", "category"),
    [
        (0, "n<1K"),
        (999, "n<1K"),
        (1_000, "1K<n<10K"),
        (99_999, "10K<n<100K"),
        (1_000_000, "1M<n<10M"),
        (10**12, "n>1T"),
    ],
)
def test_size_categories_are_hugging_faces_buckets(rows: int, category: str) -> None:
    assert size_category(rows) == category


def exported(stack: Settings, images: int = 12) -> tuple[BuiltVersion, DatasetStore]:
    built = build_version(stack, images=images)
    store = DatasetStore.from_settings(stack)
    write_imagefolder_export(
        store,
        built.manifest,
        version=built.version,
        variant="small",
        variants_bucket=stack.variants_bucket,
        variants_prefix=stack.variants_prefix,
        license="cc-by-4.0",
    )
    return built, store


def croissant_records(path: Path, record_set: str) -> list[dict[str, object]]:
    """Return a record set's records as mlcroissant reads them (it validates the file first)."""
    return list(mlc.Dataset(jsonld=str(path)).records(record_set=record_set))


@pytest.mark.slow  # datasets and mlcroissant read it
def test_a_downloaded_exports_card_and_croissant_describe_what_loads(stack: Settings, tmp_path: Path) -> None:
    built, store = exported(stack)
    folder = tmp_path / "export"
    store.download_imagefolder(  # the folder's card states the license the version's card does
        folder, built.version, variants_bucket=stack.variants_bucket, variants_prefix=stack.variants_prefix
    )

    loaded = datasets.load_dataset("imagefolder", data_dir=str(folder), cache_dir=str(tmp_path / "hf"))
    card = DatasetCard.load(folder / "README.md").data
    [info] = datasets.info.DatasetInfosDict.from_dataset_card_data(card).values()

    assert card.license == "cc-by-4.0" and card.task_categories == ["image-classification"]
    assert card.size_categories == ["n<1K"]
    assert info.features == loaded["train"].features  # declared, not inferred: the same features
    assert {name: split.num_examples for name, split in info.splits.items()} == {
        name: len(part) for name, part in loaded.items()
    }
    assert sum(len(part) for part in loaded.values()) == len(built.manifest)
    names = loaded["train"].features["label"].names
    for split in loaded:
        expected = {
            example["image_id"]: (names[example["label"]], example["image"].size) for example in loaded[split]
        }
        records = croissant_records(folder / "croissant.json", f"small_{split}")
        got = {
            r[f"small_{split}/image_id"].decode(): (
                names[r[f"small_{split}/label"]],
                r[f"small_{split}/image"].size,  # the joined image file, decoded
            )
            for r in records
        }
        assert got == expected
    classes = croissant_records(folder / "croissant.json", "classes")
    assert [c["classes/name"] for c in classes] == names


@pytest.mark.slow  # mlcroissant reads it
def test_the_version_card_in_the_bucket_reads_with_mlcroissant(stack: Settings, tmp_path: Path) -> None:
    built, store = exported(stack)
    copy = tmp_path / "version"
    prefix = store.version_prefix(built.version)
    for page in store.s3.get_paginator("list_objects_v2").paginate(Bucket=store.bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            target = copy / obj["Key"][len(prefix) :]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(store.read_bytes(obj["Key"]))

    records = croissant_records(copy / "croissant.json", "small_train")

    train = built.manifest[built.manifest["split"] == "train"]
    assert sorted(r["small_train/image_id"].decode() for r in records) == sorted(train["image_id"])
    card = DatasetCard.load(copy / "README.md")
    assert card.data.license == "cc-by-4.0"
    # In the bucket the images are not next to the card: it says where they are.
    assert f"s3://{stack.variants_bucket}/{stack.variants_prefix}" in card.text
    key = f"{stack.variants_prefix}{records[0]['small_train/file_name'].decode()}"
    body = stack.client("s3").get_object(Bucket=stack.variants_bucket, Key=key)["Body"].read()
    assert Image.open(io.BytesIO(body)).format == "JPEG"
