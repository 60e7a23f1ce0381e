"""Planning uploads: ImageFolder labels, overrides, and what is skipped with a reason."""

from __future__ import annotations

from pathlib import Path

from image_etl.demo import CLASSES, write_demo_dataset
from image_etl.upload import plan_uploads


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
    assert [(p.name, "not an image" in reason) for p, reason in plan.skipped] == [("notes.txt", True)]


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
