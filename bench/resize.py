"""Benchmark the resize core against a naive Pillow baseline, on one core.

    .venv/bin/python bench/resize.py [--corpus DIR] [--large FILE] [--repeat N] [--json] [--profile] [--cpu N]
    .venv/bin/python bench/resize.py --memory [--sizes 24,90] [--kinds jpeg,png_rgb,...]

Measures, in one run: photos/s of the core and of the naive baseline (decode full size,
exif_transpose, convert RGB, LANCZOS from the full image to every size, JPEG q85), the speedup,
the pooled PSNR of the core's variants against the baseline's (made, for this comparison, with
the core's colour semantics: alpha onto white, ICC to sRGB), peak RSS of a fresh process that
does only what the Lambda does on the 50 MP photo, and the cost of turning WebP on.
When pyvips is installed (`make bench` installs the `bench` extra) it also times libvips, the
library the issue's 8x target is stated against, doing the same job the fastest way we found
(shrink-on-load, Lanczos-3, each size from the previous one), so the target can be judged
against what the best-known tool reaches on the same photos in the same run.

``--memory`` prints, for every format and mode the core reads (synthetic photos made once by
``bench/memory_files.py`` and cached in ``bench/.cache``), at each size, each in a fresh process:
the estimate from the header alone, the measured peak (VmHWM), their ratio, the decoded 8-bit
size at the decode scale and the peak's ratio to it, against the target 1.25 x decoded + 48 MB.
Progress goes to stderr; the result to stdout.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import platform
import pstats
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms, ImageOps, features

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lambda_resizer import resample  # noqa: E402
from lambda_resizer.core import DEFAULT_RECIPE, Recipe, fit, process_image  # noqa: E402
from lambda_resizer.sniffing import accepted_extensions  # noqa: E402

DEFAULT_CORPUS = ROOT / ".." / "shared" / "bench-corpus" / "photos"
DEFAULT_LARGE = ROOT / ".." / "shared" / "bench-corpus" / "large" / "photo_8660x5773_50mp.jpg"
IMAGE_SUFFIXES = accepted_extensions()  # the resizer's own list (lambda_resizer.sniffing)
EDGES = tuple(edge for _, edge in DEFAULT_RECIPE.sizes)
SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))

# What the Lambda does for one upload, and nothing else: import the core, read bytes, process.
# Linux keeps ru_maxrss across execve, so a child of this (big) benchmark process would report
# the benchmark's own peak; VmHWM in /proc/self/status is the peak of the child's address space.
RSS_PROBE = """
import resource, sys, time
from lambda_resizer.core import process_image
data = open(sys.argv[1], "rb").read()
start = time.perf_counter()
if sys.argv[2] == "process":
    process_image(data)
elapsed = time.perf_counter() - start
try:
    hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
except OSError:
    hwm = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(hwm, elapsed)
"""


# One image in a fresh process: RSS after the imports (what the handler calls "in use"), the
# estimate from the header, then the measured peak of reading the bytes and processing them.
MEMORY_PROBE = """
import json, sys, time
from lambda_resizer.core import process_image
from lambda_resizer.estimate import estimate_memory, read_header
from lambda_resizer.recipe import DEFAULT_RECIPE
def status(key):
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith(key)) / 1024
path = sys.argv[1]
with open(path, "rb") as fp:
    estimate = estimate_memory(read_header(fp), DEFAULT_RECIPE, source_bytes=fp.seek(0, 2))
base = status("VmRSS:")
data = open(path, "rb").read()
start = time.perf_counter()
process_image(data)
print(json.dumps({"base_mb": base, "peak_mb": status("VmHWM:"), "estimate_mb": estimate.peak_mb,
                  "decoded_mb": estimate.decoded_mb, "path": estimate.path, "scale": estimate.scale,
                  "file_mb": len(data) / 2**20, "seconds": time.perf_counter() - start}))
