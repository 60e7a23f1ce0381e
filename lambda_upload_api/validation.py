"""Request validation for the upload API: every rejection is an ApiError with a status and a reason."""

from __future__ import annotations

import base64
import json
import re
import unicodedata
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

#: Content types the resizer reads, and the extension the stored object gets.
IMAGE_TYPES: dict[str, str] = {
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/webp": ".webp",
    "image/gif": ".gif",
    "image/tiff": ".tif",
    "image/bmp": ".bmp",
    "image/heic": ".heic",
    "image/heif": ".heif",
    "image/avif": ".avif",
}

LABEL_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
IMAGE_ID_PATTERN = re.compile(r"^[0-9a-f]{32}$")
MAX_FILENAME_CHARS = 255
# Half of S3's 2 KB user-metadata budget; the label and the header names fit in the rest.
MAX_FILENAME_METADATA_BYTES = 1024
FILENAME_SAFE = " ._-()"
DEFAULT_PAGE = 24
MAX_PAGE = 100


class ApiError(Exception):
    """A request the API rejects: HTTP status, a short error code and a sentence for people."""

    def __init__(self, status: int, error: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.error = error
        self.detail = detail

    def to_body(self) -> dict[str, str]:
        return {"error": self.error, "detail": self.detail}


@dataclass(frozen=True)
class UploadRequest:
    filename: str
    content_type: str
    size: int
    label: str | None


def parse_json_object(body: str | None) -> dict[str, Any]:
    """Return the request body as a JSON object, or raise a 400 saying what is wrong with it."""
    if not body:
        raise ApiError(400, "invalid_request", "the request body must be a JSON object")
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError) as error:  # incl. JSONDecodeError and ints over 4300 digits
        raise ApiError(400, "invalid_request", f"the request body is not valid JSON: {error}") from error
    if not isinstance(parsed, dict):
        raise ApiError(400, "invalid_request", "the request body must be a JSON object")
    return parsed


def _blank(text: str) -> bool:
    """Return whether ``text`` is only white space: Python's, or the byte-order mark that JSON
    Schema's (ECMAScript's) ``\\s`` also counts, so the API and its OpenAPI pattern agree."""
    return all(char.isspace() or char == "\ufeff" for char in text)


def parse_upload_request(body: dict[str, Any], *, max_bytes: int) -> UploadRequest:
    """Return the validated upload request.

    :raises ApiError: 400 for a missing or malformed field, 413 for a file over ``max_bytes``,
        415 for a content type the resizer cannot read.
    """
    filename = body.get("filename")
    if not isinstance(filename, str) or _blank(filename) or len(filename) > MAX_FILENAME_CHARS:
        raise ApiError(
            400,
            "invalid_filename",
            f"filename must be a non-empty string of at most {MAX_FILENAME_CHARS} characters",
        )
    if any(unicodedata.category(char) == "Cc" for char in filename):
        raise ApiError(400, "invalid_filename", "filename must not contain control characters")
    try:
        filename.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ApiError(400, "invalid_filename", "filename is not valid Unicode text") from error
    content_type = body.get("contentType")
    if not isinstance(content_type, str) or not content_type:
        raise ApiError(400, "invalid_content_type", "contentType must be a string such as image/jpeg")
    if content_type.lower() not in IMAGE_TYPES:
        raise ApiError(
            415,
            "unsupported_media_type",
            f"{content_type!r} is not an accepted image type; accepted: {', '.join(IMAGE_TYPES)}",
        )
    size = body.get("size")
    if isinstance(size, bool) or not isinstance(size, int):
        raise ApiError(400, "invalid_size", "size must be the file's size in bytes, an integer")
    if size <= 0:
        raise ApiError(400, "empty_file", "the file is empty (size must be at least 1 byte)")
    if size > max_bytes:
        shown = f"{size / 2**20:.1f} MiB" if size < 2**63 else f"{len(str(size))} digits of bytes"
        raise ApiError(413, "too_large", f"the file is {shown}, over the {max_bytes / 2**20:g} MiB limit")
    label = body.get("label")
    if label in (None, ""):
        label = None
    elif not isinstance(label, str) or not LABEL_PATTERN.match(label):
        raise ApiError(
            400,
            "invalid_label",
            "label must be 1-64 letters, digits, '-' or '_', starting with a letter or digit",
        )
    return UploadRequest(filename=filename, content_type=content_type.lower(), size=size, label=label)


