"""Lossless WebP a row at a time: libwebp's pixels exactly, its variants, its verdict on damage."""

from __future__ import annotations

import io
import subprocess
from collections.abc import Callable, Iterator

import numpy as np
import pytest
from PIL import Image, WebPImagePlugin

from lambda_resizer.core import Recipe, process_image
from lambda_resizer.estimate import estimate_memory, read_header
from lambda_resizer.formats import native_build, webp_lossless
from tests.lambda_resizer.formats.c_objects import damaged_outcomes_sanitized, run_sanitized, without_c_object
from tests.lambda_resizer.formats.test_tiff import psnr
from tests.lambda_resizer.images import encode, photo, reject, rgb_profile

RECIPE = Recipe(sizes=(("a", 600), ("b", 150)))  # a 2400 px file is reduced by 3 for 600 px


def libwebps(data: bytes) -> np.ndarray:
    """Return libwebp's decode of a WebP (Pillow's own plugin), as an array."""
    im = WebPImagePlugin.WebPImageFile(io.BytesIO(data))
    im.load()
    return np.asarray(im)


def ours(data: bytes) -> np.ndarray:
    im = webp_lossless.open_still(data)
    assert im is not None
    im.load()
    return np.asarray(im)


def translucent(image: Image.Image) -> Image.Image:
    rgba = image.convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize(image.size))
    return rgba


def test_the_c_decoder_is_built_and_loads():
    # Without it every lossless still decodes through libwebp's whole ARGB plane: the suite would
    # pass on libwebp's route and the function would need its memory.
    assert webp_lossless.LIBRARY.exists(), f"run `make setup`: it builds {webp_lossless.LIBRARY}"
    assert webp_lossless.available()


def _images() -> dict[str, Image.Image]:
    base = photo(301, 203, seed=3)
    noise = np.random.default_rng(1).integers(0, 256, (97, 131, 3), dtype=np.uint8)
    return {
        "photo": base,
        "2 colours": base.quantize(2).convert("RGB"),  # colour indexing, 8 pixels a byte
        "4 colours": base.quantize(4).convert("RGB"),
        "12 colours": base.quantize(12).convert("RGB"),
        "200 colours": base.quantize(200).convert("RGB"),
        "translucent": translucent(base),
        "noise": Image.fromarray(noise),  # mostly literals, no useful transform
        "flat": Image.new("RGB", (64, 40), (10, 20, 30)),  # one colour: codes of no bits
        "1 px": base.resize((1, 1)),
        "3 x 2": base.resize((3, 2)),
        "wide": photo(2100, 30, seed=4),
        "tall": photo(30, 1200, seed=5),
    }


SETTINGS = [
    {"quality": 0, "method": 0},
    {"quality": 50, "method": 3},
    {"quality": 100, "method": 6},
    {"quality": 90, "method": 4, "exact": True},
]


@pytest.mark.parametrize("name", list(_images()))
@pytest.mark.parametrize("settings", SETTINGS, ids=lambda s: f"q{s['quality']}m{s['method']}")
def test_pixels_are_libwebps_exactly(name, settings):
    data = encode(_images()[name], "WEBP", lossless=True, **settings)
    assert np.array_equal(ours(data), libwebps(data))


def test_backward_references_across_the_ring_and_at_the_longest_distance():
    # The coded pixels live in a ring of 2^20: a file over it, copying from ~1.047M pixels back
    # (the longest distance the format has, 1,048,456) and from 600 rows back.
    tile = np.asarray(photo(1024, 1023, seed=6))
    far = encode(
        Image.fromarray(np.concatenate([tile, tile], axis=0)), "WEBP", lossless=True, quality=100, method=6
    )
    rows = np.asarray(photo(1000, 600, seed=7))
    repeated = encode(Image.fromarray(np.concatenate([rows] * 4, axis=0)), "WEBP", lossless=True, quality=100)
    palette = encode(photo(2400, 1700).quantize(16).convert("RGB"), "WEBP", lossless=True)
    for data in (far, repeated, palette):
        assert np.array_equal(ours(data), libwebps(data))


def _variants(data: bytes, recipe: Recipe) -> list[Image.Image]:
    return [
        Image.open(io.BytesIO(v.encoded["jpeg"])).convert("RGB") for v in process_image(data, recipe).variants
    ]