"""


def memory_table(sizes: list[float], kinds: list[str], cache: Path) -> list[dict[str, object]]:
    """Return one row per (kind, size): estimated and measured peak, and the decoded size."""
    from memory_files import KINDS, make_file, size_for

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    rows = []
    for megapixels in sizes:
        for kind in kinds or list(KINDS):
            width, height = size_for(megapixels)
            try:
                path = make_file(kind, megapixels, cache)
            except (OSError, ValueError, KeyError) as error:  # e.g. HEVC cannot encode 90 MP
                log(f"{kind} {width}x{height}: cannot make the file ({error})")
                continue
            run = subprocess.run(
                [sys.executable, "-c", MEMORY_PROBE, str(path)], capture_output=True, text=True, env=env
            )
            if run.returncode:
                log(f"{kind} {width}x{height}: failed: {run.stderr.strip().splitlines()[-1:]}")
                continue
            row = json.loads(run.stdout)
            measured = row["peak_mb"] - row["base_mb"]
            row.update(
                kind=kind,
                megapixels=round(width * height / 1e6, 1),
                estimated_peak_mb=round(row["base_mb"] + row["estimate_mb"], 1),
                ratio=round((row["base_mb"] + row["estimate_mb"]) / row["peak_mb"], 3),
                above_base_ratio=round(row["estimate_mb"] / measured, 3) if measured > 0 else None,
                target_mb=round(1.25 * row["decoded_mb"] + 48, 1),
                peak_to_decoded=round(row["peak_mb"] / row["decoded_mb"], 2),
            )
            log(
                f"{kind:18} {row['megapixels']:5} MP  estimate {row['estimated_peak_mb']:7.1f}  "
                f"peak {row['peak_mb']:7.1f} MB (x{row['ratio']})  decoded {row['decoded_mb']:6.1f}  "
                f"target {row['target_mb']:6.1f}  file {row['file_mb']:5.1f} MB  {row['path']}"
            )
            rows.append(row)
    return rows


def lambda_environment() -> dict[str, str]:
    """Return the Pillow allocator settings the resize function runs with (its environment)."""
    from image_etl.resource_shapes import LOCAL

    function = LOCAL.function
    return {
        "PILLOW_BLOCKS_MAX": str(function.pillow_blocks_max),
        "PILLOW_BLOCK_SIZE": function.pillow_block_size,
    }


def use_lambda_allocator() -> None:
    """Give this process (every pipeline in it, Pillow's and libvips' alike) the function's settings."""
    os.environ.update(lambda_environment())
    Image._apply_env_variables()


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def pin_one_core(cpu: int | None) -> int:
    """Return the CPU this process is now pinned to: ``cpu``, or the first one it may use."""
    cpu = min(os.sched_getaffinity(0)) if cpu is None else cpu
    os.sched_setaffinity(0, {cpu})
    return cpu


def jpeg(img: Image.Image) -> bytes:
    out = io.BytesIO()
    img.save(out, "JPEG", quality=85)
    return out.getvalue()


def naive(data: bytes) -> list[bytes]:
    """Return the baseline's variants: full decode, then LANCZOS from the full image to each size."""
    img = ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")
    return [jpeg(img.resize(fit(img.width, img.height, edge), Image.Resampling.LANCZOS)) for edge in EDGES]


def reference(data: bytes) -> list[bytes]:
    """Return the baseline's variants made with the core's colour semantics, for PSNR.

    The timed baseline drops alpha and ignores ICC profiles; the core flattens alpha onto white
    and converts to sRGB. Comparing against the plain baseline would measure those (intended)
    differences, not resampling quality, so the PSNR reference does the same colour work at
    full size, naively. Not timed.
    """
    img = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
    icc = img.info.get("icc_profile")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        img = Image.new("RGB", img.size, (255, 255, 255))
        img.paste(rgba, mask=rgba.getchannel("A"))
    img = img.convert("RGB")
    if icc:
        img = ImageCms.profileToProfile(
            img, ImageCms.ImageCmsProfile(io.BytesIO(icc)), SRGB, outputMode="RGB"
        )
    return [jpeg(img.resize(fit(img.width, img.height, edge), Image.Resampling.LANCZOS)) for edge in EDGES]


