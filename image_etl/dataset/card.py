"""Dataset cards: a Hugging Face ``README.md`` (YAML front matter) and a Croissant JSON-LD file.

Both are written from the export's metadata tables (:mod:`image_etl.dataset.export`): their Arrow
schema is the one place the fields are declared, so the card's ``dataset_info.features``, the
Croissant fields, the features embedded in each ``metadata.parquet`` and the features of
``image_etl.dataset.load()`` cannot drift apart. No Dagster and no ``datasets`` here: the pipelines
write cards, and the translation from Arrow to Hugging Face features is small and tested against
the real library.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import yaml

from image_etl.dataset.rules import FLAGS

#: The export's column holding an image's path (``datasets`` turns ``file_name`` into ``image``).
FILE_COLUMN = "file_name"
IMAGE_FEATURE = "image"
LABEL_COLUMN = "label"
TASK_CATEGORY = "image-classification"
#: The Hugging Face names of the project's splits: ``datasets`` names a ``val`` folder
#: ``validation``, so the card does too and both ways of loading a folder agree.
HF_SPLITS: dict[str, str] = {"train": "train", "val": "validation", "test": "test"}
CROISSANT_SPEC = "http://mlcommons.org/croissant/1.0"
#: Hugging Face's size categories (the Hub's filter): upper bounds, exclusive.
_SIZE_BUCKETS: tuple[tuple[int, str], ...] = (
    (1_000, "n<1K"),
    (10_000, "1K<n<10K"),
    (100_000, "10K<n<100K"),
    (1_000_000, "100K<n<1M"),
    (10_000_000, "1M<n<10M"),
    (100_000_000, "10M<n<100M"),
    (1_000_000_000, "100M<n<1B"),
    (10_000_000_000, "1B<n<10B"),
    (100_000_000_000, "10B<n<100B"),
    (1_000_000_000_000, "100B<n<1T"),
)
#: What each column of the export means (the card's field list and the Croissant descriptions).
DESCRIPTIONS: dict[str, str] = {
    IMAGE_FEATURE: "The image: one resized variant (JPEG) of the uploaded picture.",
    FILE_COLUMN: "Path of the variant file, relative to the split's folder.",
    LABEL_COLUMN: "The class: the upload's label (its folder name at upload).",
    "image_id": "Stable id of the source image (a hash of its upload bucket and key).",
    "dup_group": "Duplicate group: images with the same bytes or a near-identical pHash share it "
    "(and always a split).",
    # An exported image is processed, so it never carries `failed`.
    "quality_flags": f"Quality flags raised for the image ({', '.join(f for f in FLAGS if f != 'failed')}); "
    "empty when none.",
}


def size_category(rows: int) -> str:
    """Return Hugging Face's ``size_categories`` bucket for a number of examples (``n<1K``, ...)."""
    if rows < 0:
        raise ValueError(f"a dataset cannot have {rows} rows")
    for bound, name in _SIZE_BUCKETS:
        if rows < bound:
            return name
    return "n>1T"


def hf_split(split: str) -> str:
    """Return the Hugging Face name of a project split (``val`` -> ``validation``)."""
    try:
        return HF_SPLITS[split]
    except KeyError:
        raise ValueError(f"unknown split {split!r} (have {', '.join(HF_SPLITS)})") from None


# ---------------------------------------------------------------- Arrow -> Hugging Face features

_VALUE_TYPES: dict[pa.DataType, str] = {
    pa.string(): "string",
    pa.large_string(): "large_string",
    pa.int64(): "int64",
    pa.int32(): "int32",
    pa.float64(): "float64",
    pa.float32(): "float32",
    pa.bool_(): "bool",
    pa.date32(): "date32",
}


def _value_dtype(name: str, dtype: pa.DataType) -> str:
    try:
        return _VALUE_TYPES[dtype]
    except KeyError:
        raise TypeError(f"column {name!r}: no Hugging Face feature for Arrow type {dtype}") from None


