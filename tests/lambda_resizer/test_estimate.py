"""The memory estimate: read from the header alone, never below the measured peak, at most 25% above."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pillow_heif
import pytest
from PIL import Image

from lambda_resizer.estimate import estimate_memory, read_header
from lambda_resizer.formats import jpeg_scaled
from lambda_resizer.recipe import DEFAULT_RECIPE
from tests.imaging import tiled_tiff
from tests.lambda_resizer.images import encode, photo

REPO = Path(__file__).resolve().parents[2]


class Reads(io.BytesIO):
    """A file that counts how far into it a reader went."""

    furthest = 0

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        self.furthest = max(self.furthest, self.tell())
        return data


def translucent(image: Image.Image) -> Image.Image:
    rgba = image.convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize(image.size))
    return rgba


def test_a_jpeg_header_is_read_without_its_pixels_and_tells_progressive_and_subsampling():
    data = encode(photo(3000, 2000), "JPEG", quality=90, progressive=True)
    fp = Reads(data)
    header = read_header(fp)
    assert (header.format, header.mode, header.width, header.height) == ("JPEG", "RGB", 3000, 2000)
    assert header.progressive and header.samples == 1.5  # 4:2:0
    assert fp.furthest < 4096 < len(data)


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda: encode(photo(640, 480), "WEBP", quality=80), ("WEBP", "RGB", False, 1)),
        (lambda: encode(translucent(photo(640, 480)), "WEBP", lossless=True), ("WEBP", "RGBA", True, 1)),
        (
            lambda: encode(photo(64, 48), "WEBP", save_all=True, append_images=[photo(64, 48, 1)]),
            ("WEBP", "RGB", False, 2),
        ),
    ],
)
def test_webp_headers_are_read_from_the_riff_chunks(make, expected):
    header = read_header(io.BytesIO(make()))
    assert (header.format, header.mode, header.lossless, min(header.frames, 2)) == expected


def test_heic_size_comes_from_its_boxes():
    try:
        data = encode(photo(320, 240), "HEIF", quality=80)
    except (KeyError, OSError, ValueError) as exc:
        pytest.skip(f"cannot encode HEIF here: {exc}")
    header = read_header(io.BytesIO(data))
    assert (header.format, header.width, header.height) == ("HEIF", 320, 240)


def test_striped_tiff_bmp_and_one_raw_or_deflate_strip_are_banded_and_one_lzw_strip_is_not():
    image = photo(600, 400)
    assert read_header(io.BytesIO(encode(image, "TIFF", compression="tiff_adobe_deflate"))).banded
    assert read_header(io.BytesIO(tiled_tiff(image))).banded
    assert read_header(io.BytesIO(encode(image, "BMP"))).banded
    raw = read_header(io.BytesIO(encode(image, "TIFF")))  # uncompressed, one strip: rows at known offsets
    assert raw.banded and raw.rows
    one_strip = encode(image, "TIFF", compression="tiff_adobe_deflate", strip_size=2**30)
    deflated = read_header(io.BytesIO(one_strip))  # inflated a band of rows at a time
    assert deflated.banded and deflated.inflate and not deflated.rows
    assert not read_header(io.BytesIO(encode(image, "TIFF", compression="tiff_lzw", strip_size=2**30))).banded


@pytest.mark.slow
def test_the_estimate_grows_with_what_stays_in_memory(monkeypatch):
    def peak(data: bytes) -> float:
        return estimate_memory(read_header(io.BytesIO(data)), DEFAULT_RECIPE, source_bytes=len(data)).peak_mb

    image = photo(4000, 3000)
    baseline, progressive = (encode(image, "JPEG", progressive=p) for p in (False, True))
    coefficients = 2 * 1.5 * 12e6 / 2**20  # libjpeg's array: 2 bytes a coefficient, 1.5 a pixel in 4:2:0
    if jpeg_scaled.available():  # summed into the reduced IDCT: a fraction of a byte a pixel beside it
        assert peak(baseline) < peak(progressive) < peak(baseline) + coefficients / 3
    with monkeypatch.context() as patch:  # no C object: libjpeg decodes it, every coefficient kept
        patch.setattr(jpeg_scaled, "available", lambda: False)
        assert peak(progressive) > peak(baseline) + coefficients - 1
    lzw_strip = encode(image, "TIFF", compression="tiff_lzw", strip_size=2**30)  # libtiff holds it inflated
    assert peak(encode(image, "TIFF", compression="tiff_lzw")) < peak(lzw_strip)
    deflate_strip = encode(image, "TIFF", compression="tiff_adobe_deflate", strip_size=2**30)
    assert peak(deflate_strip) < peak(lzw_strip)  # inflated a band at a time


def test_the_dc_route_is_budgeted_for_the_most_restart_intervals_whatever_the_header_says():
    # A DRI can come between any two scans, after the header the estimate reads: a file whose
    # header sets none may still restart every block later. The estimate counts that worst case,
    # which the measured-peak test below holds to a file restarting every block.
    def estimate(data: bytes):
        return estimate_memory(read_header(io.BytesIO(data)), DEFAULT_RECIPE, source_bytes=len(data))

    grey = photo(8200, 2200).convert("L")
    plain = encode(grey, "JPEG", progressive=True)
    every_block = encode(grey, "JPEG", progressive=True, restart_marker_blocks=1)
    assert estimate(plain).path == estimate(every_block).path == "jpeg_dc"
    extra = (len(every_block) - len(plain)) / 2**20  # only the file itself is larger
    assert estimate(every_block).peak_mb - estimate(plain).peak_mb == pytest.approx(extra, abs=0.01)


# --- never below the measured peak ---------------------------------------------------------

PROBE = """
import json, sys
from lambda_resizer.core import process_image
from lambda_resizer.estimate import estimate_memory, read_header
from lambda_resizer.formats import jpeg_scaled
from lambda_resizer.recipe import DEFAULT_RECIPE
def status(key):
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith(key)) / 1024
path = sys.argv[1]
with open(path, "rb") as fp:
    estimate = estimate_memory(read_header(fp), DEFAULT_RECIPE, source_bytes=fp.seek(0, 2)).peak_mb
