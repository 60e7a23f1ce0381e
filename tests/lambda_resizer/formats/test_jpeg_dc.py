"""Progressive JPEG at 1/8 from its DC scans: libjpeg's luma exactly, its variants closely, bad data named."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
from PIL import Image

from lambda_resizer.core import Recipe, process_image
from lambda_resizer.estimate import estimate_memory, read_header
from lambda_resizer.formats import jpeg_dc
from tests.lambda_resizer.images import CORPUS, encode, jpeg_segments, photo, reject

# Annex K's luminance DC table: code lengths of categories 0..11.
_DC_COUNTS = [0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0]


def libjpeg_eighth(data: bytes) -> Image.Image:
    """Return libjpeg's decode of a JPEG at 1/8 scale, in YCbCr (colour) or L."""
    im = Image.open(io.BytesIO(data))
    im.draft("YCbCr" if im.mode == "RGB" else None, (im.width // 8, im.height // 8))
    im.load()
    return im


def psnr(a: Image.Image, b: Image.Image) -> float:
    diff = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    mse = float((diff**2).mean())
    return 99.0 if mse == 0 else 10 * np.log10(255**2 / mse)


def luma(im: Image.Image) -> np.ndarray:
    pixels = np.asarray(im)
    return pixels[..., 0] if pixels.ndim == 3 else pixels


RESTARTS = [{}, {"restart_marker_blocks": 1}, {"restart_marker_blocks": 5}, {"restart_marker_rows": 1}]


@pytest.mark.parametrize("mode", ["L", "4:4:4", "4:2:2", "4:2:0"])
@pytest.mark.parametrize("size", [(803, 597), (64, 48), (37, 9)])
@pytest.mark.parametrize("restart", RESTARTS)
def test_luma_is_libjpegs_exactly_and_chroma_close(mode, size, restart):
    source = photo(*size)
    options = {"subsampling": {"4:4:4": 0, "4:2:2": 1, "4:2:0": 2}[mode]} if mode != "L" else {}
    source = source.convert("L" if mode == "L" else "RGB")
    data = encode(source, "JPEG", quality=88, progressive=True, **options, **restart)
    ours, theirs = jpeg_dc.decode_eighth(data), libjpeg_eighth(data)
    assert ours is not None and ours.size == theirs.size == (-(-size[0] // 8), -(-size[1] // 8))
    assert ours.mode == theirs.mode
    assert np.array_equal(luma(ours), luma(theirs))
    if mode == "4:4:4":  # no chroma upsampling: every plane is libjpeg's
        assert np.array_equal(np.asarray(ours), np.asarray(theirs))
    elif mode != "L" and min(size) >= 400:  # chroma from its DC image (libjpeg: a 2x2 IDCT)
        assert psnr(ours, theirs) > 35


def _huffman_codes() -> dict[int, tuple[int, int]]:
    codes, code, symbol = {}, 0, 0
    for bits, count in enumerate(_DC_COUNTS, start=1):
        for _ in range(count):
            codes[symbol] = (code, bits)
            code, symbol = code + 1, symbol + 1
        code <<= 1
    return codes


def _dc_scan(values: np.ndarray) -> bytes:
    """Return one component's DC values entropy-coded (raster order, Annex K table, no point transform)."""
    codes, bits, count, out = _huffman_codes(), 0, 0, bytearray()
    previous = 0
    for value in values.reshape(-1).tolist():
        diff, previous = value - previous, value
        category = abs(diff).bit_length()
        code, length = codes[category]
        extra = diff if diff >= 0 else diff + (1 << category) - 1
        bits, count = (bits << length | code) << category | extra, count + length + category
        while count >= 8:
            count -= 8
            byte = bits >> count & 0xFF
            out += b"\xff\x00" if byte == 0xFF else bytes([byte])
        bits &= (1 << count) - 1
    if count:
        byte = (bits << (8 - count) | (1 << (8 - count)) - 1) & 0xFF
        out += b"\xff\x00" if byte == 0xFF else bytes([byte])
    return bytes(out)


def separate_dc_scans(data: bytes) -> bytes:
    """Return the progressive JPEG with its DC written as one scan per component (as mozjpeg does).

    The DC values come from the file (decoded here); the AC scans are the file's own. libjpeg then
    reads the result as the encoder meant it, or the comparison with it fails.
    """
    frame = jpeg_dc._decode_dc(memoryview(data))
    assert frame is not None
    table = struct.pack(">HHB", 0xFFC4, 2 + 17 + 12, 0x00) + bytes(_DC_COUNTS) + bytes(range(12))
    out = [b"\xff\xd8"]
    for segment in jpeg_segments(data):
        if segment[1] != 0xDA:
            out.append(segment)
            continue
        count = segment[4]
        ss, _, approx = segment[5 + 2 * count : 8 + 2 * count]
        if ss != 0:
            out.append(segment)  # an AC scan, kept
        elif approx >> 4 == 0:  # the first DC scan: replaced by one scan per component
            out.append(table)
            for c in frame.components:
                blocks_w, blocks_h = frame.blocks(c)
                assert c.dc is not None
                header = struct.pack(">HHBBBBBB", 0xFFDA, 8, 1, c.ident, 0x00, 0, 0, 0)
                out.append(header + _dc_scan(c.dc[:blocks_h, :blocks_w]))
        # DC refinement scans are dropped: the new scans carry every bit
    return b"".join(out) + b"\xff\xd9"


@pytest.mark.parametrize("subsampling", [0, 2])
def test_one_dc_scan_per_component_is_read_in_each_components_block_order(subsampling):
    original = encode(photo(331, 203), "JPEG", quality=90, progressive=True, subsampling=subsampling)
    data = separate_dc_scans(original)
    assert data.count(b"\xff\xda") > original.count(b"\xff\xda") - 2  # three DC scans replace two
    ours, theirs = jpeg_dc.decode_eighth(data), libjpeg_eighth(data)
    assert ours is not None
    assert np.array_equal(luma(ours), luma(theirs))
    assert np.array_equal(luma(ours), luma(jpeg_dc.decode_eighth(original)))  # the same DC, rewritten
    full = Image.open(io.BytesIO(data)).convert("RGB")  # libjpeg reads the whole rewritten file
    assert psnr(full, Image.open(io.BytesIO(original)).convert("RGB")) == 99.0


def test_baseline_arithmetic_and_cmyk_files_are_left_to_libjpeg():
    image = photo(400, 300)
    assert jpeg_dc.decode_eighth(encode(image, "JPEG")) is None  # baseline: libjpeg already streams it
    assert jpeg_dc.decode_eighth(encode(image.convert("CMYK"), "JPEG", progressive=True)) is None
    arithmetic = bytearray(encode(image, "JPEG", progressive=True))
    sof = arithmetic.index(b"\xff\xc2")
    arithmetic[sof + 1] = 0xCA  # the frame marker of arithmetic-coded progressive
    assert jpeg_dc.decode_eighth(bytes(arithmetic)) is None
    assert not jpeg_dc.huffman_progressive(io.BytesIO(bytes(arithmetic)))
    assert jpeg_dc.huffman_progressive(io.BytesIO(encode(image, "JPEG", progressive=True)))


@pytest.fixture
def every_progressive_file(monkeypatch):
    """Send every progressive file decoded at 1/8 this way, however small (the tests' files are)."""
    monkeypatch.setattr(jpeg_dc, "COEFFICIENT_BYTES", 0)


EIGHTH = Recipe(sizes=(("a", 280), ("b", 120)))  # a 2400 px photo decodes at 1/8 for 280 px


def _variants(data: bytes) -> list[Image.Image]:
    variants = process_image(data, EIGHTH).variants
    return [Image.open(io.BytesIO(v.encoded["jpeg"])).convert("RGB") for v in variants]


@pytest.mark.parametrize("subsampling", [0, 2])
def test_variants_match_libjpegs_route(every_progressive_file, monkeypatch, subsampling):
    sources = {path.name: Image.open(path).convert("RGB") for path in sorted(CORPUS.glob("*.jpg"))[:3]}
    sources["synthetic"] = photo(2400, 1600)  # the shared corpus may be absent
    for name, source in sources.items():
        source = source.resize((2400, 2400 * source.height // source.width), Image.Resampling.BOX)
        data = encode(source, "JPEG", quality=90, progressive=True, subsampling=subsampling)
        header = read_header(io.BytesIO(data))
        assert header.dc and estimate_memory(header, EIGHTH, source_bytes=len(data)).path == "jpeg_dc"
        ours = _variants(data)
        with monkeypatch.context() as patch:
            patch.setattr(jpeg_dc, "applies", lambda im: False)  # libjpeg's route, the whole coefficients
            theirs = _variants(data)
        for a, b in zip(ours, theirs, strict=True):
            assert a.size == b.size
            assert psnr(a, b) >= 40, name


def _dc_scan_span(data: bytes) -> tuple[int, int]:
    """Return where the first scan's entropy-coded data starts and ends."""
    sos = data.index(b"\xff\xda")
    start = sos + 2 + int.from_bytes(data[sos + 2 : sos + 4], "big")
    end = data.index(b"\xff\xc4", start) if b"\xff\xc4" in data[start:] else data.index(b"\xff\xda", start)
    return start, end


def test_a_bad_huffman_code_or_cut_dc_scan_is_rejected_with_the_reason(every_progressive_file):
    data = encode(photo(2400, 1600), "JPEG", quality=90, progressive=True)
    start, end = _dc_scan_span(data)
    # All ones is no code in any JPEG Huffman table.
    garbled = data[:start] + b"\xff\x00" * 64 + data[start + 128 :]
    err = reject(garbled, EIGHTH)
    assert err.code == "corrupt" and "Huffman" in err.message
    cut = data[: start + (end - start) // 2] + b"\xff\xd9"
    err = reject(cut, EIGHTH)
    assert err.code == "truncated" and "DC" in err.message


def test_damaged_files_end_as_a_named_error_never_another_exception():
    rng = np.random.default_rng(3)
    for restart in ({}, {"restart_marker_blocks": 3}):
        data = encode(photo(400, 300), "JPEG", quality=85, progressive=True, **restart)
        start, _ = _dc_scan_span(data)
        for _ in range(150):
            damaged = bytearray(data)
            for at in rng.integers(start - 200, min(len(data), start + 2000), rng.integers(1, 20)):
                damaged[at] = int(rng.integers(0, 256))
            if rng.random() < 0.2:
                damaged = damaged[: int(rng.integers(start, len(damaged)))]
            try:
                jpeg_dc.decode_eighth(bytes(damaged))
            except jpeg_dc.JpegDataError as exc:
                assert str(exc)