def hf_features(schema: pa.Schema, class_names: Sequence[str], *, image: bool) -> dict[str, Any]:
    """Return the Hugging Face features of an export schema, in ``datasets.Features.to_dict()`` form.

    :param schema: the export's Arrow schema (``label`` holds the class index).
    :param class_names: the ``ClassLabel`` names, index order.
    :param image: name the file column ``image`` with an ``Image`` feature (what a loaded dataset
        has); else keep ``file_name`` as a string (what a ``metadata.parquet`` declares).
    """
    features: dict[str, Any] = {}
    for field in schema:
        if field.name == FILE_COLUMN and image:
            features[IMAGE_FEATURE] = {"_type": "Image"}
        elif field.name == LABEL_COLUMN:
            features[LABEL_COLUMN] = {"_type": "ClassLabel", "names": list(class_names)}
        elif pa.types.is_list(field.type):
            inner = _value_dtype(field.name, field.type.value_type)
            features[field.name] = {"_type": "List", "feature": {"_type": "Value", "dtype": inner}}
        else:
            features[field.name] = {"_type": "Value", "dtype": _value_dtype(field.name, field.type)}
    return features


def _yaml_feature(name: str, feature: Mapping[str, Any]) -> dict[str, Any]:
    """Return one feature as the card's YAML writes it (``datasets``' ``_to_yaml_list`` form)."""
    kind = feature["_type"]
    if kind == "Image":
        return {"name": name, "dtype": "image"}
    if kind == "ClassLabel":
        return {
            "name": name,
            "dtype": {"class_label": {"names": {str(i): n for i, n in enumerate(feature["names"])}}},
        }
    if kind == "List":
        return {"name": name, "list": feature["feature"]["dtype"]}
    return {"name": name, "dtype": feature["dtype"]}


# ---------------------------------------------------------------- what a card describes


@dataclass(frozen=True)
class ExportFiles:
    """One exported variant (a card's config): the metadata of each split and where its files are.

    Paths are relative to the card's folder.
    """

    variant: str
    #: Project split name -> the split's metadata table (:func:`image_etl.dataset.export.imagefolder_tables`).
    tables: Mapping[str, pa.Table]
    #: Split -> path of its ``metadata.parquet``.
    metadata_paths: Mapping[str, str]
    #: Split -> size and sha256 of that file (Croissant's checksum).
    metadata_bytes: Mapping[str, int]
    metadata_sha256: Mapping[str, str]
    #: Split -> folder holding the images (their ``file_name`` is relative to it), or None when the
    #: images are elsewhere (the datasets bucket holds only metadata; the variants are in their bucket).
    image_folders: Mapping[str, str] | None = None
    #: Split -> bytes of its image files, when known (they are next to the card).
    image_bytes: Mapping[str, int] | None = None

    @property
    def schema(self) -> pa.Schema:
        return next(iter(self.tables.values())).schema

    def class_names(self) -> list[str]:
        """Return the ``ClassLabel`` names the tables declare (the same in every split)."""
        return class_names_of(self.schema)

    def counts(self) -> dict[str, int]:
        return {split: table.num_rows for split, table in self.tables.items()}

    def num_bytes(self, split: str) -> int:
        """Return the bytes of a split's files next to the card (metadata, and images when there)."""
        return self.metadata_bytes[split] + (self.image_bytes or {}).get(split, 0)


def class_names_of(schema: pa.Schema) -> list[str]:
    """Return the class names an export schema declares in its Hugging Face metadata."""
    raw = (schema.metadata or {}).get(b"huggingface")
    if raw is None:
        raise ValueError("not an export schema: no Hugging Face features in its metadata")
    return list(json.loads(raw)["info"]["features"][LABEL_COLUMN]["names"])


def card_license(text: str) -> str | None:
    """Return the ``license`` a card's YAML front matter states, or None."""
    if not text.startswith("---\n"):
        return None
    matter = yaml.safe_load(text[4:].split("\n---", 1)[0]) or {}
    value = matter.get("license")
    return str(value) if value else None


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class CardInfo:
    """What a card says about the dataset besides its files."""

    version: str
    license: str
    name: str = "image-etl"
    #: Where the images are when they are not next to the card (``s3://bucket/prefix``).
    images_uri: str | None = None

    @property
    def built_at(self) -> str | None:
        """Return the build time a version id starts with (ISO 8601 date), or None for other names."""
        try:
            return dt.datetime.strptime(self.version[:16], "%Y%m%dT%H%M%SZ").date().isoformat()
        except ValueError:
            return None


