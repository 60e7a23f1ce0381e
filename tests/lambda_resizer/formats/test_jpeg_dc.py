"""Progressive JPEG at 1/8 from its DC scans: libjpeg's luma exactly, its variants closely, bad data named."""

from __future__ import annotations

import io
import struct
import tracemalloc

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
    """Return where the first scan's entropy-coded data starts and where its next marker is."""
    sos = data.index(b"\xff\xda")
    start = sos + 2 + int.from_bytes(data[sos + 2 : sos + 4], "big")
    end = jpeg_dc._SCAN_END.search(data, start)
    assert end is not None
    return start, end.start()


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


def _restart_markers(data: bytes, start: int, end: int) -> list[int]:
    return [i for i in range(start, end - 1) if data[i] == 0xFF and 0xD0 <= data[i + 1] <= 0xD7]


def test_two_frame_headers_or_width_0_are_rejected_as_libjpeg_rejects_them():
    data = encode(photo(200, 120), "JPEG", quality=85, progressive=True)
    sof = data.index(b"\xff\xc2")
    frame = data[sof : sof + 2 + int.from_bytes(data[sof + 2 : sof + 4], "big")]
    wider = bytearray(frame)
    wider[7:9] = (4000).to_bytes(2, "big")  # a second frame after the first scan, claiming more
    _, end = _dc_scan_span(data)
    twice = data[:end] + bytes(wider) + data[end:]
    with pytest.raises(jpeg_dc.JpegDataError, match="two frame"):
        jpeg_dc.decode_eighth(twice)
    no_width = bytearray(data)
    no_width[sof + 7 : sof + 9] = b"\x00\x00"
    with pytest.raises(jpeg_dc.JpegDataError, match="width 0"):
        jpeg_dc.decode_eighth(bytes(no_width))