@pytest.mark.parametrize("kind", ["photo", "translucent", "rotated with a profile"])
def test_variants_match_libwebps_route(monkeypatch, kind):
    source = photo(2400, 1600, seed=9)
    options: dict[str, object] = {}
    if kind == "translucent":
        source = translucent(source)
    elif kind == "rotated with a profile":
        exif = Image.Exif()
        exif[0x0112] = 6
        options = {
            "exif": exif.tobytes(),
            "icc_profile": rgb_profile((0.515, 0.241, -0.001), (0.292, 0.692, 0.042), (0.157, 0.067, 0.784)),
        }
    data = encode(source, "WEBP", lossless=True, quality=25, method=2, **options)
    estimate = estimate_memory(read_header(io.BytesIO(data)), RECIPE, source_bytes=len(data))
    assert estimate.path == "webp_lossless_bands"
    im = webp_lossless.open_still(data)
    assert im is not None and (im.mode, im.info.get("icc_profile")) == (
        source.mode,
        options.get("icc_profile"),
    )
    result = process_image(data, RECIPE)
    ours_ = _variants(data, RECIPE)
    with monkeypatch.context() as patch:
        patch.setattr(webp_lossless, "available", lambda: False)  # Pillow's open, libwebp's scaled decode
        theirs_result = process_image(data, RECIPE)
        theirs = _variants(data, RECIPE)
    facts = ("width", "height", "format", "mode", "exif_orientation")
    assert [getattr(result.info, f) for f in facts] == [getattr(theirs_result.info, f) for f in facts]
    for a, b in zip(ours_, theirs, strict=True):
        assert a.size == b.size
        assert psnr(_jpeg(a), _jpeg(b)) >= 40


def _jpeg(image: Image.Image) -> bytes:
    return encode(image, "JPEG", quality=95)


def test_animations_and_lossy_files_keep_pillows_and_libwebps_route():
    frames = [photo(64, 48, seed=s) for s in range(2)]
    animated = encode(frames[0], "WEBP", lossless=True, save_all=True, append_images=frames[1:])
    for data in (animated, encode(frames[0], "WEBP", quality=80), encode(translucent(frames[0]), "WEBP")):
        assert webp_lossless.vp8l_chunk(data) is None and webp_lossless.open_still(data) is None
    assert webp_lossless.vp8l_chunk(encode(frames[0], "WEBP", lossless=True)) is not None


