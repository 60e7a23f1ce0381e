"""Upload files and folders into the upload bucket (local stack or AWS: the same code)."""

from __future__ import annotations

import mimetypes
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from image_etl.settings import Settings
from lambda_resizer.records import from_item, image_id_for
from lambda_resizer.sniffing import accepted_extensions

#: What a folder upload takes: the extensions of the formats the resizer opens (``.apng`` too).
IMAGE_SUFFIXES = accepted_extensions()


#: Longest label the CLI accepts (one folder level of the key; the API's own rule is stricter).
MAX_LABEL_CHARS = 128


@dataclass(frozen=True)
class PlannedUpload:
    path: Path
    key: str
    label: str | None
    size: int


@dataclass(frozen=True)
class UploadPlan:
    uploads: list[PlannedUpload]
    skipped: list[tuple[Path, str]]  # path, reason


def label_problem(label: str) -> str | None:
    """Return why ``label`` cannot be a label (it becomes one folder of the object key), or None.

    Folder names of an ImageFolder tree are labels as they are, spaces and accents included; what
    is refused would change the key's structure or the record's label: a '/', '.' or '..', control
    characters, blank or padded names.
    """
    if not label or not label.strip():
        return "a label must not be empty"
    if label != label.strip():
        return "a label must not start or end with spaces"
    if "/" in label or "\\" in label or label in (".", ".."):
        return "a label is one folder name: no '/' or '\\', and not '.' or '..'"
    if any(ord(char) < 32 or ord(char) == 127 for char in label):
        return "a label must not contain control characters"
    if len(label) > MAX_LABEL_CHARS:
        return f"a label has at most {MAX_LABEL_CHARS} characters"
    return None


def plan_uploads(paths: Sequence[Path], *, upload_prefix: str, label: str | None = None) -> UploadPlan:
    """Return what to upload where: folders follow ImageFolder (``root/<label>/<file>``).

    A folder with sub-folders gives each sub-folder's name as the label of the images inside it;
    a folder of images gives its own name; a file alone has no label unless ``label`` is given.
    ``label`` overrides all of them. Everything in a folder that is not uploaded is reported with
    the reason: other file types, hidden files and folders, links to folders (not followed), broken
    links, pipes and devices, empty folders. A file named explicitly is always uploaded, so the
    resizer can judge it. Two files that would land on the same key are never both uploaded.

    :raises ValueError: when ``label`` cannot be a label (see :func:`label_problem`).
    """
    if label is not None and (problem := label_problem(label)):
        raise ValueError(f"--label {label!r}: {problem}")
    uploads: list[PlannedUpload] = []
    skipped: list[tuple[Path, str]] = []
    for path in paths:
        if path.is_dir():
            found, passed = _plan_folder(path, label, upload_prefix)
            uploads += found
            skipped += passed
        elif path.is_file():
            uploads.append(_planned(path, path.name, label, upload_prefix))
        elif path.is_symlink() and not path.exists():
            skipped.append((path, "broken symbolic link"))
        elif path.exists():
            skipped.append((path, "not a regular file or folder"))
        else:
            skipped.append((path, "no such file or folder"))
    return _without_clashes(uploads, skipped)


def _plan_folder(
    root: Path, label: str | None, upload_prefix: str
) -> tuple[list[PlannedUpload], list[tuple[Path, str]]]:
    uploads: list[PlannedUpload] = []
    skipped: list[tuple[Path, str]] = []
    for folder, dirnames, filenames in os.walk(root):  # does not follow links to folders
        here = Path(folder)
        if not dirnames and not filenames:
            skipped.append((here, "the folder has no files"))
        walked = []
        for name in sorted(dirnames):
            sub = here / name
            if name.startswith("."):
                skipped.append((sub, "hidden folder, not uploaded"))
            elif sub.is_symlink():
                skipped.append((sub, "symbolic link to a folder, not followed"))
            else:
                walked.append(name)
        dirnames[:] = walked  # os.walk descends only into these
        for name in sorted(filenames):
            file = here / name
            relative = file.relative_to(root)
            reason = _skip_reason(file)
            if reason:
                skipped.append((file, reason))
                continue
            folder_label = relative.parts[0] if len(relative.parts) > 1 else root.resolve().name
            if label is None and (problem := label_problem(folder_label)):
                skipped.append((file, f"folder name {folder_label!r} cannot be a label: {problem}"))
                continue
            inner = Path(*relative.parts[1:]) if len(relative.parts) > 1 else relative
            uploads.append(_planned(file, inner.as_posix(), label or folder_label, upload_prefix))
    return uploads, skipped


