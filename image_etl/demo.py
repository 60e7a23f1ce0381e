"""A small labelled demo dataset, generated on the spot: a few classes, duplicates, broken files."""

from __future__ import annotations

import io
import random
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

CLASSES = ("circles", "squares", "stripes")


def _picture(kind: str, rng: random.Random, size: tuple[int, int]) -> Image.Image:
    background = tuple(rng.randrange(256) for _ in range(3))
    image = Image.new("RGB", size, background)  # type: ignore[arg-type]
    draw = ImageDraw.Draw(image)
    width, height = size
    for _ in range(rng.randint(3, 8)):
        colour = tuple(rng.randrange(256) for _ in range(3))
        x, y = rng.randrange(width), rng.randrange(height)
        extent = rng.randint(min(size) // 10, min(size) // 3)
        if kind == "circles":
            draw.ellipse((x - extent, y - extent, x + extent, y + extent), fill=colour)  # type: ignore[arg-type]
        elif kind == "squares":
            draw.rectangle((x - extent, y - extent, x + extent, y + extent), fill=colour)  # type: ignore[arg-type]
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
                    fill=colour,  # type: ignore[arg-type]
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
    exact copy and a near duplicate (smaller and re-compressed), and ``broken/`` holds a truncated
    JPEG, a text file named .jpg and an empty PNG, which must end as failed records.
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
    written += [exact, near]
    broken = root / "broken"
    broken.mkdir(exist_ok=True)
    (broken / "truncated.jpg").write_bytes(first.read_bytes()[: first.stat().st_size // 3])
    (broken / "not_an_image.jpg").write_text("this is a text file wearing a .jpg extension\n")
    (broken / "empty.png").write_bytes(b"")
    written += [broken / "truncated.jpg", broken / "not_an_image.jpg", broken / "empty.png"]
    return written