def front_matter(exports: Sequence[ExportFiles], info: CardInfo) -> dict[str, Any]:
    """Return the card's YAML front matter: license, task, size, ``dataset_info`` and ``configs``.

    One config per exported variant (``small`` is the default when exported); the size category
    counts the examples of the default config. A split's ``num_bytes`` counts its files next to the
    card (in the datasets bucket only the metadata: the images are in the variants bucket).
    """
    ordered = sorted(exports, key=lambda e: (e.variant != "small", e.variant))
    default = ordered[0] if ordered else None
    dataset_info = []
    configs = []
    for export in ordered:
        features = hf_features(export.schema, export.class_names(), image=True)
        dataset_info.append(
            {
                "config_name": export.variant,
                "features": [_yaml_feature(name, f) for name, f in features.items()],
                "splits": [
                    {"name": hf_split(split), "num_bytes": export.num_bytes(split), "num_examples": rows}
                    for split, rows in export.counts().items()
                ],
            }
        )
        # With the images next to the card a config names the whole split folder (ImageFolder reads
        # images and metadata); without them, only the metadata files.
        configs.append(
            {
                "config_name": export.variant,
                **({"default": True} if export is default else {}),
                "data_files": [
                    {
                        "split": hf_split(split),
                        "path": f"{export.image_folders[split]}/**"
                        if export.image_folders
                        else export.metadata_paths[split],
                    }
                    for split in export.tables
                ],
            }
        )
    return {
        "pretty_name": f"{info.name} {info.version}",
        "license": info.license,
        "task_categories": [TASK_CATEGORY],
        "size_categories": [size_category(sum(default.counts().values()) if default else 0)],
        "tags": ["image-etl", f"image-etl-version:{info.version}"],
        "dataset_info": dataset_info,
        "configs": configs,
    }


def dataset_card(exports: Sequence[ExportFiles], info: CardInfo) -> str:
    """Return a Hugging Face dataset card (``README.md``): YAML front matter, then a short description.

    :param exports: the exported variants (one config each).
    :param info: version, license, and where the images are when not next to the card.
    """
    matter = front_matter(exports, info)
    lines = [
        "---",
        yaml.safe_dump(matter, sort_keys=False, allow_unicode=True).rstrip(),
        "---",
        "",
        f"# {info.name} dataset, version `{info.version}`",
        "",
        "Images for classification, one per distinct upload that was processed, resized to one",
        "variant per config. Duplicate groups (same bytes, or near-identical pHash) never straddle",
        "splits. Written by image-etl next to the manifest version it describes; `croissant.json`",
        "beside this file describes the same fields and files in Croissant JSON-LD.",
        "",
    ]
    if not exports:
        return "\n".join([*lines, "No image of this version is exported (none was processed).", ""])
    default = next(c["config_name"] for c in matter["configs"] if c.get("default"))
    export = next(e for e in exports if e.variant == default)
    counts = export.counts()
    classes = export.class_names()
    lines += [
        f"- license: `{info.license}`",
        "- configs (variants): " + ", ".join(f"`{c['config_name']}`" for c in matter["configs"]),
        f"- classes ({len(classes)}): {', '.join(classes) if classes else '(none)'}",
        "",
        "| split | examples |",
        "| --- | ---: |",
        *(f"| {hf_split(split)} | {rows} |" for split, rows in counts.items()),
        "",
        "## Fields",
        "",
        *(
            f"- `{name}`: {DESCRIPTIONS.get(name, '')}".rstrip()
            for name in hf_features(export.schema, classes, image=True)
        ),
        "",
        "## Loading",
        "",
    ]
    if export.image_folders:
        lines += [
            "```python",
            "from datasets import load_dataset",
            'ds = load_dataset("imagefolder", data_dir=".")  # or load_dataset(".") with this card',
            "```",
        ]
    else:
        lines += [
            f"The images are in `{info.images_uri}`; the metadata files hold their keys below it.",
            "",
            "```python",
            "import image_etl.dataset",
            f'ds = image_etl.dataset.load(version="{info.version}", split="train", variant="{default}")',
            "```",
        ]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- Croissant