@pytest.mark.parametrize("restart", [{}, {"restart_marker_blocks": 4}])
def test_junk_before_the_next_marker_is_skipped_as_libjpeg_skips_it_and_never_copied(restart):
    data = encode(photo(1600, 1200), "JPEG", quality=90, progressive=True, **restart)
    start, end = _dc_scan_span(data)
    junk = bytes(range(1, 255)) * (40 * 2**20 // 254)  # no 0xFF: no marker in it
    markers = _restart_markers(data, start, end)
    at = markers[len(markers) // 2] if markers else end  # inside the scan, or after its last interval
    damaged = data[:at] + junk + data[at:]
    clean = jpeg_dc.decode_eighth(data)
    assert clean is not None and np.array_equal(luma(clean), luma(libjpeg_eighth(data)))
    peaks = []
    for file in (data, damaged):
        tracemalloc.start()
        ours = jpeg_dc.decode_eighth(file)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert ours is not None and np.array_equal(luma(ours), luma(clean))  # the junk changed nothing
    assert luma(libjpeg_eighth(damaged)).tolist() == luma(clean).tolist()
    assert peaks[1] - peaks[0] < len(junk) / 8, peaks  # a piece's masks at most, not a copy of the junk


def _scan_spans(data: bytes) -> list[tuple[int, int, int, int]]:
    """Return (spectral start, successive approximation high, data start, next marker) of every scan."""
    spans, at = [], 2
    for segment in jpeg_segments(data):
        if segment[1] == 0xDA:
            count = segment[4]
            ss, _, approx = segment[5 + 2 * count : 8 + 2 * count]
            start = at + 2 + int.from_bytes(segment[2:4], "big")
            spans.append((ss, approx >> 4, start, at + len(segment)))
        at += len(segment)
    return spans


def test_a_fill_byte_ending_a_short_scan_is_not_read_as_its_data():
    # A DC refinement scan one byte short, then fill before its marker (FF FF <marker>): libjpeg skips
    # every fill byte, so the scan is as short as without it. Read as data, the fill would be the
    # 8 missing blocks' bits (all ones) and the file would decode to pixels libjpeg never gives.
    data = encode(photo(240, 160).convert("L"), "JPEG", quality=90, progressive=True)  # 600 blocks: 75 bytes
    end = next(end for ss, ah, _, end in _scan_spans(data) if ss == 0 and ah)
    assert data[end - 2] != 0xFF  # the byte cut is a plain data byte, not a stuffed zero
    cut = data[: end - 1] + data[end:]
    filled = data[: end - 1] + b"\xff" + data[end:]
    for damaged in (cut, filled):
        with pytest.raises(jpeg_dc.JpegDataError, match="truncated: a DC refinement scan's data ends early"):
            jpeg_dc.decode_eighth(damaged)


@pytest.mark.parametrize("scan", ["first", "refinement"])
def test_a_file_cut_inside_a_dc_scan_with_restart_markers_is_truncated_at_once(scan):
    # The intervals after the cut have no markers: read as lost markers, the file would go to
    # libjpeg's route (decode_eighth returns None), which holds every coefficient before failing too.
    data = encode(photo(200, 150), "JPEG", quality=90, progressive=True, restart_marker_blocks=4)
    dc_scans = [(start, end) for ss, _, start, end in _scan_spans(data) if ss == 0]
    start, end = dc_scans[0 if scan == "first" else -1]
    assert len(dc_scans) > 1 and len(_restart_markers(data, start, end)) > 4
    with pytest.raises(jpeg_dc.JpegDataError, match="truncated: the file ends inside a scan"):
        jpeg_dc.decode_eighth(data[: (start + end) // 2])


@pytest.mark.parametrize("where", ["before a segment", "after a TEM marker", "after a restart marker"])
def test_junk_between_segments_is_skipped_as_libjpeg_skips_it(where):
    data = encode(photo(200, 150), "JPEG", quality=90, progressive=True)
    junk = b"\x12\xff\x00\x34"  # stray bytes, FF 00 among them: no marker
    dqt = data.index(b"\xff\xdb")
    _, end = _dc_scan_span(data)
    if where == "before a segment":  # as broken EXIF writers leave after APP1
        damaged = data[:dqt] + junk + data[dqt:]
    elif where == "after a TEM marker":  # a standalone marker after the first scan
        damaged = data[:end] + b"\xff\x01" + junk + data[end:]
    else:  # a standalone restart marker between header segments
        damaged = data[:dqt] + b"\xff\xd3" + junk + data[dqt:]
    ours, clean = jpeg_dc.decode_eighth(damaged), jpeg_dc.decode_eighth(data)
    assert ours is not None and clean is not None
    assert np.array_equal(luma(ours), luma(libjpeg_eighth(damaged)))
    assert np.array_equal(luma(ours), luma(clean))
    with pytest.raises(jpeg_dc.JpegDataError, match="truncated: no end-of-image marker"):
        jpeg_dc.decode_eighth(data[:dqt] + junk)  # junk and no marker after it


@pytest.mark.parametrize("piece", [4, jpeg_dc.PIECE_BYTES])
@pytest.mark.parametrize("after", [b"", b"\x12\x34"], ids=["alone", "junk after it"])
def test_a_restart_marker_after_the_last_interval_is_ignored_whatever_its_number(monkeypatch, piece, after):
    # libjpeg reads a marker's number only where an interval ends and another begins: one after the
    # last interval, in sequence or not (with junk after it or not), ends the scan like any marker.
    monkeypatch.setattr(jpeg_dc, "PIECE_BYTES", piece)  # 4: the marker in a piece after the data's
    data = encode(photo(200, 150).convert("L"), "JPEG", quality=90, progressive=True, restart_marker_blocks=8)
    start, end = _dc_scan_span(data)
    last = _restart_markers(data, start, end)[-1]
    out_of_sequence = 0xD0 + (data[last + 1] - 0xD0 + 4) % 8  # the next in sequence would be + 1
    damaged = data[:end] + bytes([0xFF, out_of_sequence]) + after + data[end:]
    ours = jpeg_dc.decode_eighth(damaged)
    assert ours is not None and np.array_equal(luma(ours), luma(libjpeg_eighth(damaged)))
    assert np.array_equal(luma(ours), luma(libjpeg_eighth(data)))


@pytest.mark.parametrize("damage", ["missing", "out of order"])
def test_a_lost_restart_marker_goes_to_libjpeg_which_resynchronises(every_progressive_file, damage):
    data = encode(photo(2400, 1600), "JPEG", quality=90, progressive=True, restart_marker_blocks=6)
    start, end = _dc_scan_span(data)
    marker = _restart_markers(data, start, end)[5]
    if damage == "missing":
        damaged = data[:marker] + data[marker + 2 :]
    else:
        damaged = data[: marker + 1] + bytes([0xD0 + (data[marker + 1] - 0xD0 + 3) % 8]) + data[marker + 2 :]
    assert jpeg_dc.decode_eighth(damaged) is None  # our route declines; libjpeg's reads the file
    result = process_image(damaged, EIGHTH)
    assert [v.name for v in result.variants] == ["a", "b"]
    theirs = libjpeg_eighth(damaged)
    clean = jpeg_dc.decode_eighth(data)
    assert clean is not None and psnr(luma_image(theirs), luma_image(clean)) > 30  # one interval lost


def luma_image(im: Image.Image) -> Image.Image:
    return Image.fromarray(luma(im))


def _with_dc_quant(data: bytes, value: int) -> bytes:
    """Return the JPEG with the DC entry of its first quantisation table set to ``value`` (8-bit)."""
    out = bytearray(data)
    dqt = data.index(b"\xff\xdb")
    assert data[dqt + 4] >> 4 == 0  # 8-bit entries
    out[dqt + 5] = value
    return bytes(out)


def test_values_past_255_wrap_as_libjpegs_range_limit_does():
    # A DC quantiser far too large for the coefficients: dequantised values leave 0..255 (what a
    # broken or hostile encoder writes). libjpeg does not clamp them: its range-limit table maps
    # them to 255 a little above, 0 far above, and back round; ours must give the same pixels.
    source = photo(803, 597).convert("L")
    data = _with_dc_quant(encode(source, "JPEG", quality=90, progressive=True), 60)
    ours, theirs = jpeg_dc.decode_eighth(data), libjpeg_eighth(data)
    assert ours is not None and np.array_equal(np.asarray(ours), np.asarray(theirs))
    frame = jpeg_dc._decode_dc(memoryview(data))
    assert frame is not None and frame.components[0].dc is not None
    descaled = (frame.components[0].dc.astype(np.int32) * 60 + 4) >> 3
    assert (descaled >= 512).any() or (descaled < -128).any()  # clamping would differ: wrapped values


def _only_category_0(data: bytes) -> bytes:
    """Return the JPEG with every DC Huffman table replaced by one that codes only category 0 ("0")."""
    out = [b"\xff\xd8"]
    for segment in jpeg_segments(data):
        if segment[1] != 0xC4:
            out.append(segment)
            continue
        body, tables, i = segment[4:], b"", 0
        while i < len(body):
            counts = body[i + 1 : i + 17]
            size = 17 + sum(counts)
            tables += body[i : i + size] if body[i] >> 4 else bytes([body[i], 1]) + bytes(15) + b"\x00"
            i += size
        out.append(struct.pack(">HH", 0xFFC4, 2 + len(tables)) + tables)
    return b"".join(out) + b"\xff\xd9"


def test_a_code_no_table_has_fails_at_once_not_after_chaining_the_whole_scan(monkeypatch):
    # Small chunks: the clean decode holds one chunk's positions at a time; a decoder that kept
    # chaining blocks at a code taking no bits would hold every block's before failing.
    monkeypatch.setattr(jpeg_dc, "CHUNK_BITS", 1 << 14)
    data = encode(photo(2400, 1600), "JPEG", quality=90, progressive=True)
    broken = _only_category_0(data)  # the first difference other than 0 has no code
    tracemalloc.start()
    assert jpeg_dc.decode_eighth(data) is not None
    clean_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.reset_peak()
    with pytest.raises(jpeg_dc.JpegDataError, match="Huffman"):
        jpeg_dc.decode_eighth(broken)
    failing_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert failing_peak < clean_peak, (failing_peak, clean_peak)


@pytest.mark.parametrize("restart", [{}, {"restart_marker_blocks": 1}, {"restart_marker_blocks": 7}])
def test_the_scan_read_in_small_pieces_decodes_the_same(monkeypatch, restart):
    # Pieces of a few bytes end on every kind of byte: a stuffed 0xFF and its zero, a marker and its
    # number, fill, in turn.
    data = encode(photo(640, 480), "JPEG", quality=97, progressive=True, **restart)
    whole = jpeg_dc.decode_eighth(data)
    assert whole is not None
    for piece in (2, 3, 5, 64):
        monkeypatch.setattr(jpeg_dc, "PIECE_BYTES", piece)
        pieces = jpeg_dc.decode_eighth(data)
        assert pieces is not None and np.array_equal(np.asarray(pieces), np.asarray(whole)), piece


@pytest.mark.parametrize(
    "junk", [b"\x12\x34", b"\xff\x00" * 40_000 + b"\x07", b"\xff\xd2\x12", b"\xff\xff\xff"]
)
def test_the_header_walk_passes_junk_as_the_decoder_does(junk):
    # The estimate reads the frame type from the header alone: junk before the frame (a stray byte
    # pair, a long run of FF 00, a standalone marker, fill) must not hide it, or the estimate would
    # budget libjpeg's route for a file the DC route decodes.
    data = encode(photo(240, 160), "JPEG", quality=90, progressive=True, restart_marker_blocks=3)
    sof = data.index(b"\xff\xc2")
    damaged = data[:sof] + junk + data[sof:]
    assert jpeg_dc.huffman_progressive(io.BytesIO(damaged))
    ours = jpeg_dc.decode_eighth(damaged)
    assert ours is not None and np.array_equal(luma(ours), luma(libjpeg_eighth(data)))