base = status("VmRSS:")
process_image(open(path, "rb").read())
print(json.dumps({"estimated": base + estimate, "peak": status("VmHWM:")}))
"""


def _files() -> dict[str, bytes]:
    image = photo(2400, 1800, seed=2)  # 4 MP: big enough for the model to matter, quick to encode
    rgba = translucent(image)
    palette = image.quantize(colors=200)
    palette.info["transparency"] = 0
    grey16 = image.convert("I").point(lambda v: v * 257).convert("I;16")
    turned, six = image.transpose(Image.Transpose.ROTATE_90), {0x0112: 6}
    files = {
        "jpeg": encode(image, "JPEG", quality=90),
        "jpeg progressive": encode(image, "JPEG", quality=90, progressive=True),
        # 8,200 px wide: decoded at 1/8 for 1024 px, from the DC scans (formats.jpeg_dc)
        "jpeg progressive panorama": encode(photo(8200, 1400), "JPEG", quality=90, progressive=True),
        "jpeg progressive panorama grey": encode(photo(8200, 2200).convert("L"), "JPEG", progressive=True),
        "jpeg progressive panorama, restart every MCU": encode(
            photo(8200, 1400), "JPEG", quality=90, progressive=True, restart_marker_blocks=1
        ),
        # grey, so an MCU is a block: the most restart intervals, each held by the DC route
        "jpeg progressive panorama grey, restart every block": encode(
            photo(8200, 2200).convert("L"), "JPEG", progressive=True, restart_marker_blocks=1
        ),
        # over jpeg_dc.COEFFICIENT_BYTES, decoded at 3/8, 1/4 and 1/2 by formats.jpeg_scaled
        "jpeg progressive 12 MP at 3 eighths": encode(
            photo(4000, 3000), "JPEG", quality=90, progressive=True
        ),
        "jpeg progressive 4:4:4 at a quarter": encode(
            photo(5000, 2400), "JPEG", quality=90, progressive=True, subsampling=0
        ),
        "jpeg progressive 4:4:4 at a half, restart every MCU": encode(
            photo(2400, 2400), "JPEG", quality=90, progressive=True, subsampling=0, restart_marker_blocks=1
        ),
        "jpeg progressive grey at a quarter": encode(
            photo(6000, 3000).convert("L"), "JPEG", progressive=True
        ),
        "png rgb": encode(image, "PNG"),
        "png rgba": encode(rgba, "PNG"),
        "png palette + tRNS": encode(palette, "PNG"),
        "png 16-bit grey": encode(grey16, "PNG"),
        "gif": encode(image.quantize(colors=256), "GIF"),
        "tiff deflate": encode(image, "TIFF", compression="tiff_adobe_deflate"),
        "tiff tiled": tiled_tiff(image),
        "tiff one strip": encode(image, "TIFF"),
        "tiff one deflate strip": encode(image, "TIFF", compression="tiff_adobe_deflate", strip_size=2**30),
        "tiff one deflate strip grey, predictor": encode(
            image.convert("L"), "TIFF", compression="tiff_adobe_deflate", strip_size=2**30, tiffinfo={317: 2}
        ),
        "tiff one deflate strip rgba": encode(
            rgba, "TIFF", compression="tiff_adobe_deflate", strip_size=2**30
        ),
        "tiff one lzw strip": encode(image, "TIFF", compression="tiff_lzw", strip_size=2**30),  # libtiff's
        # stored turned, the Orientation tag set: decoded as stored, the small image turned
        "tiff deflate orientation 6": encode(turned, "TIFF", compression="tiff_adobe_deflate", tiffinfo=six),
        "tiff one strip orientation 6": encode(turned, "TIFF", tiffinfo=six),
        "tiff one deflate strip orientation 6": encode(
            turned, "TIFF", compression="tiff_adobe_deflate", strip_size=2**30, tiffinfo=six
        ),
        "bmp": encode(image, "BMP"),
        "webp": encode(image, "WEBP", quality=80, method=0),
        "webp lossless": encode(image, "WEBP", lossless=True, quality=0, method=0),
        "webp lossless rgba": encode(rgba, "WEBP", lossless=True, quality=50, method=4),
    }
    for fmt in ("HEIF", "AVIF"):
        fast = {"speed": 10} if fmt == "AVIF" else {}
        full_chroma = {"subsampling": "4:4:4"} if fmt == "AVIF" else {"chroma": 444}
        with contextlib.suppress(KeyError, OSError, ValueError):  # no encoder here: the rows are left out
            files[fmt.lower()] = encode(image, fmt, quality=60, **fast)
            files[f"{fmt.lower()} rgba"] = encode(rgba, fmt, quality=60, **fast)
            files[f"{fmt.lower()} 4:4:4"] = encode(image, fmt, quality=60, **fast, **full_chroma)
            files[f"{fmt.lower()} grey"] = encode(image.convert("L"), fmt, quality=60, **fast)
    with contextlib.suppress(KeyError, OSError, ValueError):  # pillow-heif writes 16-bit samples as 10 bits
        samples = np.asarray(image).astype(np.uint16) * 257
        out = io.BytesIO()
        pillow_heif.from_bytes("RGB;16", image.size, samples.tobytes()).save(out, quality=60)
        files["heif 10-bit"] = out.getvalue()
    return files


@pytest.mark.slow
def test_the_estimate_is_never_below_the_measured_peak_and_at_most_25_percent_above(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    results = {}
    for name, data in _files().items():
        path = tmp_path / name.replace(" ", "_")
        path.write_bytes(data)
        run = subprocess.run(
            [sys.executable, "-c", PROBE, str(path)], capture_output=True, text=True, env=env, check=True
        )
        results[name] = json.loads(run.stdout)
    ratios = {name: round(r["estimated"] / r["peak"], 3) for name, r in results.items()}
    outside = {name: ratio for name, ratio in ratios.items() if not 1.0 <= ratio <= 1.25}
    assert not outside, f"estimate / measured peak outside [1.0, 1.25]: {outside} (all: {ratios})"
