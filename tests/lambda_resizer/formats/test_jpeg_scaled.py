"""Progressive JPEG at 1/4, 3/8 and 1/2 from its scans summed into the reduced IDCT.

libjpeg's pixels for every sampling, scale, restart interval and scan script; a fraction of its
memory; damage named or left to libjpeg; and libjpeg's route when the C object is missing.
"""

from __future__ import annotations

import io
import tracemalloc
from collections.abc import Callable, Iterator

import numpy as np
import pytest
from PIL import Image

from lambda_resizer.core import Recipe, process_image
from lambda_resizer.estimate import estimate_memory, read_header
from lambda_resizer.formats import jpeg, jpeg_dc, jpeg_scaled
from tests.lambda_resizer import progressive_jpeg
from tests.lambda_resizer.formats.c_objects import damaged_outcomes_sanitized, without_c_object
from tests.lambda_resizer.images import CORPUS, encode, jpeg_segments, photo, reject
from tests.lambda_resizer.progressive_jpeg import Scan, script

PILLOW_SAMPLINGS = {"4:4:4": 0, "4:2:2": 1, "4:2:0": 2}
RESTARTS = [{}, {"restart_marker_blocks": 1}, {"restart_marker_rows": 1}]


def libjpeg_scaled(data: bytes, eighths: int) -> Image.Image:
    """Return libjpeg's decode of a JPEG at ``eighths``/8 (YCbCr for colour, L for grey)."""
    im = Image.open(io.BytesIO(data))
    width, height = im.size
    assert jpeg.dct_scale(width, height, (width * eighths // 8, height * eighths // 8)) == eighths
    jpeg.shrink_on_load(im, (width * eighths // 8, height * eighths // 8))
    im.load()
    return im


def assert_libjpegs(ours: Image.Image | None, theirs: Image.Image, *, min_psnr: float = 45.0) -> None:
    """Assert each plane is libjpeg's to within rounding: PSNR >= min_psnr and at most 3 levels off."""
    assert ours is not None
    assert (ours.mode, ours.size) == (theirs.mode, theirs.size)
    a = np.asarray(ours, np.float64).reshape(ours.height, ours.width, -1)
    b = np.asarray(theirs, np.float64).reshape(theirs.height, theirs.width, -1)
    for plane in range(a.shape[2]):
        diff = a[..., plane] - b[..., plane]
        mse = float((diff**2).mean())
        assert mse == 0 or 10 * np.log10(255**2 / mse) >= min_psnr, (plane, mse)
        assert np.abs(diff).max() <= 3, plane


def test_the_c_decoder_is_built_and_loads():
    # Without it every progressive file decodes through libjpeg's whole coefficient array: the
    # suite would pass on libjpeg's route and the Lambda would need 3x the memory for them.
    assert jpeg_scaled.LIBRARY.exists(), f"run `make setup`: it builds {jpeg_scaled.LIBRARY}"
    assert jpeg_scaled.available()


@pytest.mark.parametrize("mode", ["L", *PILLOW_SAMPLINGS])
@pytest.mark.parametrize("size", [(803, 597), (37, 19)])
@pytest.mark.parametrize("eighths", jpeg_scaled.EIGHTHS)
@pytest.mark.parametrize("restart", RESTARTS, ids=["no restarts", "every block", "every row"])
def test_libjpegs_own_progression_decodes_to_libjpegs_pixels(mode, size, eighths, restart):
    source = photo(*size).convert("L" if mode == "L" else "RGB")
    options = {"subsampling": PILLOW_SAMPLINGS[mode]} if mode != "L" else {}
    data = encode(source, "JPEG", quality=88, progressive=True, **options, **restart)
    ours = jpeg_scaled.decode_scaled(data, eighths)
    assert ours is not None and ours.size == (-(-size[0] * eighths // 8), -(-size[1] * eighths // 8))
    assert_libjpegs(ours, libjpeg_scaled(data, eighths))


def _scripts(count: int) -> dict[str, list[Scan]]:
    """Return scan scripts for ``count`` components, as encoders other than libjpeg's write them."""
    every = tuple(range(count))
    chroma = every[1:]
    return {
        # mozjpeg: a DC scan for each component, luma's low band first, no successive approximation
        "dc per component": script(
            *[((c,), 0, 0, 0, 0) for c in every],
            ((0,), 1, 2, 0, 0),
            ((0,), 3, 63, 0, 0),
            *[((c,), 1, 63, 0, 0) for c in chroma],
        ),
        # every value sent 3 bits short, then refined a bit at a time, DC interleaved and AC not
        "deep refinement": script(
            (every, 0, 0, 0, 3),
            *[((c,), 1, 63, 0, 3) for c in every],
            (every, 0, 0, 3, 2),
            *[((c,), 1, 63, ah, ah - 1) for ah in (3, 2, 1) for c in every],
            (every, 0, 0, 2, 1),
            (every, 0, 0, 1, 0),
        ),
        # bands one coefficient wide, refined in another order than they were sent, DC of a subset
        "narrow bands": script(
            ((0,), 0, 0, 0, 1),
            *([(chroma, 0, 0, 0, 1)] if chroma else []),
            ((0,), 1, 1, 0, 1),
            ((0,), 2, 2, 0, 2),
            ((0,), 3, 5, 0, 1),
            ((0,), 6, 63, 0, 1),
            ((0,), 0, 0, 1, 0),
            ((0,), 6, 63, 1, 0),
            ((0,), 2, 2, 2, 1),
            ((0,), 1, 1, 1, 0),
            ((0,), 3, 5, 1, 0),
            ((0,), 2, 2, 1, 0),
            *([(chroma, 0, 0, 1, 0)] if chroma else []),
            *[((c,), 1, 9 + 9 * i, 0, 0) for i, c in enumerate(chroma)],
            *[((c,), 10 + 9 * i, 63, 0, 0) for i, c in enumerate(chroma)],
        ),
        # the AC of chroma before any DC (libjpeg warns and decodes it)
        "ac before dc": script(
            *[((c,), 1, 63, 0, 0) for c in reversed(every)],
            (every, 0, 0, 0, 0),
        ),
    }


@pytest.mark.parametrize("sampling", list(progressive_jpeg.SAMPLINGS))
@pytest.mark.parametrize("name", list(_scripts(3)))
@pytest.mark.parametrize("restart", [0, 7])
def test_any_scan_script_and_sampling_decodes_to_libjpegs_pixels(sampling, name, restart):
    source = photo(203, 131, seed=len(name))
    count = len(progressive_jpeg.SAMPLINGS[sampling])
    data = progressive_jpeg.write(source, sampling, _scripts(count)[name], restart=restart)
    for eighths in jpeg_scaled.EIGHTHS:
        assert_libjpegs(jpeg_scaled.decode_scaled(data, eighths), libjpeg_scaled(data, eighths))


@pytest.fixture
def every_progressive_file(monkeypatch):
    """Send every progressive file this way, however small (the tests' files are)."""
    monkeypatch.setattr(jpeg_dc, "COEFFICIENT_BYTES", 0)


def _sources() -> Iterator[tuple[str, Image.Image]]:
    for path in sorted(CORPUS.glob("*.jpg"))[:2]:
        yield path.name, Image.open(path).convert("RGB")
    yield "synthetic", photo(2400, 1600)  # the shared corpus may be absent


@pytest.mark.parametrize("eighths, longest", [(2, 600), (3, 900), (4, 1024)])
@pytest.mark.parametrize("subsampling", [0, 2])
def test_variants_match_libjpegs_route(every_progressive_file, monkeypatch, eighths, longest, subsampling):
    recipe = Recipe(sizes=(("a", longest), ("b", 200)))
    scales: list[int] = []
    decode = jpeg_scaled.decode_scaled
    monkeypatch.setattr(jpeg_scaled, "decode_scaled", lambda data, e: scales.append(e) or decode(data, e))
    for name, source in _sources():
        source = source.resize((2400, 2400 * source.height // source.width), Image.Resampling.BOX)
        data = encode(source, "JPEG", quality=90, progressive=True, subsampling=subsampling)
        header = read_header(io.BytesIO(data))
        assert estimate_memory(header, recipe, source_bytes=len(data)).path == "jpeg_scaled"
        ours = _variants(data, recipe)
        with monkeypatch.context() as patch:
            patch.setattr(jpeg_scaled, "applies", lambda im, e: False)  # libjpeg's route
            theirs = _variants(data, recipe)
        for a, b in zip(ours, theirs, strict=True):
            assert a.size == b.size
            diff = np.asarray(a, np.float64) - np.asarray(b, np.float64)
            assert 10 * np.log10(255**2 / max(float((diff**2).mean()), 1e-9)) >= 45, name
    assert set(scales) == {eighths}


def _variants(data: bytes, recipe: Recipe) -> list[Image.Image]:
    variants = process_image(data, recipe).variants
    return [Image.open(io.BytesIO(v.encoded["jpeg"])).convert("RGB") for v in variants]


@pytest.mark.parametrize("eighths", [2, 4])
def test_peak_memory_is_a_fraction_of_libjpegs_coefficients(eighths):
    # libjpeg holds 128 B a block for a progressive file, whatever the scale. Here: one
    # component's sums and masks at a time (24 B a block at 2x2, 48 at 4x4) and the planes.
    data = encode(photo(2400, 1600), "JPEG", quality=90, progressive=True, subsampling=0)
    coefficients = (2400 // 8) * (1600 // 8) * 3 * 128
    tracemalloc.start()
    try:
        ours = jpeg_scaled.decode_scaled(data, eighths)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert ours is not None
    planes = 2400 * 1600 * 3 * eighths**2 // 64
    assert peak < planes * 2 + coefficients / 4, (peak, coefficients)


def _ac_scans(data: bytes) -> list[tuple[int, int]]:
    """Return (data start, next marker) of every AC scan, in file order."""
    spans, at = [], 2
    for segment in jpeg_segments(data):
        if segment[1] == 0xDA and segment[5 + 2 * segment[4]] != 0:
            spans.append((at + 2 + int.from_bytes(segment[2:4], "big"), at + len(segment)))
        at += len(segment)
    return spans


def _restart_markers(data: bytes, start: int, end: int) -> list[int]:
    return [i for i in range(start, end - 1) if data[i] == 0xFF and 0xD0 <= data[i + 1] <= 0xD7]


def test_a_bad_huffman_code_in_an_ac_scan_is_rejected_with_the_reason(every_progressive_file):
    data = encode(photo(1200, 800), "JPEG", quality=90, progressive=True)
    start, _ = _ac_scans(data)[0]
    garbled = data[:start] + b"\xff\x00" * 32 + data[start + 64 :]  # all ones: no code in any table
    with pytest.raises(jpeg_dc.JpegDataError, match="bad Huffman code in an AC scan of component 1"):
        jpeg_scaled.decode_scaled(garbled, 2)
    err = reject(garbled, Recipe(sizes=(("a", 300),)))
    assert err.code == "corrupt" and "Huffman" in err.message


@pytest.mark.parametrize("scan", ["first", "refinement"])
def test_a_file_cut_inside_an_ac_scan_is_truncated(every_progressive_file, scan):
    if scan == "first":  # its DC whole before the first AC scan (libjpeg's script refines it later)
        data = progressive_jpeg.write(photo(600, 400), "4:2:0", _scripts(3)["dc per component"])
    else:  # libjpeg's last scan: luma's least significant bit
        data = encode(photo(1200, 800), "JPEG", quality=90, progressive=True)
    spans = _ac_scans(data)
    start, end = spans[0 if scan == "first" else -1]
    cut = data[: (start + end) // 2] + b"\xff\xd9"
    with pytest.raises(jpeg_dc.JpegDataError, match=r"truncated: an AC scan of component . ends early"):
        jpeg_scaled.decode_scaled(cut, 4)
    width = Image.open(io.BytesIO(data)).width
    err = reject(cut, Recipe(sizes=(("a", width // 2),)))  # decoded at 1/2
    assert err.code == "truncated"


@pytest.mark.parametrize("damage", ["missing", "out of order"])
def test_a_lost_restart_marker_in_an_ac_scan_goes_to_libjpeg(every_progressive_file, damage):
    data = encode(photo(1200, 800), "JPEG", quality=90, progressive=True, restart_marker_blocks=6)
    start, end = _ac_scans(data)[0]
    marker = _restart_markers(data, start, end)[5]
    if damage == "missing":
        damaged = data[:marker] + data[marker + 2 :]
    else:
        damaged = data[: marker + 1] + bytes([0xD0 + (data[marker + 1] - 0xD0 + 3) % 8]) + data[marker + 2 :]
    assert jpeg_scaled.decode_scaled(damaged, 2) is None  # declined: libjpeg resynchronises
    assert [v.name for v in process_image(damaged, Recipe(sizes=(("a", 300),))).variants] == ["a"]


def _grey(scans: list[tuple]) -> bytes:
    return progressive_jpeg.write(photo(96, 64), "L", script(*scans))


def test_progressions_libjpeg_only_warns_about_go_to_libjpeg():
    assert jpeg_scaled.decode_scaled(_grey([((0,), 0, 0, 0, 0), ((0,), 1, 63, 0, 0)]), 2) is not None
    repeated = _grey([((0,), 0, 0, 0, 0), ((0,), 1, 63, 0, 0), ((0,), 1, 5, 0, 0)])
    refined_early = _grey([((0,), 0, 0, 0, 0), ((0,), 1, 63, 1, 0)])  # bit 0 of what was never sent
    skipped = _grey([((0,), 0, 0, 0, 0), ((0,), 1, 63, 0, 2), ((0,), 1, 63, 1, 0)])  # bit 1 never sent
    for data in (repeated, refined_early, skipped):
        assert jpeg_scaled.decode_scaled(data, 2) is None
        Image.open(io.BytesIO(data)).load()  # libjpeg decodes them (with a warning)


def test_progressions_libjpeg_rejects_are_rejected():
    backwards = _grey([((0,), 0, 0, 0, 0), ((0,), 9, 3, 0, 0)])
    with pytest.raises(jpeg_dc.JpegDataError, match="invalid progressive AC scan: 1 components, band 9-3"):
        jpeg_scaled.decode_scaled(backwards, 2)
    no_dc = _grey([((0,), 1, 63, 0, 0)])
    with pytest.raises(jpeg_dc.JpegDataError, match="component 1 has no DC scan"):
        jpeg_scaled.decode_scaled(no_dc, 2)
    dc_short = _grey([((0,), 0, 0, 0, 1), ((0,), 1, 63, 0, 0)])
    with pytest.raises(jpeg_dc.JpegDataError, match="component 1 has DC known only to bit 1"):
        jpeg_scaled.decode_scaled(dc_short, 2)


def _mutations(data: bytes, spans: list[tuple[int, int]], seed: int, count: int = 120) -> Iterator[bytes]:
    """Yield ``data`` with random bytes of its scans replaced, some also cut short."""
    rng = np.random.default_rng(seed)
    for _ in range(count):
        damaged = bytearray(data)
        start, end = spans[int(rng.integers(len(spans)))]
        for at in rng.integers(max(2, start - 12), end, rng.integers(1, 12)):
            damaged[at] = int(rng.choice([0x00, 0xFF, 0xD0 + int(rng.integers(8)), int(rng.integers(256))]))
        if rng.random() < 0.2:
            damaged = damaged[: int(rng.integers(start, len(damaged)))]
        yield bytes(damaged)


FILES: dict[str, Callable[[], bytes]] = {
    "libjpeg's": lambda: encode(photo(160, 96), "JPEG", quality=85, progressive=True),
    "libjpeg's with restarts": lambda: encode(
        photo(160, 96), "JPEG", progressive=True, restart_marker_blocks=3
    ),
    "deep refinement 4:1:1": lambda: progressive_jpeg.write(
        photo(160, 96), "4:1:1", _scripts(3)["deep refinement"], restart=5
    ),
}


def damaged_outcomes(name: str, count: int = 120) -> dict[str, int]:
    """Decode ``count`` damaged copies of ``FILES[name]``; return how many ended each way.

    Every outcome must be an image of the right size, None (libjpeg's route) or JpegDataError
    with the reason; anything else raises.
    """
    data = FILES[name]()
    outcomes = {"image": 0, "libjpeg": 0, "error": 0}
    for at, damaged in enumerate(_mutations(data, _ac_scans(data), seed=len(name), count=count)):
        eighths = jpeg_scaled.EIGHTHS[at % 3]
        try:
            ours = jpeg_scaled.decode_scaled(damaged, eighths)
        except jpeg_dc.JpegDataError as exc:
            assert str(exc)
            outcomes["error"] += 1
            continue
        if ours is not None:
            assert ours.size == (-(-160 * eighths // 8), -(-96 * eighths // 8))
        outcomes["image" if ours is not None else "libjpeg"] += 1
    return outcomes


@pytest.mark.parametrize("name", list(FILES))
def test_damaged_scans_end_as_a_named_error_or_libjpegs_route_never_a_crash(name):
    outcomes = damaged_outcomes(name)
    assert outcomes["error"] and outcomes["image"], outcomes  # the damage reached the decoder


@pytest.mark.slow
def test_the_c_decoder_stays_inside_its_buffers_on_damaged_scans(tmp_path):
    outcomes = damaged_outcomes_sanitized(jpeg_scaled, __name__, 1500, tmp_path)
    assert all(o["error"] > 100 and o["image"] > 20 for o in outcomes.values()), outcomes


@pytest.fixture
def no_c_object(monkeypatch, tmp_path):
    """The C object missing (a machine without a compiler, a package built elsewhere)."""
    yield from without_c_object(jpeg_scaled, monkeypatch, tmp_path)


def test_without_the_c_object_libjpeg_decodes_and_the_estimate_says_so(
    every_progressive_file, no_c_object, caplog
):
    data = encode(photo(2400, 1600), "JPEG", quality=90, progressive=True)
    recipe = Recipe(sizes=(("a", 600),))
    assert not jpeg_scaled.available()
    assert "is not built" in caplog.text
    assert jpeg_scaled.decode_scaled(data, 2) is None
    estimate = estimate_memory(read_header(io.BytesIO(data)), recipe, source_bytes=len(data))
    assert estimate.path != "jpeg_scaled"
    variants = process_image(data, recipe).variants
    assert [v.name for v in variants] == ["a"]
    assert Image.open(io.BytesIO(variants[0].encoded["jpeg"])).size == (600, 400)