def metadata_filename(filename: str) -> str:
    """Return the file name as an ``x-amz-meta-original-filename`` value: percent-encoded ASCII.

    S3 allows 2 KB of user metadata per object, and a 255-character name can take 3 KB once
    encoded (emoji are 12 bytes each). A name over ``MAX_FILENAME_METADATA_BYTES`` keeps its
    extension and as much of its start as fits, with "…" where the middle was.
    """
    encoded = quote(filename, safe=FILENAME_SAFE)
    if len(encoded) <= MAX_FILENAME_METADATA_BYTES:
        return encoded
    stem, dot, extension = filename.rpartition(".")
    if not dot or len(extension) > 16:
        stem, extension = filename, ""
    tail = quote(f"…{dot}{extension}", safe=FILENAME_SAFE)
    head = ""
    for char in stem:
        piece = quote(char, safe=FILENAME_SAFE)
        if len(head) + len(piece) + len(tail) > MAX_FILENAME_METADATA_BYTES:
            break
        head += piece
    return head + tail


def upload_key(upload_prefix: str, request: UploadRequest) -> str:
    """Return a fresh key for an upload: chosen here, never by the client, so two uploads never
    share a key (a presigned form used twice before it expires replaces its own upload)."""
    name = f"{uuid.uuid4().hex}{IMAGE_TYPES[request.content_type]}"
    return f"{upload_prefix}{request.label}/{name}" if request.label else f"{upload_prefix}{name}"


def validate_image_id(image_id: str) -> str:
    if not IMAGE_ID_PATTERN.match(image_id):
        raise ApiError(400, "invalid_image_id", "image_id must be 32 lowercase hex characters")
    return image_id


def parse_ids(raw: str | None) -> list[str] | None:
    """Return the image ids of an ``ids=a,b,c`` status lookup (at most one page), or None without one."""
    if raw in (None, ""):
        return None
    ids = list(dict.fromkeys(part.strip() for part in raw.split(",") if part.strip()))
    if not 1 <= len(ids) <= MAX_PAGE:
        raise ApiError(400, "invalid_ids", f"ids must list 1 to {MAX_PAGE} image ids, comma-separated")
    return [validate_image_id(image_id) for image_id in ids]


def parse_limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_PAGE
    # isdecimal() alone accepts other scripts' digits ("٣") and isdigit() superscripts ("²").
    if not (raw.isascii() and raw.isdecimal()) or not 1 <= int(raw) <= MAX_PAGE:
        raise ApiError(400, "invalid_limit", f"limit must be an integer from 1 to {MAX_PAGE}")
    return int(raw)


def parse_label_filter(raw: str | None) -> str | None:
    if raw in (None, ""):
        return None
    if len(raw) > 128 or any(ord(char) < 32 for char in raw):
        raise ApiError(400, "invalid_label", "label filter must be at most 128 printable characters")
    return raw


def encode_token(state: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(state, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_token(raw: str | None) -> dict[str, Any] | None:
    """Return the pagination state in a ``next`` token, or raise a 400 when it is not one of ours."""
    if raw in (None, ""):
        return None
    try:
        state = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except (ValueError, UnicodeDecodeError) as error:
        raise ApiError(400, "invalid_token", "next is not a token this API returned") from error
    if not isinstance(state, dict):
        raise ApiError(400, "invalid_token", "next is not a token this API returned")
    return state