_CROISSANT_CONTEXT: dict[str, Any] = {
    "@language": "en",
    "@vocab": "https://schema.org/",
    "citeAs": "cr:citeAs",
    "column": "cr:column",
    "conformsTo": "dct:conformsTo",
    "cr": "http://mlcommons.org/croissant/",
    "rai": "http://mlcommons.org/croissant/RAI/",
    "data": {"@id": "cr:data", "@type": "@json"},
    "dataType": {"@id": "cr:dataType", "@type": "@vocab"},
    "dct": "http://purl.org/dc/terms/",
    "equivalentProperty": "cr:equivalentProperty",
    "examples": {"@id": "cr:examples", "@type": "@json"},
    "extract": "cr:extract",
    "field": "cr:field",
    "fileProperty": "cr:fileProperty",
    "fileObject": "cr:fileObject",
    "fileSet": "cr:fileSet",
    "format": "cr:format",
    "includes": "cr:includes",
    "isLiveDataset": "cr:isLiveDataset",
    "jsonPath": "cr:jsonPath",
    "key": "cr:key",
    "md5": "cr:md5",
    "parentField": "cr:parentField",
    "path": "cr:path",
    "recordSet": "cr:recordSet",
    "references": "cr:references",
    "regex": "cr:regex",
    "repeated": "cr:repeated",
    "replace": "cr:replace",
    "samplingRate": "cr:samplingRate",
    "sc": "https://schema.org/",
    "separator": "cr:separator",
    "source": "cr:source",
    "subField": "cr:subField",
    "transform": "cr:transform",
}
_CROISSANT_TYPES: dict[str, str] = {
    "string": "sc:Text",
    "large_string": "sc:Text",
    "int64": "sc:Integer",
    "int32": "sc:Integer",
    "float64": "sc:Float",
    "float32": "sc:Float",
    "bool": "sc:Boolean",
    "date32": "sc:Date",
}