def libvips_variants(data: bytes, *, webp: bool = False) -> list[bytes]:
    """Return the variants made by libvips: the reference point for the speed target.

    JPEGs load shrunk by the largest of 1/2, 1/4, 1/8 that still covers 1024 px (libvips has no
    3/8), WebPs scaled by libwebp by the core's integer factor; ICC to sRGB at 1024 px, like the
    core; Lanczos-3 from each size to the next; q85. With ``webp`` each size is also saved as
    WebP q80 at the core's effort for that size (`encoding.webp_method`).
    """
    import pyvips

    head = pyvips.Image.new_from_buffer(data, "")
    orientation = head.get("orientation") if head.get_typeof("orientation") else 1
    width, height = (head.height, head.width) if orientation in (5, 6, 7, 8) else (head.width, head.height)
    access = "sequential" if orientation == 1 else "random"  # autorot reads out of order
    loader = head.get("vips-loader")
    target = fit(width, height, EDGES[0])
    if loader.startswith(("jpegload", "uhdrload")):  # uhdr: skip the gain map
        shrink = next((s for s in (8, 4, 2) if width // s >= target[0] and height // s >= target[1]), 1)
        image = pyvips.Image.jpegload_buffer(data, access=access, shrink=shrink)
    elif loader.startswith("webpload"):
        factor = max(1, int(min(width / target[0], height / target[1])))
        image = pyvips.Image.webpload_buffer(data, access=access, scale=1 / factor)
    else:
        image = pyvips.Image.new_from_buffer(data, "", access=access)
    has_icc = bool(image.get_typeof("icc-profile-data"))
    image = image.autorot()
    # Like the core: alpha is flattened first for JPEG only; with WebP it is kept (premultiplied
    # resampling) and each JPEG variant is flattened on its own.
    keep_alpha = webp and image.hasalpha()
    if image.hasalpha() and not keep_alpha:
        image = image.flatten(background=[255, 255, 255])
    if image.bands in (1, 2):
        image = image.colourspace("srgb")
    variants = []
    for edge in EDGES:
        size = fit(width, height, edge)
        scale, vscale = size[0] / image.width, size[1] / image.height
        image = (image.premultiply() if keep_alpha else image).resize(scale, vscale=vscale, kernel="lanczos3")
        image = image.unpremultiply() if keep_alpha else image
        if has_icc and edge == EDGES[0]:
            image = image.icc_transform("srgb", embedded=True, intent="perceptual")
        image = (image if image.format == "uchar" else image.cast("uchar")).copy_memory()
        opaque = image.flatten(background=[255, 255, 255]) if keep_alpha else image
        variants.append(opaque.jpegsave_buffer(Q=85, keep="none"))
        if webp:
            method = 0 if size[0] * size[1] > 400_000 else 2 if size[0] * size[1] > 100_000 else 4
            image.webpsave_buffer(Q=80, effort=method, keep="none")
    return variants


def unseen_photos(corpus: list[Path], out: Path, count: int = 16, seed: int = 12) -> list[Path]:
    """Return photos the core was never tuned on, made once from the corpus and cached in ``out``.

    Each is a random crop (55-100% of each side) of a corpus photo, rescaled to 1.5-24 MP, stored
    rotated with the EXIF orientation that undoes it (1, 6 or 8), and written as baseline or
    progressive JPEG (q 80-95, 4:2:0 or 4:4:4), WebP (q 75-90) or PNG.
    """
    import random

    rng = random.Random(seed)
    out.mkdir(parents=True, exist_ok=True)
    made = []
    for index in range(count):
        source = Image.open(rng.choice(corpus))
        source = ImageOps.exif_transpose(source).convert("RGB")
        w, h = source.size
        cw, ch = int(w * rng.uniform(0.55, 1)), int(h * rng.uniform(0.55, 1))
        x, y = rng.randrange(w - cw + 1), rng.randrange(h - ch + 1)
        crop = source.crop((x, y, x + cw, y + ch))
        scale = (rng.uniform(1.5, 24) * 1e6 / (cw * ch)) ** 0.5
        photo = crop.resize((max(64, int(cw * scale)), max(64, int(ch * scale))), Image.Resampling.LANCZOS)
        orientation = rng.choice((1, 1, 6, 8))
        stored = {1: photo, 6: photo.transpose(Image.Transpose.ROTATE_90),
                  8: photo.transpose(Image.Transpose.ROTATE_270)}[orientation]  # fmt: skip
        exif = Image.Exif()
        exif[0x0112] = orientation
        kind = rng.choice(("jpeg", "jpeg", "jpeg", "jpeg_progressive", "webp", "webp", "png"))
        path = out / f"unseen_{index:02d}_{stored.width}x{stored.height}.{kind.split('_')[0]}"
        quality, subsampling = rng.randrange(75, 96), rng.choice((0, 2))  # drawn always: same sequence
        if not path.exists():
            if kind.startswith("jpeg"):
                progressive = kind.endswith("progressive")
                params = {"progressive": progressive, "subsampling": subsampling}
                stored.save(path, "JPEG", quality=quality, exif=exif.tobytes(), **params)
            elif kind == "webp":
                stored.save(path, "WEBP", quality=quality, exif=exif.tobytes())
            else:
                stored.save(path, "PNG", exif=exif.tobytes())
        made.append(path)
    return made


def pyvips_version(part: int) -> int:
    import pyvips

    return int(pyvips.version(part))


def load_libvips() -> bool:
    """Return whether pyvips is usable, set up for a fair single-core comparison."""
    os.environ.setdefault("VIPS_CONCURRENCY", "1")  # one core, like the others
    try:
        import pyvips
    except (ImportError, OSError):
        return False
    pyvips.cache_set_max(0)  # no operation cache: every pass decodes again
    return True


def core_jpegs(data: bytes, recipe: Recipe = DEFAULT_RECIPE) -> list[bytes]:
    return [variant.encoded["jpeg"] for variant in process_image(data, recipe).variants]


def pillow_resampled(fn: Callable[[bytes], object]) -> Callable[[bytes], object]:
    """Return ``fn`` run with Pillow's scalar resampler, as on a platform without the SIMD wheel."""

    def run(data: bytes) -> object:
        usable = resample.simd_usable
        resample.simd_usable = lambda mode, resample_filter: False  # type: ignore[assignment]
        try:
            return fn(data)
        finally:
            resample.simd_usable = usable  # type: ignore[assignment]

    return run


def time_pipelines(
    pipelines: dict[str, Callable[[bytes], object]], photos: list[bytes], repeat: int
) -> dict[str, list[list[float]]]:
    """Return wall seconds per pipeline, per pass, per photo.

    Pipelines are interleaved photo by photo, so a burst of load from other processes on the
    machine hits all of them alike; the per-photo minimum over passes then filters it out.
    """
    times: dict[str, list[list[float]]] = {name: [] for name in pipelines}
    for rep in range(repeat):
        for name in pipelines:
            times[name].append([])
        for data in photos:
            for name, fn in pipelines.items():
                start = time.perf_counter()
                fn(data)
                times[name][-1].append(time.perf_counter() - start)
        log(f"pass {rep + 1}/{repeat}: " + ", ".join(f"{n} {sum(t[-1]):.2f}s" for n, t in times.items()))
    return times


def pooled_psnr(ours: list[list[bytes]], theirs: list[list[bytes]]) -> tuple[float, list[float]]:
    """Return (PSNR over every pixel of every size of every photo, PSNR per size)."""
    se = np.zeros(len(EDGES))
    count = np.zeros(len(EDGES))
    for mine, ref in zip(ours, theirs, strict=True):
        for i, (a, b) in enumerate(zip(mine, ref, strict=True)):
            x = np.asarray(Image.open(io.BytesIO(a)).convert("RGB"), dtype=np.float64)
            y = np.asarray(Image.open(io.BytesIO(b)).convert("RGB"), dtype=np.float64)
            if x.shape != y.shape:
                raise AssertionError(f"size {EDGES[i]}: core made {x.shape}, baseline {y.shape}")
            se[i] += np.square(x - y).sum()
            count[i] += x.size

    def psnr(err: float, n: float) -> float:
        return float(10 * np.log10(255.0**2 * n / err)) if err else float("inf")

    return psnr(se.sum(), count.sum()), [psnr(e, n) for e, n in zip(se, count, strict=True)]


def peak_rss(large: Path) -> dict[str, float]:
    """Return peak RSS (MB) of a fresh process that processes ``large``, and of one that only imports."""
    env = {**os.environ, **lambda_environment(), "PYTHONPATH": str(ROOT)}
    result = {}
    for mode in ("import", "process"):
        out = subprocess.run(
            [sys.executable, "-c", RSS_PROBE, str(large), mode],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        ).stdout.split()
        result[mode] = int(out[0]) / 1024
        result[f"{mode}_s"] = float(out[1])
    return result


def profile_core(photos: list[bytes], top: int) -> str:
    profiler = cProfile.Profile()
    profiler.enable()
    for data in photos:
        process_image(data)
    profiler.disable()
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(top)
    return text.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="folder of photos")
    parser.add_argument("--large", type=Path, default=DEFAULT_LARGE, help="the 50 MP photo for peak RSS")
    parser.add_argument("--repeat", type=int, default=5, help="timed passes of each pipeline (best is kept)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--profile", action="store_true", help="also print a cProfile of one core pass")
    parser.add_argument("--cpu", type=int, help="CPU to pin to (default: the first this process may use)")
    parser.add_argument("--no-libvips", action="store_true", help="skip the libvips reference")
    parser.add_argument("--memory", action="store_true", help="the memory table (see above) instead")
    parser.add_argument(
        "--unseen", action="store_true", help="time photos made from the corpus (unseen_photos) instead"
    )
    parser.add_argument("--sizes", default="24,90", help="megapixels for --memory")
    parser.add_argument("--kinds", default="", help="file kinds for --memory (default: all)")
    args = parser.parse_args()
    if args.memory:
        rows = memory_table(
            [float(s) for s in args.sizes.split(",")],
            [k for k in args.kinds.split(",") if k],
            ROOT / "bench" / ".cache",
        )
        print(json.dumps(rows) if args.json else "\n".join(json.dumps(row) for row in rows))
        return

    cpu = pin_one_core(args.cpu)
    use_lambda_allocator()
    corpus = args.corpus if args.corpus.is_absolute() else (ROOT / args.corpus)
    large = args.large if args.large.is_absolute() else (ROOT / args.large)
    files = sorted(p for p in corpus.resolve().iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise SystemExit(f"no photos in {corpus}")
    if args.unseen:
        files = unseen_photos(files, ROOT / "bench" / ".cache" / "unseen")
        corpus = files[0].parent
    photos = [p.read_bytes() for p in files]
    log(f"{len(photos)} photos from {corpus.resolve()}, pinned to cpu {cpu}")

    webp = Recipe(formats=("jpeg", "webp"))
    pipelines: dict[str, Callable[[bytes], object]] = {
        "core": core_jpegs,
        "naive": naive,
        "core_webp": lambda data: process_image(data, webp),
        # The same core with Pillow's resampler (Linux aarch64, where the SIMD wheel is missing).
        "core_pillow_resample": pillow_resampled(core_jpegs),
    }
    libvips = not args.no_libvips and load_libvips()
    if libvips:
        pipelines["libvips"] = libvips_variants
        pipelines["libvips_webp"] = lambda data: libvips_variants(data, webp=True)
    else:
        log("pyvips not installed (pip install 'pyvips[binary]'): no libvips reference")
    log("warm-up pass (also the outputs compared for PSNR)")
    vips_outputs = [libvips_variants(data) for data in photos] if libvips else []
    ours = [core_jpegs(data) for data in photos]
    plain = [naive(data) for data in photos]
    process_image(photos[0], webp)
    log("reference pass for PSNR (naive, with the core's colour semantics)")
    refs = [reference(data) for data in photos]

    times = time_pipelines(pipelines, photos, args.repeat)

    psnr, psnr_sizes = pooled_psnr(ours, refs)
    psnr_plain, _ = pooled_psnr(ours, plain)
    log(f"peak RSS on {large.name} in a fresh process")
    rss = peak_rss(large)
    # Best: each photo's fastest pass, summed. Median: the median of whole-pass times.
    best = {name: sum(min(column) for column in zip(*t, strict=True)) for name, t in times.items()}
    median = {name: statistics.median(sum(p) for p in t) for name, t in times.items()}
    result = {
        "photos": len(photos),
        "core_photos_per_s": round(len(photos) / best["core"], 2),
        "naive_photos_per_s": round(len(photos) / best["naive"], 2),
        "speedup_vs_naive": round(best["naive"] / best["core"], 2),
        "speedup_vs_naive_median": round(median["naive"] / median["core"], 2),
        "psnr_pooled_db": round(psnr, 2),
        "psnr_by_size_db": {str(edge): round(v, 2) for edge, v in zip(EDGES, psnr_sizes, strict=True)},
        "psnr_pooled_vs_plain_naive_db": round(psnr_plain, 2),
        "peak_rss_mb_50mp": round(rss["process"], 1),
        "rss_mb_after_import_only": round(rss["import"], 1),
        "seconds_50mp": round(rss["process_s"], 3),
        "webp_time_ratio": round(best["core_webp"] / best["core"], 2),
        "simd_resample_time_ratio": round(best["core"] / best["core_pillow_resample"], 3),
        "simd_resample": resample.simd_checked(),
        **(
            {
                "libvips_photos_per_s": round(len(photos) / best["libvips"], 2),
                "core_rate_vs_libvips": round(best["libvips"] / best["core"], 3),
                "core_webp_rate_vs_libvips_webp": round(best["libvips_webp"] / best["core_webp"], 3),
                "libvips_speedup_vs_naive": round(best["naive"] / best["libvips"], 2),
                "libvips_psnr_pooled_db": round(pooled_psnr(vips_outputs, refs)[0], 2),
                "libvips_version": ".".join(str(pyvips_version(i)) for i in range(3)),
            }
            if libvips
            else {}
        ),
        "repeat": args.repeat,
        "machine": {
            "nproc": os.cpu_count(),
            "cpu": platform.processor() or platform.machine(),
            "python": platform.python_version(),
            "pillow": Image.__version__,
            "libjpeg_turbo": features.version("libjpeg_turbo"),
        },
    }
    if args.json:
        print(json.dumps(result))
    else:
        r = result
        print(f"photos               {len(photos)} (fastest of {args.repeat} passes per photo, one core)")
        print(f"core                 {r['core_photos_per_s']} photos/s")
        print(f"naive                {r['naive_photos_per_s']} photos/s")
        print(
            f"speedup              {r['speedup_vs_naive']}x (median passes: {r['speedup_vs_naive_median']}x)"
        )
        print(f"PSNR pooled          {r['psnr_pooled_db']} dB, by size {r['psnr_by_size_db']}")
        print(
            f"PSNR vs plain naive  {r['psnr_pooled_vs_plain_naive_db']} dB (its alpha dropped, ICC ignored)"
        )
        rss, base = r["peak_rss_mb_50mp"], r["rss_mb_after_import_only"]
        print(f"peak RSS 50 MP       {rss} MB (imports and file bytes only: {base} MB)")
        print(f"WebP on / JPEG only  {r['webp_time_ratio']}x time")
        simd = r["simd_resample_time_ratio"]
        print(f"SIMD / Pillow resize {simd}x time (SIMD in use: {r['simd_resample']})")
        if libvips:
            print(
                f"libvips {r['libvips_version']}       {r['libvips_photos_per_s']} photos/s, "
                f"{r['libvips_speedup_vs_naive']}x naive, PSNR {r['libvips_psnr_pooled_db']} dB (reference)"
            )
            print(
                f"core / libvips rate  {r['core_rate_vs_libvips']} (JPEG), "
                f"{r['core_webp_rate_vs_libvips_webp']} (JPEG + WebP)"
            )
    if args.profile:
        print(profile_core(photos, 25))


if __name__ == "__main__":
    main()
