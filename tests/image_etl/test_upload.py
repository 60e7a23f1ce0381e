"""Planning uploads: ImageFolder labels, overrides, and what is skipped with a reason."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PIL import Image

from image_etl.demo import CLASSES, split_into_rounds, write_demo_dataset
from image_etl.settings import Settings
from image_etl.upload import plan_uploads, upload_all, wait_for_records
from lambda_resizer.core import process_image
from lambda_resizer.records import image_id_for, to_item


def touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_image_folder_layout_gives_each_class_folder_its_label(tmp_path: Path) -> None:
    touch(tmp_path / "ds" / "cats" / "a.jpg")
    touch(tmp_path / "ds" / "cats" / "nested" / "b.PNG")
    touch(tmp_path / "ds" / "dogs" / "c.webp")
    touch(tmp_path / "ds" / "dogs" / "notes.txt")
    touch(tmp_path / "ds" / ".hidden" / "d.jpg")
    plan = plan_uploads([tmp_path / "ds"], upload_prefix="uploads/")
    assert sorted((u.key, u.label) for u in plan.uploads) == [
        ("uploads/cats/a.jpg", "cats"),
        ("uploads/cats/nested/b.PNG", "cats"),
        ("uploads/dogs/c.webp", "dogs"),
    ]
    assert [(p.name, reason) for p, reason in plan.skipped] == [
        (".hidden", "hidden folder, not uploaded"),
        ("notes.txt", "not an image file type (.txt)"),
    ]


def test_flat_folder_is_labelled_with_its_name_and_label_overrides(tmp_path: Path) -> None:
    touch(tmp_path / "birds" / "x.jpg")
    single = touch(tmp_path / "loose.gif")
    assert [u.key for u in plan_uploads([tmp_path / "birds"], upload_prefix="uploads/").uploads] == [
        "uploads/birds/x.jpg"
    ]
    plan = plan_uploads([tmp_path / "birds", single], upload_prefix="uploads/", label="misc")
    assert sorted(u.key for u in plan.uploads) == ["uploads/misc/loose.gif", "uploads/misc/x.jpg"]


def test_files_named_explicitly_are_uploaded_even_if_not_images_and_missing_paths_are_reported(
    tmp_path: Path,
) -> None:
    text = touch(tmp_path / "readme.txt")
    plan = plan_uploads([text, tmp_path / "nope"], upload_prefix="uploads/")
    assert [u.key for u in plan.uploads] == ["uploads/readme.txt"] and plan.uploads[0].label is None
    assert plan.skipped == [(tmp_path / "nope", "no such file or folder")]


def test_demo_dataset_has_classes_duplicates_and_broken_files(tmp_path: Path) -> None:
    files = write_demo_dataset(tmp_path, per_class=4)
    plan = plan_uploads([tmp_path], upload_prefix="uploads/")
    labels = {u.label for u in plan.uploads}
    assert labels == {*CLASSES, "broken"} and len(plan.uploads) == len(files)
    copy = tmp_path / "circles" / "circles_00_copy.jpg"
    assert copy.read_bytes() == (tmp_path / "circles" / "circles_00.jpg").read_bytes()
    assert (tmp_path / "broken" / "empty.png").stat().st_size == 0


def test_demo_rounds_keep_every_file_and_key_once_and_add_pictures_and_a_duplicate_later(
    tmp_path: Path,
) -> None:
    root = tmp_path / "demo"
    files = write_demo_dataset(root, per_class=4)
    everything = sorted(u.key for u in plan_uploads([root], upload_prefix="uploads/").uploads)
    first, second = split_into_rounds(root, files, 2)
    plans = [plan_uploads([folder], upload_prefix="uploads/") for folder in (first, second)]
    keys = [sorted(u.key for u in plan.uploads) for plan in plans]
    assert sorted(keys[0] + keys[1]) == everything and not set(keys[0]) & set(keys[1])
    assert all(plan.skipped == [] for plan in plans)
    assert {u.label for u in plans[1].uploads} == set(CLASSES)  # round 2 adds to every class
    assert "uploads/circles/circles_00.jpg" in keys[0] and "uploads/circles/circles_00_copy.jpg" in keys[1]
    assert [
        folder.name
        for folder in split_into_rounds(
            tmp_path / "one", write_demo_dataset(tmp_path / "one", per_class=2), 1
        )
    ] == ["one-round-1"]


def test_nothing_in_a_folder_is_left_out_without_a_reason(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    touch(root / "cats" / "a.jpg")
    touch(root / "cats" / ".thumb.jpg")
    (root / "dogs").mkdir()
    (root / "dogs" / "loop").symlink_to(root / "cats")
    (root / "dogs" / "gone.png").symlink_to(tmp_path / "deleted.png")
    os.mkfifo(root / "dogs" / "pipe.png")
    (root / "birds").mkdir()
    (tmp_path / "empty").mkdir()

    plan = plan_uploads([root, tmp_path / "empty", root / "dogs" / "pipe.png"], upload_prefix="uploads/")

    assert [u.key for u in plan.uploads] == ["uploads/cats/a.jpg"]
    assert {(p.relative_to(tmp_path).as_posix(), reason) for p, reason in plan.skipped} == {
        ("ds/cats/.thumb.jpg", "hidden file, not uploaded"),
        ("ds/dogs/loop", "symbolic link to a folder, not followed"),
        ("ds/dogs/gone.png", "broken symbolic link"),
        ("ds/dogs/pipe.png", "not a regular file (a pipe, socket or device)"),
        ("ds/birds", "the folder has no files"),
        ("empty", "the folder has no files"),
        ("ds/dogs/pipe.png", "not a regular file or folder"),
    }


def test_two_files_that_would_share_a_key_are_not_both_uploaded(tmp_path: Path) -> None:
    first, second = touch(tmp_path / "a" / "x.png", b"1"), touch(tmp_path / "b" / "x.png", b"2")

    plan = plan_uploads([first, second, first], upload_prefix="uploads/", label="same")

    assert [(u.path, u.key) for u in plan.uploads] == [(first, "uploads/same/x.png")]
    assert plan.skipped == [
        (second, f"would overwrite {first} at the same key uploads/same/x.png; rename one of them"),
        (first, "listed more than once, uploaded once"),
    ]


@pytest.mark.parametrize(
    ("label", "problem"),
    [
        ("a/b", "one folder name"),
        ("..", "one folder name"),
        ("", "must not be empty"),
        (" cats", "must not start or end with spaces"),
        ("tab\there", "control characters"),
        ("x" * 129, "at most 128 characters"),
    ],
)
def test_a_label_that_would_change_the_key_is_refused_up_front(
    tmp_path: Path, label: str, problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        plan_uploads([touch(tmp_path / "x.png")], upload_prefix="uploads/", label=label)


def test_folder_names_are_labels_as_they_are_spaces_and_accents_included(tmp_path: Path) -> None:
    touch(tmp_path / "ds" / "golden retriever" / "a.jpg")
    touch(tmp_path / "ds" / "chát" / "b.jpg")
    plan = plan_uploads([tmp_path / "ds"], upload_prefix="uploads/")
    assert sorted((u.key, u.label) for u in plan.uploads) == [
        ("uploads/chát/b.jpg", "chát"),
        ("uploads/golden retriever/a.jpg", "golden retriever"),
    ]


def test_waiting_ignores_the_record_of_an_earlier_upload_of_the_same_key(
    stack: Settings, tmp_path: Path
) -> None:
    plan = plan_uploads(
        [touch(tmp_path / "z.png", b"now a real image")], upload_prefix="uploads/", label="chát"
    )
    etags, errors = upload_all(stack, plan.uploads)
    key = plan.uploads[0].key
    assert not errors and key == "uploads/chát/z.png"  # a Unicode label needs no metadata

    def record(etag: str, status: str) -> None:
        item = {"image_id": image_id_for(stack.upload_bucket, key), "source_etag": etag, "status": status}
        stack.client("dynamodb").put_item(TableName=stack.table_name, Item=to_item(item))

    record("etag-of-the-garbage-uploaded-before", "failed")
    assert wait_for_records(stack, etags, timeout_s=1.5) == {}
    record(etags[key], "processed")
    assert wait_for_records(stack, etags, timeout_s=5)[key]["status"] == "processed"


@pytest.mark.parametrize(
    ("name", "save"),
    [
        ("spin.apng", {"format": "PNG", "save_all": True}),
        ("photo.jfif", {"format": "JPEG"}),
        ("scan.tif", {"format": "TIFF"}),
        ("anim.gif", {"format": "GIF", "save_all": True}),
    ],
)
def test_a_folder_upload_takes_the_files_the_resizer_reads_apng_included(
    tmp_path: Path, name: str, save: dict[str, object]
) -> None:
    frames = [Image.new("RGB", (96, 72), colour) for colour in ("red", "navy")]
    path = tmp_path / "moving" / name
    path.parent.mkdir()
    frames[0].save(path, append_images=frames[1:], **save)  # type: ignore[arg-type]
    plan = plan_uploads([tmp_path / "moving"], upload_prefix="uploads/")
    assert [u.key for u in plan.uploads] == [f"uploads/moving/{name}"] and plan.skipped == []
    assert process_image(path.read_bytes()).info.width == 96  # and the resizer does read it
