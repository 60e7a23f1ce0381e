"""The SIMD resampler gives Pillow's pixels in every mode and filter it takes; Pillow does the rest."""

from __future__ import annotations

import logging
import platform
import sys
import threading
from collections.abc import Iterator

import numpy as np
import pytest
from PIL import Image

from lambda_resizer import resample
from lambda_resizer.recipe import FILTERS

from .images import photo

# The wheel exists (and is a dependency) on these; elsewhere Pillow resamples.
SIMD_PLATFORM = (sys.platform == "linux" and platform.machine() == "x86_64") or sys.platform in (
    "darwin",
    "win32",
)
FRACTIONAL = (0.0, 0.0, 317.625, 239.375)  # what a DCT-scaled decode hands on: the real extent


def psnr(a: Image.Image, b: Image.Image) -> float:
    x, y = (np.asarray(img, dtype=np.float64) for img in (a, b))
    mse = float(np.mean((x - y) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)


def sample(mode: str) -> Image.Image:
    """Return a photo-like 318 x 240 image in ``mode``; RGBA with alpha from 0 to 255 and back."""
    img = photo(318, 240, seed=3)
    if mode == "RGBA":
        alpha = Image.linear_gradient("L").resize(img.size).rotate(30)
        return Image.merge("RGBA", (*img.split(), alpha))
    return img.convert(mode)


@pytest.fixture
def simd_off(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Make this process's resampler Pillow, as where the wheel is missing."""
    resample.simd_checked.cache_clear()
    monkeypatch.setattr(resample, "RustResizer", None)
    yield
    resample.simd_checked.cache_clear()


@pytest.mark.skipif(not SIMD_PLATFORM, reason="no cykooz-resizer wheel for this platform")
def test_simd_resampler_is_in_use_where_its_wheel_exists() -> None:
    # A missing wheel or a Pillow whose image struct it misreads would silently cost the speed.
    assert resample.simd_checked()
    assert resample.simd_usable("YCbCr", Image.Resampling.LANCZOS)


@pytest.mark.skipif(not SIMD_PLATFORM, reason="no cykooz-resizer wheel for this platform")
@pytest.mark.parametrize("mode", sorted(resample.SIMD_MODES))
@pytest.mark.parametrize("name", sorted(FILTERS))
@pytest.mark.parametrize("box", [None, FRACTIONAL, (12.5, 7.25, 300.0, 201.5)])
def test_every_mode_and_filter_matches_pillow(mode: str, name: str, box: tuple[float, ...] | None) -> None:
    img = sample(mode)
    ours = resample.resize(img, (211, 157), FILTERS[name], box)  # type: ignore[arg-type]
    theirs = img.resize((211, 157), FILTERS[name], box=box)  # type: ignore[arg-type]
    assert (ours.mode, ours.size) == (theirs.mode, theirs.size)
    if mode == "RGBA":  # colour under alpha near 0 is unseen and unstable: compare what shows
        ours, theirs = ours.convert("RGBa"), theirs.convert("RGBa")
    assert psnr(ours, theirs) >= 48


@pytest.mark.skipif(not SIMD_PLATFORM, reason="no cykooz-resizer wheel for this platform")
def test_a_reducing_gap_reduces_first_as_pillow_does() -> None:
    img = sample("YCbCr").resize((1272, 960))
    ours = resample.resize(img, (200, 151), Image.Resampling.LANCZOS, FRACTIONAL, reducing_gap=1.0)
    theirs = img.resize((200, 151), Image.Resampling.LANCZOS, box=FRACTIONAL, reducing_gap=1.0)
    assert psnr(ours, theirs) >= 48


@pytest.mark.skipif(not SIMD_PLATFORM, reason="no cykooz-resizer wheel for this platform")
def test_ycbcr_planes_are_all_resampled_with_the_filter() -> None:
    img = sample("YCbCr")
    ours = resample.resample_ycc(img, (159, 120), Image.Resampling.LANCZOS, FRACTIONAL)
    theirs = img.resize((159, 120), Image.Resampling.LANCZOS, box=FRACTIONAL)  # chroma too
    assert psnr(ours, theirs) >= 48


@pytest.mark.parametrize("mode", ["LA", "I;16", "CMYK", "I", "F"])
def test_modes_it_does_not_read_are_pillows_own(mode: str) -> None:
    img = sample("RGBA" if mode == "LA" else "L" if mode in ("I;16", "I", "F") else "RGB").convert(mode)
    assert not resample.simd_usable(mode, Image.Resampling.LANCZOS)
    ours = resample.resize(img, (100, 75), Image.Resampling.LANCZOS)
    assert ours.tobytes() == img.resize((100, 75), Image.Resampling.LANCZOS).tobytes()


def test_hamming_is_pillows_own() -> None:
    assert not resample.simd_usable("L", Image.Resampling.HAMMING)


@pytest.mark.usefixtures("simd_off")
def test_without_the_wheel_pillow_resamples_luma_with_the_filter_and_chroma_by_area() -> None:
    img = sample("YCbCr")
    assert not resample.simd_usable("YCbCr", Image.Resampling.LANCZOS)
    ours = resample.resample_ycc(img, (159, 120), Image.Resampling.LANCZOS, FRACTIONAL)
    y, cb, cr = img.split()
    expected = Image.merge(
        "YCbCr",
        (
            y.resize((159, 120), Image.Resampling.LANCZOS, box=FRACTIONAL),
            *(c.resize((159, 120), Image.Resampling.BOX, box=FRACTIONAL) for c in (cb, cr)),
        ),
    )
    assert ours.tobytes() == expected.tobytes()
    rgb = sample("RGB")
    assert (
        resample.resize(rgb, (100, 75), Image.Resampling.LANCZOS).tobytes()
        == rgb.resize((100, 75), Image.Resampling.LANCZOS).tobytes()
    )


@pytest.mark.skipif(not SIMD_PLATFORM, reason="no cykooz-resizer wheel for this platform")
def test_a_resampler_that_disagrees_with_pillow_is_not_used(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # As if a new Pillow moved its image struct: the SIMD output would be another image's pixels.
    real = resample._simd_resize

    def misread(im: Image.Image, *args: object) -> Image.Image:
        out = real(im, *args)  # type: ignore[arg-type]
        return out.transpose(Image.Transpose.FLIP_LEFT_RIGHT)

    resample.simd_checked.cache_clear()
    monkeypatch.setattr(resample, "_simd_resize", misread)
    try:
        with caplog.at_level(logging.WARNING, logger=resample.__name__):
            assert not resample.simd_checked()
        assert "disagrees with Pillow" in caplog.text
        img = sample("L")
        assert (
            resample.resize(img, (100, 75), Image.Resampling.LANCZOS).tobytes()
            == img.resize((100, 75), Image.Resampling.LANCZOS).tobytes()
        )
    finally:
        resample.simd_checked.cache_clear()


@pytest.mark.skipif(not SIMD_PLATFORM, reason="no cykooz-resizer wheel for this platform")
def test_threads_resampling_at_once_each_get_their_own_image() -> None:
    # The handler reads the next upload on another thread while this one resizes.
    images = [sample("YCbCr").rotate(angle) for angle in (0, 90, 180, 270)]
    expected = [resample.resize(img, (150, 113), Image.Resampling.LANCZOS).tobytes() for img in images]
    results: dict[int, list[bytes]] = {}

    def work(index: int) -> None:
        results[index] = [
            resample.resize(images[index], (150, 113), Image.Resampling.LANCZOS).tobytes() for _ in range(20)
        ]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(images))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(out == expected[i] for i, outs in results.items() for out in outs)
    assert len(results) == len(images)


def test_a_box_outside_the_image_is_refused_as_pillow_refuses_it() -> None:
    img = sample("YCbCr")
    with pytest.raises(ValueError, match="can't exceed"):
        img.resize((10, 10), Image.Resampling.LANCZOS, box=(0, 0, img.width + 1, img.height))
    with pytest.raises(ValueError, match="can't exceed"):
        resample.resize(img, (10, 10), Image.Resampling.LANCZOS, (0, 0, img.width + 1, img.height))


@pytest.mark.skipif(not SIMD_PLATFORM, reason="no cykooz-resizer wheel for this platform")
def test_a_pillow_whose_struct_it_would_misread_is_refused_before_the_library_runs(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # The library picks its struct layout from PIL.__version__: a misread layout would crash the
    # process inside it, so the check is made from Python, before any call into it.
    import PIL

    resample.simd_checked.cache_clear()
    monkeypatch.setattr(PIL, "__version__", "11.3.0")
    try:
        with caplog.at_level(logging.WARNING, logger=resample.__name__):
            assert not resample.simd_checked()
        assert "Pillow 11.3.0" in caplog.text
    finally:
        resample.simd_checked.cache_clear()


@pytest.mark.skipif(not SIMD_PLATFORM, reason="no cykooz-resizer wheel for this platform")
def test_the_struct_check_reads_pillows_own_pixels() -> None:
    assert resample._layout_mismatch() == ""


@pytest.mark.parametrize(
    ("size", "box"),
    [
        ((400, 300), None),  # enlarging: Pillow clips the overshoot of its passes otherwise
        ((211, 157), (5.0, 5.0, 5.0, 60.0)),  # an empty box
        ((300, 100), (0.0, 0.0, 200.0, 240.0)),  # enlarging on one axis only
    ],
)
def test_what_the_core_never_asks_for_is_pillows_own(
    size: tuple[int, int], box: tuple[float, ...] | None
) -> None:
    img = sample("YCbCr")
    ours = resample.resize(img, size, Image.Resampling.LANCZOS, box)  # type: ignore[arg-type]
    assert ours.tobytes() == img.resize(size, Image.Resampling.LANCZOS, box=box).tobytes()  # type: ignore[arg-type]


def test_a_reducing_gap_around_an_offset_box_is_pillows_own() -> None:
    img = sample("L").resize((1272, 960))
    box = (100.5, 40.25, 1200.0, 900.0)
    ours = resample.resize(img, (200, 151), Image.Resampling.LANCZOS, box, reducing_gap=1.0)
    theirs = img.resize((200, 151), Image.Resampling.LANCZOS, box=box, reducing_gap=1.0)
    assert ours.tobytes() == theirs.tobytes()
