"""Upload files and folders into the upload bucket (local stack or AWS: the same code)."""

from __future__ import annotations

import mimetypes
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from image_etl.settings import Settings
from lambda_resizer.records import LABEL_METADATA_KEY, from_item, image_id_for

IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".jpe", ".png", ".webp", ".gif", ".tif", ".tiff", ".bmp", ".heic", ".heif", ".avif"}
)


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


def plan_uploads(paths: Sequence[Path], *, upload_prefix: str, label: str | None = None) -> UploadPlan:
    """Return what to upload where: folders follow ImageFolder (``root/<label>/<file>``).

    A folder with sub-folders gives each sub-folder's name as the label of the images inside it;
    a folder of images gives its own name; a file alone has no label unless ``label`` is given.
    ``label`` overrides all of them. Files in folders that are not images by extension are skipped
    (and reported); a file named explicitly is always uploaded, so the resizer can judge it.
    """
    uploads: list[PlannedUpload] = []
    skipped: list[tuple[Path, str]] = []
    for path in paths:
        if path.is_file():
            uploads.append(_planned(path, path.name, label, upload_prefix))
        elif path.is_dir():
            for file in sorted(p for p in path.rglob("*") if p.is_file()):
                relative = file.relative_to(path)
                if any(part.startswith(".") for part in relative.parts):
                    continue
                if file.suffix.lower() not in IMAGE_SUFFIXES:
                    skipped.append((file, f"not an image file type ({file.suffix or 'no extension'})"))
                    continue
                folder_label = relative.parts[0] if len(relative.parts) > 1 else path.resolve().name
                inner = Path(*relative.parts[1:]) if len(relative.parts) > 1 else relative
                uploads.append(_planned(file, inner.as_posix(), label or folder_label, upload_prefix))
        else:
            skipped.append((path, "no such file or folder"))
    return UploadPlan(uploads, skipped)


def _planned(path: Path, name: str, label: str | None, upload_prefix: str) -> PlannedUpload:
    key = f"{upload_prefix}{label}/{name}" if label else f"{upload_prefix}{name}"
    return PlannedUpload(path, key, label, path.stat().st_size)


def upload_all(
    settings: Settings,
    uploads: Iterable[PlannedUpload],
    *,
    concurrency: int = 8,
    on_done: Callable[[PlannedUpload], None] | None = None,
) -> list[tuple[PlannedUpload, str]]:
    """Upload every planned file with ``concurrency`` threads; return (upload, error) for failures."""
    s3 = settings.client("s3")
    errors: list[tuple[PlannedUpload, str]] = []

    def put(item: PlannedUpload) -> None:
        extra: dict[str, Any] = {
            "ContentType": mimetypes.guess_type(item.path.name)[0] or "application/octet-stream"
        }
        if item.label:
            extra["Metadata"] = {LABEL_METADATA_KEY: item.label}
        s3.upload_file(str(item.path), settings.upload_bucket, item.key, ExtraArgs=extra)

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        futures = {pool.submit(put, item): item for item in uploads}
        for future in as_completed(futures):
            item = futures[future]
            error = future.exception()
            if error is not None:
                errors.append((item, f"{type(error).__name__}: {error}"))
            if on_done:
                on_done(item)
    return errors


def wait_for_records(
    settings: Settings,
    keys: Sequence[str],
    *,
    timeout_s: float = 120.0,
    on_progress: Callable[[int], None] | None = None,
) -> dict[str, dict[str, Any]]:
    """Return key -> record for the uploads whose record appeared within ``timeout_s``."""
    dynamodb = settings.client("dynamodb")
    wanted = {image_id_for(settings.upload_bucket, key): key for key in keys}
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
                found[wanted[record["image_id"]]] = record
        if on_progress:
            on_progress(len(found))
        if len(found) < len(wanted):
            time.sleep(0.5)
    return found
