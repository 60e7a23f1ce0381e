"""A small labelled demo dataset, generated on the spot: a few classes, duplicates, broken files."""

from __future__ import annotations

import io
import random
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

from image_etl.settings import Settings

CLASSES = ("circles", "squares", "stripes")
#: Stem endings of the files that copy a demo picture: duplicates, and one filed under another label.
COPY_SUFFIXES = ("_copy", "_near")
MISLABELLED_SUFFIX = "_mislabelled"


def _picture(kind: str, rng: random.Random, size: tuple[int, int]) -> Image.Image:
    background = tuple(rng.randrange(256) for _ in range(3))
    image = Image.new("RGB", size, background)
    draw = ImageDraw.Draw(image)
    width, height = size
    for _ in range(rng.randint(3, 8)):
        colour = tuple(rng.randrange(256) for _ in range(3))
        x, y = rng.randrange(width), rng.randrange(height)
        extent = rng.randint(min(size) // 10, min(size) // 3)
        if kind == "circles":
            draw.ellipse((x - extent, y - extent, x + extent, y + extent), fill=colour)
        elif kind == "squares":
            draw.rectangle((x - extent, y - extent, x + extent, y + extent), fill=colour)
        else:
            step = rng.randint(8, 40)
            for offset in range(-height, width, step * 2):
                draw.polygon(
                    [
                        (offset, 0),
                        (offset + step, 0),
                        (offset + step + height, height),
                        (offset + height, height),
                    ],
                    fill=colour,
                )
            break
    return image


def _jpeg(image: Image.Image, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def write_demo_dataset(root: Path, *, per_class: int = 8, seed: int = 7) -> list[Path]:
    """Write the demo set as ImageFolder (``root/<label>/<file>``) and return the files written.

    Each class gets ``per_class`` pictures in assorted sizes and formats; ``circles`` also gets an
    exact copy and a near duplicate (smaller and re-compressed), ``squares`` gets a copy of the
    same picture (a label conflict: one picture under two labels), and ``broken/`` holds a
    truncated JPEG, a text file named .jpg and an empty PNG, which must end as failed records.
    """
    rng = random.Random(seed)
    written: list[Path] = []
    for kind in CLASSES:
        folder = root / kind
        folder.mkdir(parents=True, exist_ok=True)
        for index in range(per_class):
            size = rng.choice([(640, 480), (480, 640), (1600, 1200), (800, 800), (2048, 1024)])
            image = _picture(kind, rng, size)
            if index % 4 == 3:
                path = folder / f"{kind}_{index:02d}.png"
                image.save(path)
            else:
                path = folder / f"{kind}_{index:02d}.jpg"
                path.write_bytes(_jpeg(image))
            written.append(path)
    first = root / "circles" / "circles_00.jpg"
    exact = root / "circles" / "circles_00_copy.jpg"
    exact.write_bytes(first.read_bytes())
    near = root / "circles" / "circles_00_near.jpg"
    with Image.open(first) as original:
        smaller = original.resize(
            (original.width * 3 // 4, original.height * 3 // 4), Image.Resampling.LANCZOS
        )
        near.write_bytes(_jpeg(smaller.filter(ImageFilter.SMOOTH), quality=70))
    mislabelled = root / "squares" / f"{first.stem}{MISLABELLED_SUFFIX}.jpg"
    mislabelled.write_bytes(first.read_bytes())
    written += [exact, near, mislabelled]
    broken = root / "broken"
    broken.mkdir(exist_ok=True)
    (broken / "truncated.jpg").write_bytes(first.read_bytes()[: first.stat().st_size // 3])
    (broken / "not_an_image.jpg").write_text("this is a text file wearing a .jpg extension\n")
    (broken / "empty.png").write_bytes(b"")
    written += [broken / "truncated.jpg", broken / "not_an_image.jpg", broken / "empty.png"]
    return written


def split_into_rounds(root: Path, files: list[Path], rounds: int) -> list[Path]:
    """Move the demo set under ``root`` into ``rounds`` ImageFolder trees and return their roots.

    Each class's pictures are cut into consecutive chunks, one a round; the broken files come in
    the first round and the copies (the exact copy, the near duplicate, the mislabelled copy) in
    the last, so a later version adds pictures, a duplicate of one already there and a label
    conflict. The keys stay ``<label>/<file>``.

    :param root: where :func:`write_demo_dataset` wrote ``files``.
    :param rounds: how many rounds (1 keeps one tree).
    """
    if rounds < 1:
        raise ValueError(f"rounds must be at least 1, got {rounds}")
    folders = [root.parent / f"{root.name}-round-{n + 1}" for n in range(rounds)]
    by_class: dict[str, list[Path]] = {}
    for path in files:
        by_class.setdefault(path.parent.name, []).append(path)
    for label, paths in by_class.items():
        pictures = [p for p in paths if not p.stem.endswith((*COPY_SUFFIXES, MISLABELLED_SUFFIX))]
        for path in paths:
            if label == "broken":
                target = 0
            elif path in pictures:
                target = pictures.index(path) * rounds // len(pictures)
            else:
                target = rounds - 1
            destination = folders[target] / label / path.name
            destination.parent.mkdir(parents=True, exist_ok=True)
            path.replace(destination)
    return [folder for folder in folders if folder.exists()]


def wait_for_version(
    settings: Settings, image_ids: Iterable[str], *, timeout_s: float = 300.0, poll_s: float = 2.0
) -> str | None:
    """Return the newest manifest version that holds every one of ``image_ids``, waiting up to
    ``timeout_s`` for the pipeline to build it; None when none did in time."""
    from image_etl.manifest import manifest_table  # pyiceberg: only once a round is uploaded

    wanted = set(image_ids)
    deadline = time.monotonic() + timeout_s
    while True:
        table = manifest_table(settings)
        newest = table.versions()[-1:] if table.exists() else []
        if newest and wanted <= set(table.read(newest[0].name, columns=["image_id"])["image_id"]):
            return newest[0].name
        if time.monotonic() >= deadline:
            return None
        time.sleep(poll_s)


def build_version_here(settings: Settings) -> None:
    """Build, check and publish a manifest version of today's uploads in this process, as the
    sensor's run would (for a local stack started without Dagster)."""
    # The pipeline is imported only here: the rest of the toolkit does not need Dagster.
    import dagster as dg

    from pipelines.definitions import make_definitions
    from pipelines.resources import build_resources

    today = datetime.now(UTC).date().isoformat()
    with dg.instance_for_test() as instance:  # an ephemeral instance: nothing of this run is kept
        result = (
            make_definitions(build_resources(settings))
            .resolve_job_def("dataset_job")
            .execute_in_process(
                partition_key=today,
                instance=instance,
                raise_on_error=False,
                # The CLI prints its own lines; Dagster's step events would bury them.
                run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
            )
        )
    if not result.success:
        raise RuntimeError("the manifest build failed; run `image-etl up` with Dagster to see why")