def croissant(exports: Sequence[ExportFiles], info: CardInfo) -> dict[str, Any]:
    """Return the Croissant JSON-LD of the same exports: the metadata files (and image files when
    they are next to it), a record set of class names, and one record set per variant.

    :param exports: the exported variants.
    :param info: version, license.
    """
    distribution: list[dict[str, Any]] = []
    record_sets: list[dict[str, Any]] = []
    classes_added = False
    for export in sorted(exports, key=lambda e: (e.variant != "small", e.variant)):
        variant = export.variant
        features = hf_features(export.schema, export.class_names(), image=False)
        if not classes_added:
            # The classes, as an enumeration the label fields point into (index -> name).
            record_sets.append(
                {
                    "@type": "cr:RecordSet",
                    "@id": "classes",
                    "name": "classes",
                    "description": "The class names; a label is an index into them.",
                    "dataType": "sc:Enumeration",
                    "key": {"@id": "classes/index"},
                    "field": [
                        {
                            "@type": "cr:Field",
                            "@id": "classes/index",
                            "name": "index",
                            "dataType": "sc:Integer",
                        },
                        {"@type": "cr:Field", "@id": "classes/name", "name": "name", "dataType": "sc:Text"},
                    ],
                    "data": [
                        {"classes/index": i, "classes/name": name}
                        for i, name in enumerate(export.class_names())
                    ],
                }
            )
            classes_added = True
        for split in export.tables:
            file_id = f"{variant}-{split}-metadata-file"
            distribution.append(
                {
                    "@type": "cr:FileObject",
                    "@id": file_id,
                    "name": file_id,
                    "description": f"Metadata of the {hf_split(split)} split, variant {variant}.",
                    "contentUrl": export.metadata_paths[split],
                    "encodingFormat": "application/x-parquet",
                    "sha256": export.metadata_sha256[split],
                }
            )
            if export.image_folders:
                distribution.append(
                    {
                        "@type": "cr:FileSet",
                        "@id": f"{variant}-{split}-image-files",
                        "name": f"{variant}-{split}-image-files",
                        "description": f"Images of the {hf_split(split)} split, variant {variant}.",
                        "encodingFormat": "image/jpeg",
                        "includes": f"{export.image_folders[split]}/*/*.jpg",
                    }
                )
            set_id = f"{variant}_{hf_split(split)}"
            fields = []
            for name, feature in features.items():
                field: dict[str, Any] = {
                    "@type": "cr:Field",
                    "@id": f"{set_id}/{name}",
                    "name": name,
                    "description": DESCRIPTIONS.get(name, name),
                    "source": {"fileObject": {"@id": file_id}, "extract": {"column": name}},
                }
                if feature["_type"] == "ClassLabel":
                    field["dataType"] = "sc:Integer"
                    field["references"] = {"field": {"@id": "classes/index"}}
                elif feature["_type"] == "List":
                    field["dataType"] = _CROISSANT_TYPES[feature["feature"]["dtype"]]
                    field["repeated"] = True
                else:
                    field["dataType"] = _CROISSANT_TYPES[feature["dtype"]]
                fields.append(field)
                if name == FILE_COLUMN and export.image_folders:
                    # Joined to the image files on their path, so a record carries its image.
                    field["references"] = {"field": {"@id": f"{set_id}_images/{FILE_COLUMN}"}}
                    fields.append(
                        {
                            "@type": "cr:Field",
                            "@id": f"{set_id}/{IMAGE_FEATURE}",
                            "name": IMAGE_FEATURE,
                            "description": DESCRIPTIONS[IMAGE_FEATURE],
                            "dataType": "sc:ImageObject",
                            "source": {"field": {"@id": f"{set_id}_images/{IMAGE_FEATURE}"}},
                        }
                    )
            record_sets.append(
                {
                    "@type": "cr:RecordSet",
                    "@id": set_id,
                    "name": set_id,
                    "description": f"The {hf_split(split)} split of variant {variant}: "
                    f"{export.tables[split].num_rows} examples.",
                    "key": {"@id": f"{set_id}/image_id"},
                    "field": fields,
                }
            )
            if export.image_folders:
                images_id = f"{variant}-{split}-image-files"
                record_sets.append(
                    {
                        "@type": "cr:RecordSet",
                        "@id": f"{set_id}_images",
                        "name": f"{set_id}_images",
                        "description": f"The image files of {set_id}; {FILE_COLUMN} in {set_id} is "
                        "their path below the split's folder.",
                        "key": {"@id": f"{set_id}_images/{FILE_COLUMN}"},
                        "field": [
                            {
                                "@type": "cr:Field",
                                "@id": f"{set_id}_images/{FILE_COLUMN}",
                                "name": FILE_COLUMN,
                                "dataType": "sc:Text",
                                "source": {
                                    "fileSet": {"@id": images_id},
                                    "extract": {"fileProperty": "fullpath"},
                                    "transform": {"regex": f"^{export.image_folders[split]}/(.*)$"},
                                },
                            },
                            {
                                "@type": "cr:Field",
                                "@id": f"{set_id}_images/{IMAGE_FEATURE}",
                                "name": IMAGE_FEATURE,
                                "description": DESCRIPTIONS[IMAGE_FEATURE],
                                "dataType": "sc:ImageObject",
                                "source": {
                                    "fileSet": {"@id": images_id},
                                    "extract": {"fileProperty": "content"},
                                },
                            },
                        ],
                    }
                )
    description = (
        f"Images for classification from image-etl, manifest version {info.version}: one resized "
        "variant per record set, duplicate groups never straddling splits."
    )
    if info.images_uri:
        description += f" The images are in {info.images_uri} (file_name is their key below it)."
    return {
        "@context": _CROISSANT_CONTEXT,
        "@type": "sc:Dataset",
        "conformsTo": CROISSANT_SPEC,
        "name": f"{info.name}-{info.version}",
        "description": description,
        "license": info.license,
        # Croissant's `version` is semver; a version id is not, so it is the dataset's identifier.
        "identifier": info.version,
        **({"datePublished": info.built_at} if info.built_at else {}),
        "keywords": [TASK_CATEGORY, "image-etl"],
        "distribution": distribution,
        "recordSet": record_sets,
    }