def test_a_cut_file_is_truncated_and_garbage_is_corrupt():
    data = encode(photo(2400, 1600, seed=2), "WEBP", lossless=True, quality=25, method=2)
    err = reject(data[: len(data) * 2 // 3], RECIPE)
    assert err.code == "truncated" and "ends early" in err.message, err.message
    garbled = bytearray(data)
    garbled[40:-8] = np.random.default_rng(0).bytes(len(data) - 48)
    err = reject(bytes(garbled), RECIPE)
    assert err.code == "corrupt" and "WebP image data" in err.message, err.message


def _mutations(data: bytes, seed: int, count: int) -> Iterator[bytes]:
    """Yield ``data`` with a few random bytes of its bitstream replaced, some also cut short."""
    rng = np.random.default_rng(seed)
    start = webp_lossless.vp8l_chunk(data)
    assert start is not None
    for _ in range(count):
        damaged = bytearray(data)
        for at in rng.integers(start[0], len(data), rng.integers(1, 6)):
            damaged[at] = (
                int(rng.integers(256)) if rng.random() < 0.7 else damaged[at] ^ (1 << int(rng.integers(8)))
            )
        if rng.random() < 0.15:
            damaged = damaged[: int(rng.integers(start[0], len(damaged)))]
        yield bytes(damaged)


FILES: dict[str, Callable[[], bytes]] = {
    "photo": lambda: encode(photo(120, 80, seed=1), "WEBP", lossless=True, quality=60, method=4),
    "palette": lambda: encode(photo(120, 80).quantize(6).convert("RGB"), "WEBP", lossless=True),
    "translucent": lambda: encode(translucent(photo(90, 70)), "WEBP", lossless=True, quality=100, method=6),
}


def damaged_outcomes(name: str, count: int) -> dict[str, int]:
    """Decode ``count`` damaged copies of ``FILES[name]`` by both decoders; return how each ended.

    Where libwebp decodes a damaged file, ours must give its pixels; where it fails, ours must
    raise OSError (libwebp's verdict, as the transcription promises). Anything else raises.
    """
    outcomes = {"same pixels": 0, "both failed": 0}
    for damaged in _mutations(FILES[name](), seed=len(name), count=count):
        try:
            expected = libwebps(damaged)
        except (OSError, SyntaxError, ValueError):
            expected = None
        if expected is None:
            with pytest.raises((OSError, SyntaxError)):
                im = webp_lossless.open_still(damaged)
                if im is None:
                    raise SyntaxError("not opened")
                im.load()
            outcomes["both failed"] += 1
        else:
            assert np.array_equal(ours(damaged), expected)
            outcomes["same pixels"] += 1
    return outcomes


@pytest.mark.parametrize("name", list(FILES))
def test_damaged_files_get_libwebps_verdict(name):
    outcomes = damaged_outcomes(name, 150)
    assert outcomes["same pixels"] and outcomes["both failed"], outcomes


@pytest.mark.slow
def test_the_c_decoder_stays_inside_its_buffers_on_damaged_files(tmp_path):
    outcomes = damaged_outcomes_sanitized(webp_lossless, __name__, 800, tmp_path)
    assert all(o["same pixels"] > 20 and o["both failed"] > 100 for o in outcomes.values()), outcomes


@pytest.fixture
def no_c_object(monkeypatch, tmp_path):
    """The C object missing (a machine without a compiler, a package built elsewhere)."""
    yield from without_c_object(webp_lossless, monkeypatch, tmp_path)


def test_without_the_c_object_libwebp_decodes_and_the_estimate_says_so(no_c_object, caplog):
    data = encode(photo(2400, 1600), "WEBP", lossless=True, quality=25, method=2)
    assert not webp_lossless.available() and "is not built" in caplog.text
    assert webp_lossless.open_still(data) is None
    estimate = estimate_memory(read_header(io.BytesIO(data)), RECIPE, source_bytes=len(data))
    assert estimate.path == "webp_lossless"
    variants = process_image(data, RECIPE).variants
    assert [(v.name, v.width, v.height) for v in variants] == [("a", 600, 400), ("b", 150, 100)]


def test_a_file_asking_for_too_many_huffman_tables_is_refused_not_decoded(tmp_path, monkeypatch):
    # The format allows 65,536 groups of codes (1.3 GB of tables); the decoder refuses more than
    # 192 MB. Built here with the limit lowered, a file of libwebp's with several groups meets it.
    library = tmp_path / "_webp_lossless_rows.so"
    cc = native_build.compiler()
    assert cc
    source = str(native_build.SOURCES["_webp_lossless_rows.so"])
    subprocess.run(
        [cc, "-O1", "-DMAX_TABLE_BYTES=40000", "-shared", "-fPIC", "-o", str(library), source], check=True
    )
    data = encode(photo(1200, 800, seed=4), "WEBP", lossless=True, quality=75, method=4)
    small = Recipe(sizes=(("a", 300),))  # reduced by 2: the banded route
    webp_lossless._library.cache_clear()
    try:
        with monkeypatch.context() as patch:
            patch.setattr(webp_lossless, "LIBRARY", library)
            err = reject(data, small)
    finally:
        webp_lossless._library.cache_clear()
    assert err.code == "corrupt" and "Huffman tables" in err.message, err.message
    assert len(process_image(data, small).variants) == 1  # the real limit: decoded


def _bits(fields: list[tuple[int, int]]) -> bytes:
    """Pack (value, bit count) fields LSB first, as a VP8L bitstream is read."""
    value = sum(v << shift for shift, (v, _) in zip(_offsets(fields), fields, strict=True))
    return value.to_bytes((sum(n for _, n in fields) + 7) // 8, "little")


def _offsets(fields: list[tuple[int, int]]) -> Iterator[int]:
    shift = 0
    for _, n in fields:
        yield shift
        shift += n


def _normal_code(counts: list[int], alphabet: int) -> list[tuple[int, int]]:
    """A normal prefix code: ``counts[n]`` symbols of length n + 1, in symbol order, the rest unused.

    Its code lengths are sent with a code-length code giving each of the lengths 0-15 four bits.
    """
    lengths = [n + 1 for n, count in enumerate(counts) for _ in range(count)]
    lengths += [0] * (alphabet - len(lengths))
    order = [17, 18, 0, 1, 2, 3, 4, 5, 16, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]
    fields = [(0, 1), (15, 4), *[(4 if s < 16 else 0, 3) for s in order], (0, 1)]
    for length in lengths:  # the 4-bit code of length L is L itself, its first bit read first
        fields += [((length >> (3 - i)) & 1, 1) for i in range(4)]
    return fields


def incomplete_distance_code_file(complete: bool = False) -> bytes:
    """A 1x1 lossless WebP whose codes need the most table a group of five can (libwebp's
    kTableSize) and, unless ``complete``, an incomplete distance code needing 538 entries of the
    410 left for it: invalid, and found so only once its table is built."""
    distance = (
        [1, 1, 1, 1, 1, 0, 0, 0, 10, 3, 17, 1, 1, 1, 2]
        if complete
        else [0, 0, 1, 0, 0, 0, 0, 0, 7, 21, 0, 3, 1, 0, 7]
    )
    literal = [1, 1, 0, 0, 0, 0, 0, 0, 71, 49, 129, 1, 1, 1, 2]  # 630 entries, the most for 256 symbols
    header = [(0x2F, 8), (0, 14), (0, 14), (0, 1), (0, 3)]  # signature, 1x1, no alpha, version 0
    fields = [*header, (0, 1), (0, 1), (0, 1)]  # no transform, no colour cache, no meta codes
    fields += _normal_code([1, 0, 1, 0, 0, 0, 1, 0, 153, 53, 17, 17, 33, 1, 2], 280)  # green: 652 entries
    fields += 3 * _normal_code(literal, 256) + _normal_code(distance, 40) + [(0, 64)]
    vp8l = _bits(fields)
    chunk = b"VP8L" + len(vp8l).to_bytes(4, "little") + vp8l + b"\0" * (len(vp8l) & 1)
    return b"RIFF" + (4 + len(chunk)).to_bytes(4, "little") + b"WEBP" + chunk


_SANITIZED_INCOMPLETE = """
import json, sys
from pathlib import Path
from lambda_resizer.formats import webp_lossless
webp_lossless.LIBRARY = Path(sys.argv[1])
from tests.lambda_resizer.formats.test_webp_lossless import incomplete_distance_code_file, ours
print(json.dumps(ours(incomplete_distance_code_file(complete=True)).tolist()))
try:
    ours(incomplete_distance_code_file())
except OSError as error:
    print(json.dumps(str(error)))
"""


def test_an_incomplete_code_is_refused_before_its_table_is_written(tmp_path):
    # A code is checked before its table is built (libwebp's VP8LBuildHuffmanTable): an incomplete
    # one can need more entries than a complete one of its alphabet, and the last group's were
    # written past the end of its tables before the check at the end of the build refused it.
    valid = incomplete_distance_code_file(complete=True)
    assert np.array_equal(ours(valid), libwebps(valid))  # the most table a group can need: decoded
    with pytest.raises(OSError):
        libwebps(incomplete_distance_code_file())
    message = run_sanitized("_webp_lossless_rows.so", _SANITIZED_INCOMPLETE, tmp_path)
    assert "lossless bitstream is invalid" in message, message


def _rechunked(data: bytes, edit: Callable[[list[list[bytes]]], None]) -> bytes:
    """Return ``data`` with its RIFF chunks ([fourcc, payload] lists) changed by ``edit``."""
    chunks, position = [], 12
    while position + 8 <= len(data):
        length = int.from_bytes(data[position + 4 : position + 8], "little")
        chunks.append([data[position : position + 4], data[position + 8 : position + 8 + length]])
        position += 8 + length + (length & 1)
    edit(chunks)
    body = b"".join(k + len(v).to_bytes(4, "little") + v + b"\0" * (len(v) & 1) for k, v in chunks)
    return b"RIFF" + (4 + len(body)).to_bytes(4, "little") + b"WEBP" + body


def _flags(chunks: list[list[bytes]], set_: int = 0, clear: int = 0) -> None:
    vp8x = chunks[0][1]
    chunks[0][1] = bytes([(vp8x[0] | set_) & ~clear]) + vp8x[1:]


_PRIMARIES = ((0.515, 0.241, -0.001), (0.292, 0.692, 0.042), (0.157, 0.067, 0.784))
_EXIF = Image.Exif()
_EXIF[0x0112] = 6
EDITS: dict[str, tuple[str, Callable[[list[list[bytes]]], None]]] = {
    # WebPGetFeatures reads VP8X's alpha flag, then VP8LGetInfo overwrites it with the bitstream's bit.
    "alpha flag without the bitstream's": ("RGB", lambda c: _flags(c, set_=0x10)),
    "bitstream alpha without the flag": ("RGBA", lambda c: _flags(c, clear=0x10)),
    # libwebp's demuxer keeps a metadata chunk only when VP8X flags it; Pillow gives the first.
    "EXIF without its flag": ("RGB", lambda c: _flags(c, clear=0x08)),
    "two EXIF chunks": ("RGB", lambda c: c.append([b"EXIF", Image.Exif().tobytes()])),
    "ICC profile without its flag": ("RGB", lambda c: c.insert(1, [b"ICCP", rgb_profile(*_PRIMARIES)])),
}


@pytest.mark.parametrize("edit", list(EDITS))
def test_mode_and_metadata_are_pillows_for_edited_chunks(edit):
    mode, change = EDITS[edit]
    source = photo(40, 30, seed=8)
    image = translucent(source) if mode == "RGBA" else source
    data = _rechunked(encode(image, "WEBP", lossless=True, exif=_EXIF.tobytes()), change)
    theirs = WebPImagePlugin.WebPImageFile(io.BytesIO(data))
    theirs.load()
    im = webp_lossless.open_still(data)
    assert im is not None
    im.load()
    assert (im.mode, im.size) == (theirs.mode, theirs.size)
    facts = ("icc_profile", "exif", "xmp")
    assert {k: im.info.get(k) for k in facts} == {k: theirs.info.get(k) for k in facts}
    assert np.array_equal(np.asarray(im), np.asarray(theirs))