def _skip_reason(file: Path) -> str | None:
    if file.name.startswith("."):
        return "hidden file, not uploaded"
    if file.is_symlink() and not file.exists():
        return "broken symbolic link"
    if not file.is_file():
        return "not a regular file (a pipe, socket or device)"
    if file.suffix.lower() not in IMAGE_SUFFIXES:
        return f"not an image file type ({file.suffix or 'no extension'})"
    return None


def _without_clashes(uploads: list[PlannedUpload], skipped: list[tuple[Path, str]]) -> UploadPlan:
    """Return the plan with one upload per key: a later file would overwrite an earlier one."""
    first: dict[str, PlannedUpload] = {}
    kept: list[PlannedUpload] = []
    for item in uploads:
        earlier = first.setdefault(item.key, item)
        if earlier is item:
            kept.append(item)
        elif earlier.path.resolve() == item.path.resolve():
            skipped.append((item.path, "listed more than once, uploaded once"))
        else:
            skipped.append(
                (item.path, f"would overwrite {earlier.path} at the same key {item.key}; rename one of them")
            )
    return UploadPlan(kept, skipped)


def _planned(path: Path, name: str, label: str | None, upload_prefix: str) -> PlannedUpload:
    key = f"{upload_prefix}{label}/{name}" if label else f"{upload_prefix}{name}"
    return PlannedUpload(path, key, label, path.stat().st_size)


def upload_all(
    settings: Settings,
    uploads: Iterable[PlannedUpload],
    *,
    concurrency: int = 8,
    on_done: Callable[[PlannedUpload], None] | None = None,
) -> tuple[dict[str, str], list[tuple[PlannedUpload, str]]]:
    """Upload every planned file with ``concurrency`` threads.

    :return: key -> ETag of each object written (to tell its record from one of an earlier upload
        of the same key), and (upload, error) for each failure.
    """
    s3 = settings.client("s3")
    etags: dict[str, str] = {}
    errors: list[tuple[PlannedUpload, str]] = []

    def put(item: PlannedUpload) -> str:
        # One PUT per file (its ETag is in the answer); the resizer refuses files over 50 MiB anyway.
        # The label is the key's folder: no metadata needed, so any Unicode label works.
        content_type = mimetypes.guess_type(item.path.name)[0] or "application/octet-stream"
        with item.path.open("rb") as body:
            response = s3.put_object(
                Bucket=settings.upload_bucket, Key=item.key, Body=body, ContentType=content_type
            )
        return str(response["ETag"]).strip('"')

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        futures = {pool.submit(put, item): item for item in uploads}
        for future in as_completed(futures):
            item = futures[future]
            error = future.exception()
            if error is not None:
                errors.append((item, f"{type(error).__name__}: {error}"))
            else:
                etags[item.key] = future.result()
            if on_done:
                on_done(item)
    return etags, errors


def wait_for_records(
    settings: Settings,
    etags: Mapping[str, str],
    *,
    timeout_s: float = 120.0,
    on_progress: Callable[[int], None] | None = None,
) -> dict[str, dict[str, Any]]:
    """Return key -> record for the uploads whose record appeared within ``timeout_s``.

    :param etags: key -> ETag of the object just uploaded: a record of an earlier object at the
        same key (another ETag) is not its record, and is waited past.
    """
    dynamodb = settings.client("dynamodb")
    wanted = {image_id_for(settings.upload_bucket, key): key for key in etags}
    found: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout_s
    while len(found) < len(wanted) and time.monotonic() < deadline:
        missing = [image_id for image_id in wanted if wanted[image_id] not in found]
        for start in range(0, len(missing), 100):
            chunk = missing[start : start + 100]
            response = dynamodb.batch_get_item(
                RequestItems={settings.table_name: {"Keys": [{"image_id": {"S": i}} for i in chunk]}}
            )
            for item in response["Responses"].get(settings.table_name, []):
                record = from_item(item)
                key = wanted[record["image_id"]]
                if record.get("source_etag") == etags[key]:
                    found[key] = record
        if on_progress:
            on_progress(len(found))
        if len(found) < len(wanted):
            # Each poll reads every pending record: with thousands pending, ask less often, so the
            # waiting does not load the emulator that is doing the work.
            time.sleep(min(3.0, max(0.5, (len(wanted) - len(found)) / 300)))
    return found
