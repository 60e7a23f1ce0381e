"""Time the progressive JPEG routes (jpeg_dc at 1/8, jpeg_scaled at 1/4-1/2) against libjpeg's, in one run.

    PYTHONPATH=$PWD .venv/bin/python bench/progressive_jpeg.py [--sizes 24,90] [--repeat 5] [--cpu 0]

For each size (synthetic progressive 4:2:0 photos from ``bench/memory_files.py``, cached in
``bench/.cache``) and each scale: the best of ``--repeat`` decodes by our route and by libjpeg
(Pillow, DCT-scaled to the same size), their ratio (above 1: ours is faster) and the PSNR between
the two images (YCbCr, all planes). Memory is ``bench/resize.py --memory``'s.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from memory_files import make_file  # noqa: E402
from resize import log, pin_one_core  # noqa: E402

from lambda_resizer.formats import jpeg, jpeg_dc, jpeg_scaled  # noqa: E402


def libjpeg(data: bytes, eighths: int) -> Image.Image:
    """Return libjpeg's decode at ``eighths``/8 in YCbCr, as the core's libjpeg route makes it."""
    im = Image.open(io.BytesIO(data))
    jpeg.shrink_on_load(im, (im.width * eighths // 8, im.height * eighths // 8))
    im.load()
    return im


def ours(data: bytes, eighths: int) -> Image.Image:
    image = jpeg_dc.decode_eighth(data) if eighths == 1 else jpeg_scaled.decode_scaled(data, eighths)
    assert image is not None, "the route declined the file"
    return image


def best(decode: Callable[[bytes, int], Image.Image], data: bytes, eighths: int, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        decode(data, eighths)
        times.append(time.perf_counter() - start)
    return min(times)


def psnr(a: Image.Image, b: Image.Image) -> float:
    diff = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    mse = float((diff**2).mean())
    return 99.0 if mse == 0 else 10 * np.log10(255**2 / mse)


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--sizes", default="24,90", help="megapixels")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--cpu", type=int)
    args = parser.parse_args()
    assert jpeg_scaled.available(), "run `make setup` first: it builds the C decoder"
    cpu = pin_one_core(args.cpu)
    print(f"pinned to CPU {cpu}; best of {args.repeat}")
    print("| size | scale | ours ms | libjpeg ms | libjpeg / ours | PSNR dB |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for megapixels in [float(s) for s in args.sizes.split(",")]:
        path = make_file("jpeg_progressive", megapixels, ROOT / "bench" / ".cache")
        data = path.read_bytes()
        for eighths in (1, *jpeg_scaled.EIGHTHS):
            log(f"{path.name} at {eighths}/8")
            a, b = ours(data, eighths), libjpeg(data, eighths)
            t_ours = best(ours, data, eighths, args.repeat)
            t_libjpeg = best(libjpeg, data, eighths, args.repeat)
            print(
                f"| {megapixels:g} MP | {eighths}/8 | {t_ours * 1000:.0f} | {t_libjpeg * 1000:.0f} "
                f"| {t_libjpeg / t_ours:.2f} | {psnr(a, b):.1f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
