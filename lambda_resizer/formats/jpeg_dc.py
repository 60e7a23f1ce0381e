"""Progressive JPEG at 1/8 scale from its DC coefficients alone: the coefficient array never exists.

libjpeg decodes a progressive JPEG by accumulating every scan into the whole image's DCT
coefficients (2 bytes each, 1.5 a pixel in 4:2:0: 260 MB at 90 MP), whatever the output scale.
At 1/8 scale each 8x8 block becomes one pixel, its DC coefficient dequantised, / 8, + 128 (libjpeg's
1x1 IDCT and its range-limit table), so only the DC scans matter. They are entropy-decoded here:
Huffman-coded differences (first scans, any point transform), one raw bit per block (refinement
scans), restart intervals; the AC scans are skipped. What is held is a few bytes per block and per
restart interval, one chunk of the scan's bits and one piece of its bytes.

Luma equals libjpeg's exactly. Subsampled chroma is upsampled from its own DC image with Lanczos
(libjpeg instead scales it up with a 2x2 IDCT of its first AC coefficients, which this decoder does
not read): variants differ from libjpeg's in chroma detail below the 1/16 scale, well above 40 dB
(``tests/lambda_resizer/formats/test_jpeg_dc.py``).

Damage: junk before a marker, in a scan or between segments, is skipped as libjpeg skips it (never
copied); a restart marker lost or out of order sends the file to libjpeg's route (``decode_eighth``
returns None), which resynchronises as every viewer does; a bad Huffman code, a scan cut short (by
the file's end too), two frame headers or an empty frame raise :class:`JpegDataError`.

The Huffman decoding is a Python loop over blocks (about 100 ns each) on tables of the total bits
each code consumes at every bit position, which numpy makes a chunk at a time.
"""

from __future__ import annotations

import re
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

import numpy as np
from PIL import Image

_SOF_PROGRESSIVE_HUFFMAN = 0xC2
#: Frames this decoder declines (None: the caller uses libjpeg): baseline/extended Huffman (not
#: progressive, libjpeg decodes those a band at a time already), lossless, hierarchical, arithmetic.
_OTHER_SOF = {0xC0, 0xC1, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_MAX_DC_CATEGORY = 11  # 8-bit samples: DC differences need at most 11 magnitude bits
#: A scan's entropy-coded data ends at a marker: 0xFF followed by anything but a stuffed zero,
#: a restart marker (inside the scan) or fill.
_SCAN_END = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
#: The next marker after junk between segments: 0xFF followed by anything but a stuffed zero or
#: fill, as libjpeg's ``next_marker`` finds it (FF 00 pairs are junk there too).
_NEXT_MARKER = re.compile(rb"\xff[^\x00\xff]")
#: Bits of scan data turned into lookup tables at once: 1 Mbit is 2 MB of windows, 1 MB a table.
CHUNK_BITS = 1 << 20
#: Bytes of a scan's entropy-coded data destuffed at once: its masks and offsets are ~3 MB.
PIECE_BYTES = 1 << 17
#: libjpeg's post-IDCT range limit (``prepare_range_limit_table``), indexed by the descaled value & 1023:
#: a sample out of range wraps as libjpeg's does (255 just above, 0 far above or below), not clamped.
_RANGE_LIMIT = np.concatenate(
    [np.arange(128, 256), np.full(384, 255), np.zeros(384), np.arange(0, 128)]
).astype(np.uint8)


class JpegDataError(OSError):
    """The file's DC data cannot be decoded: its message says where and why."""


class _LeftToLibjpeg(Exception):
    """Damage libjpeg recovers from as every viewer does (restart markers lost or out of order)."""


@dataclass
class _Component:
    ident: int
    h: int
    v: int
    quant_id: int
    quant_dc: int = 0  # the quantisation table's DC entry, latched at the component's first scan
    dc: np.ndarray | None = None  # int16, one per block of the MCU-padded grid
    al: int = -1  # the point transform its DC values are known to (-1: no scan yet)
    quant_table: tuple[int, ...] = ()  # the whole table (zigzag order), latched at its first scan
    # the point transform each coefficient is known to, as libjpeg's coef_bits (-1: no scan yet)
    coef_bits: list[int] = field(default_factory=lambda: [-1] * 64)


@dataclass
class DcScan:
    """One DC scan, checked by the walk and recorded for :mod:`jpeg_scaled`, which decodes it."""

    components: list[int]  # indices in the frame
    tables: list[tuple[bytes, bytes]]  # each member's DC Huffman table: its code counts, its symbols
    interleaved: bool
    ah: int
    al: int
    restart: int  # MCUs an interval (0: none)
    entropy: memoryview


@dataclass
class AcScan:
    """One AC scan, as the walk found it (recorded for :mod:`jpeg_scaled`, which decodes them)."""

    component: int  # index in the frame
    ss: int
    se: int
    ah: int
    al: int
    table: tuple[bytes, bytes]  # the AC Huffman table then: its 16 code counts and its symbols
    restart: int  # blocks an interval (0: none)
    entropy: memoryview  # the scan's entropy-coded data, restart markers included


@dataclass
class _Frame:
    width: int
    height: int
    components: list[_Component]
    quant: dict[int, int] = field(default_factory=dict)  # table id -> DC entry
    dc_tables: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    restart: int = 0
    quant_tables: dict[int, tuple[int, ...]] = field(default_factory=dict)  # table id -> 64 entries
    # (class: 0 DC, 1 AC, table id) -> its code counts and symbols, as the file gives them
    raw_tables: dict[tuple[int, int], tuple[bytes, bytes]] = field(default_factory=dict)
    # recorded, not decoded, when asked (``_decode_dc(record=True)``): the DC grids are made empty
    dc_scans: list[DcScan] | None = None
    ac_scans: list[AcScan] | None = None

    @property
    def h_max(self) -> int:
        return max(c.h for c in self.components)

    @property
    def v_max(self) -> int:
        return max(c.v for c in self.components)

    @property
    def mcus(self) -> tuple[int, int]:
        """(MCUs per row, MCU rows) of an interleaved scan."""
        return -(-self.width // (8 * self.h_max)), -(-self.height // (8 * self.v_max))

    def blocks(self, c: _Component) -> tuple[int, int]:
        """(blocks per row, block rows) a component has in a scan of it alone (not MCU-padded)."""
        width = -(-self.width * c.h // self.h_max)
        height = -(-self.height * c.v // self.v_max)
        return -(-width // 8), -(-height // 8)


#: libjpeg's coefficient array above which a progressive file decoded at 1/8 takes this route. Below
#: it libjpeg is faster (its Huffman decoding is C; this one's chain is a Python loop) and exact in
#: chroma too, and the array is small beside the interpreter: about 11 MP of 4:2:0.
COEFFICIENT_BYTES = 32 * 2**20


def coefficient_bytes(pixels: int, samples: float) -> float:
    """Return the bytes libjpeg holds for a progressive file's coefficients (2 a coefficient)."""
    return 2 * pixels * samples


def applies(im: Image.Image) -> bool:
    """Return whether ``im`` is a progressive JPEG this decoder makes at 1/8 scale.

    Grey and YCbCr files only, large enough to matter (``COEFFICIENT_BYTES``): libjpeg converts
    CMYK, YCCK and RGB-stored files in ways of its own (they keep libjpeg's route).
    """
    if im.format not in ("JPEG", "MPO") or not im.info.get("progressive"):
        return False
    if coefficient_bytes(im.width * im.height, sampled(im)) <= COEFFICIENT_BYTES:
        return False
    if im.mode == "L":
        return True
    layers = [layer[0] for layer in getattr(im, "layer", [])]
    stored_rgb = im.info.get("adobe_transform") == 0 or layers == ["R", "G", "B"]
    return im.mode == "RGB" and len(layers) == 3 and not stored_rgb


def huffman_progressive(fp: BinaryIO) -> bool:
    """Return whether a JPEG's frame is progressive with Huffman coding (SOF2), reading only its markers.

    Pillow marks arithmetic-coded and hierarchical progressive frames progressive too; this
    decoder leaves those to libjpeg, and the estimate must know which route a file takes.

    :param fp: the file, seekable; read from its start, left where the walk stopped.
    """
    for marker, _ in _header_markers(fp):
        if marker == _SOF_PROGRESSIVE_HUFFMAN or marker in _OTHER_SOF:
            return marker == _SOF_PROGRESSIVE_HUFFMAN
    return False  # no frame before the first scan or the end


def _header_markers(fp: BinaryIO) -> Iterator[tuple[int, int]]:
    """Yield (marker, segment length) of each marker segment before the first scan, ``fp`` at its body.

    The caller may read the body; the walk resumes after the segment whatever it read. Junk and
    fill bytes before a marker, and standalone markers, are passed over as the decoder passes them
    (so the estimate sees the segments the decode will use).
    """
    fp.seek(0)
    if fp.read(2) != b"\xff\xd8":
        return
    while True:
        start = fp.tell()
        head = fp.read(2)
        if len(head) == 2 and (head[0] != 0xFF or head[1] in (0x00, 0xFF)):
            if not _seek_next_marker(fp, start):
                return
            head = fp.read(2)
        if len(head) < 2 or head[1] in (0xD9, 0xDA):
            return
        if head[1] == 0x01 or 0xD0 <= head[1] <= 0xD7:  # TEM, RSTn: no length follows
            continue
        raw = fp.read(2)
        if len(raw) < 2:
            return
        length = int.from_bytes(raw, "big")
        body = fp.tell()
        yield head[1], length
        fp.seek(body + length - 2)


def _seek_next_marker(fp: BinaryIO, start: int, chunk: int = 1 << 16) -> bool:
    """Put ``fp`` at the first marker at or after ``start`` (FF then neither 00 nor FF); False if none."""
    fp.seek(start)
    carry = b""
    while block := fp.read(chunk):
        window = carry + block
        match = _NEXT_MARKER.search(window)
        if match is not None:
            fp.seek(fp.tell() - len(window) + match.start())
            return True
        carry = window[-1:]  # an FF ending the block pairs with the next block's first byte
    return False


def sampled(im: Image.Image) -> float:
    """Return the samples per pixel an opened JPEG stores over all its components (1.5 for 4:2:0)."""
    layers = getattr(im, "layer", [])
    if not layers:
        return float(len(im.mode))
    h_max = max(layer[1] for layer in layers)
    v_max = max(layer[2] for layer in layers)
    return sum(layer[1] * layer[2] for layer in layers) / (h_max * v_max)


def decode_eighth(data: bytes | memoryview) -> Image.Image | None:
    """Return a progressive JPEG decoded at 1/8 scale (mode L or YCbCr), or None when not one it decodes.

    :param data: the whole file (an MPO's first image is decoded).
    :raises JpegDataError: the DC data is corrupt or ends early.
    """
    try:
        frame = _decode_dc(memoryview(data))
    except _LeftToLibjpeg:
        return None  # libjpeg resynchronises at the next restart marker: its route decodes the file
    if frame is None:
        return None
    out_w, out_h = -(-frame.width // 8), -(-frame.height // 8)
    planes = []
    for c in frame.components:
        if c.dc is None or c.al != 0:
            what = "no DC scan" if c.dc is None else f"DC known only to bit {c.al}"
            raise JpegDataError(f"image file is truncated: component {c.ident} has {what}")
        width = -(-frame.width * c.h // (frame.h_max * 8))
        height = -(-frame.height * c.v // (frame.v_max * 8))
        # libjpeg's 1x1 IDCT: dequantise, descale by 3 with rounding, range-limit (centred on 128).
        values = c.dc[:height, :width].astype(np.int32)
        c.dc = None
        values *= c.quant_dc
        values += 4
        values >>= 3
        values &= len(_RANGE_LIMIT) - 1
        plane = Image.fromarray(_RANGE_LIMIT[values], "L")
        del values
        if plane.size != (out_w, out_h):
            # Chroma stored at 1/2 or 1/4: upsampled around block centres (as libjpeg's fancy
            # upsampling), then cut to the luma size (the upsampled plane covers whole MCUs).
            factor_x, factor_y = frame.h_max // c.h, frame.v_max // c.v
            plane = plane.resize((width * factor_x, height * factor_y), Image.Resampling.LANCZOS)
            plane = plane.crop((0, 0, out_w, out_h))
        planes.append(plane)
    if len(planes) == 1:
        return planes[0]
    return Image.merge("YCbCr", planes)


def _decode_dc(data: memoryview, *, record: bool = False) -> _Frame | None:
    """Walk the file's markers and decode every DC scan into the frame's components.

    :param record: check every scan, but keep them in ``frame.dc_scans`` and ``frame.ac_scans``
        instead of decoding them (:mod:`jpeg_scaled` decodes both in C).
    :return: the frame, or None when the file is not a progressive Huffman one this decoder reads.
    """
    if bytes(data[:2]) != b"\xff\xd8":
        return None
    frame: _Frame | None = None
    quant: dict[int, int] = {}
    quant_tables: dict[int, tuple[int, ...]] = {}
    tables: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    raw_tables: dict[tuple[int, int], tuple[bytes, bytes]] = {}
    restart = 0
    position = 2
    size = len(data)
    while True:
        while position + 1 < size and data[position] == 0xFF and data[position + 1] == 0xFF:
            position += 1  # fill bytes before a marker
        if position + 2 > size:
            raise JpegDataError("image file is truncated: no end-of-image marker")
        if data[position] != 0xFF or data[position + 1] == 0:
            # Junk between segments (stray bytes, FF 00 pairs): libjpeg's next_marker skips it with
            # a warning and reads on, so the file is not rejected for it here either.
            match = _NEXT_MARKER.search(data, position)
            if match is None:
                raise JpegDataError("image file is truncated: no end-of-image marker")
            position = match.start()
            continue
        marker = data[position + 1]
        if marker == 0xD9:  # EOI
            return frame
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:
            position += 2
            continue
        if position + 4 > size:
            raise JpegDataError("image file is truncated inside a marker")
        length = int.from_bytes(data[position + 2 : position + 4], "big")
        body = data[position + 4 : position + 2 + length]
        if length < 2 or len(body) != length - 2:
            raise JpegDataError(f"image file is truncated: marker 0x{marker:02X} is cut")
        position += 2 + length
        if frame is not None and (marker in _OTHER_SOF or marker == _SOF_PROGRESSIVE_HUFFMAN):
            raise JpegDataError("invalid JPEG file structure: two frame (SOF) markers")
        if marker in _OTHER_SOF:
            return None
        if marker == _SOF_PROGRESSIVE_HUFFMAN:
            frame = _frame(body)
            if frame is None:
                return None
            if record:
                frame.dc_scans, frame.ac_scans = [], []
        elif marker == 0xDB:
            _read_quant(body, quant, quant_tables)
        elif marker == 0xC4:
            _read_huffman(body, tables, raw_tables)
        elif marker == 0xDD:
            if len(body) < 2:
                raise JpegDataError("restart marker segment is short")
            restart = int.from_bytes(body[:2], "big")
        elif marker == 0xDC:
            return None  # a DNL marker (height given after the first scan): libjpeg's route
        elif marker == 0xDA:
            if frame is None:
                raise JpegDataError("scan before the frame header")
            match = _SCAN_END.search(data, position)
            if match is None:
                # No marker after the scan: the file is cut (no EOI can follow). Said at once: cut
                # inside a scan with restart markers, it would read as a lost marker and go to
                # libjpeg's route, which holds every coefficient before failing the same way.
                raise JpegDataError("image file is truncated: the file ends inside a scan")
            end = match.start()
            frame.quant, frame.dc_tables, frame.restart = quant, tables, restart
            frame.quant_tables, frame.raw_tables = quant_tables, raw_tables
            _scan(frame, body, data[position:end])
            position = end


def _frame(body: memoryview) -> _Frame | None:
    if len(body) < 6:
        raise JpegDataError("frame header is short")
    precision, count = body[0], body[5]
    height, width = int.from_bytes(body[1:3], "big"), int.from_bytes(body[3:5], "big")
    if width == 0:
        raise JpegDataError("empty JPEG image: the frame header gives width 0")
    if precision != 8 or height == 0 or count not in (1, 3) or len(body) < 6 + 3 * count:
        return None  # 12-bit, DNL-sized, CMYK: libjpeg's route (which rejects what it cannot read)
    components = []
    for i in range(count):
        ident, sampling, quant_id = body[6 + 3 * i], body[7 + 3 * i], body[8 + 3 * i]
        h, v = sampling >> 4, sampling & 15
        if not (1 <= h <= 4 and 1 <= v <= 4) or quant_id > 3:
            raise JpegDataError(f"component {ident} has invalid sampling {h}x{v} or table {quant_id}")
        components.append(_Component(ident, h, v, quant_id))
    frame = _Frame(width, height, components)
    if any(frame.h_max % c.h or frame.v_max % c.v for c in components):
        return None  # sampling ratios that are not powers of two: libjpeg's route
    return frame


def _read_quant(body: memoryview, quant: dict[int, int], tables: dict[int, tuple[int, ...]]) -> None:
    """Keep each quantisation table's DC entry (its first, in zigzag order) and the whole table."""
    position = 0
    while position < len(body):
        precision, ident = body[position] >> 4, body[position] & 15
        entry = 2 if precision else 1
        if position + 1 + 64 * entry > len(body) or ident > 3:
            raise JpegDataError("quantisation table is short or numbered over 3")
        raw = bytes(body[position + 1 : position + 1 + 64 * entry])
        table = tuple(np.frombuffer(raw, ">u2" if precision else np.uint8).tolist())
        quant[ident], tables[ident] = table[0], table
        position += 1 + 64 * entry


def _read_huffman(
    body: memoryview,
    tables: dict[int, tuple[np.ndarray, np.ndarray]],
    raw_tables: dict[tuple[int, int], tuple[bytes, bytes]],
) -> None:
    """Keep each DC table as lookups by the next 16 bits (see ``_lookup``), and every table as given."""
    position = 0
    while position < len(body):
        if position + 17 > len(body):
            raise JpegDataError("Huffman table is short")
        kind, ident = body[position] >> 4, body[position] & 15
        counts = list(body[position + 1 : position + 17])
        symbols = bytes(body[position + 17 : position + 17 + sum(counts)])
        if len(symbols) != sum(counts) or ident > 3 or kind > 1:
            raise JpegDataError("Huffman table is short or numbered over 3")
        position += 17 + len(symbols)
        raw_tables[kind, ident] = (bytes(counts), symbols)
        if kind == 0:
            tables[ident] = _lookup(counts, symbols)


def codes(counts: bytes | list[int], symbols: bytes) -> Iterator[tuple[slice, int, int]]:
    """Yield each code of a Huffman table: (the 16-bit windows that start with it, its length, its symbol).

    :raises JpegDataError: more codes than the lengths allow.
    """
    code, k = 0, 0
    for bits, count in enumerate(counts, start=1):
        for _ in range(count):
            if code >= 1 << bits:
                raise JpegDataError("Huffman table has more codes than its lengths allow")
            yield slice(code << (16 - bits), (code + 1) << (16 - bits)), bits, symbols[k]
            code, k = code + 1, k + 1
        code <<= 1


def _lookup(counts: list[int], symbols: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Return, by the next 16 bits, (bits the code and its magnitude take, magnitude bits); 0: no code."""
    total = np.zeros(1 << 16, np.uint8)
    magnitude = np.zeros(1 << 16, np.uint8)
    for span, bits, symbol in codes(counts, symbols):
        if symbol <= _MAX_DC_CATEGORY:  # a larger one is invalid: left as no code
            total[span], magnitude[span] = bits + symbol, symbol
    return total, magnitude


@dataclass
class _ScanComponent:
    component: _Component
    table: int  # DC table id


def _scan(frame: _Frame, header: memoryview, entropy: memoryview) -> None:
    """Decode one scan's DC part into the components' grids (AC scans are skipped)."""
    count = header[0] if len(header) else 0
    if count < 1 or len(header) < 4 + 2 * count:
        raise JpegDataError("scan header is short")
    by_id = {c.ident: c for c in frame.components}
    members = []
    for i in range(count):
        ident, tables = header[1 + 2 * i], header[2 + 2 * i]
        if ident not in by_id:
            raise JpegDataError(f"scan names component {ident}, which the frame lacks")
        members.append(_ScanComponent(by_id[ident], tables >> 4))
    ss, se, approx = header[1 + 2 * count], header[2 + 2 * count], header[3 + 2 * count]
    ah, al = approx >> 4, approx & 15
    for i, member in enumerate(members):
        c = member.component
        if not c.quant_table and c.quant_id in frame.quant_tables:
            c.quant_table = frame.quant_tables[c.quant_id]  # libjpeg latches it at the first scan
        if ss != 0 and frame.ac_scans is not None:
            _record_ac(frame, c, header[2 + 2 * i] & 15, ss, se, ah, al, count, entropy)
    if ss != 0:
        return  # AC coefficients: not needed at 1/8 scale
    if se != 0 or al > 13:
        raise JpegDataError(f"progressive DC scan with spectral end {se} or point transform {al}")
    layout = _Layout(frame, members)
    if ah == 0:
        for member in members:
            c = member.component
            if member.table not in frame.dc_tables:
                raise JpegDataError(f"DC scan uses Huffman table {member.table}, which is not defined")
            if c.quant_id not in frame.quant:
                raise JpegDataError(f"component {c.ident} uses quantisation table {c.quant_id}, not defined")
            if c.dc is not None:
                raise JpegDataError(f"component {c.ident} has a second first DC scan")
        if frame.dc_scans is not None:  # recorded: jpeg_scaled decodes it into these grids
            across, down = frame.mcus
            for member in members:
                c = member.component
                c.quant_dc, c.al = frame.quant[c.quant_id], al
                c.dc = np.zeros((down * c.v, across * c.h), np.int16)
            _record_dc(frame, members, layout, ah, al, entropy)
            return
        lookups = [frame.dc_tables[m.table] for m in members]
        # The most bits an MCU can take: each block's longest code and magnitude in its table.
        worst = max(layout.per_unit, sum(int(lookups[slot][0].max()) for slot in layout.pattern))
        intervals = _intervals(entropy, layout.units, frame.restart, worst)
        diffs = _huffman_diffs(intervals, lookups, layout, worst)
        del intervals  # the scan's data, before the sums (4 bytes a block)
        for slot, member in enumerate(members):
            c = member.component
            c.quant_dc = frame.quant[c.quant_id]
            values = _predicted(layout.take(diffs, slot), layout, slot)
            values <<= al
            c.dc = layout.place(slot, values)
            c.al = al
    else:
        for member in members:
            c = member.component
            if c.dc is None or c.al != ah or al != ah - 1:
                raise JpegDataError(f"DC refinement of component {c.ident} to bit {al} out of order")
        if frame.dc_scans is not None:
            for member in members:
                member.component.al = al
            _record_dc(frame, members, layout, ah, al, entropy)
            return
        bits = _refinement_bits(_intervals(entropy, layout.units, frame.restart, layout.per_unit), layout)
        for slot, member in enumerate(members):
            c = member.component
            assert c.dc is not None
            c.dc |= layout.place(slot, layout.take(bits, slot).astype(np.int16) << al)
            c.al = al


def _record_dc(
    frame: _Frame, members: list[_ScanComponent], layout: _Layout, ah: int, al: int, entropy: memoryview
) -> None:
    assert frame.dc_scans is not None
    indices = [frame.components.index(m.component) for m in members]
    # A refinement scan reads no table (its members' may be undefined): an empty one stands in.
    tables = [frame.raw_tables.get((0, m.table), (bytes(16), b"")) for m in members]
    frame.dc_scans.append(DcScan(indices, tables, layout.interleaved, ah, al, frame.restart, entropy))


def _record_ac(
    frame: _Frame,
    c: _Component,
    table: int,
    ss: int,
    se: int,
    ah: int,
    al: int,
    count: int,
    entropy: memoryview,
) -> None:
    """Check an AC scan as libjpeg does and keep it for decoding.

    :raises JpegDataError: parameters libjpeg rejects (``JERR_BAD_PROGRESSION``) or no table.
    :raises _LeftToLibjpeg: a progression libjpeg only warns about (a band decoded twice, a
        refinement of a bit not yet known): its coefficients are not sums of what each scan adds.
    """
    if count != 1 or ss > se or se > 63 or al > 13 or (ah and al != ah - 1):
        raise JpegDataError(
            f"invalid progressive AC scan: {count} components, band {ss}-{se}, bits {ah}/{al}"
        )
    if (1, table) not in frame.raw_tables:
        raise JpegDataError(f"AC scan uses Huffman table {table}, which is not defined")
    if not c.quant_table:
        raise JpegDataError(f"component {c.ident} uses quantisation table {c.quant_id}, not defined")
    for k in range(ss, se + 1):
        if c.coef_bits[k] != (ah if ah else -1):
            raise _LeftToLibjpeg(f"component {c.ident}'s coefficient {k} refined out of order")
        c.coef_bits[k] = al
    assert frame.ac_scans is not None
    index = frame.components.index(c)
    frame.ac_scans.append(AcScan(index, ss, se, ah, al, frame.raw_tables[1, table], frame.restart, entropy))


class _Layout:
    """The order a scan codes blocks in: MCUs of each member's h x v blocks, or one component's raster."""

    def __init__(self, frame: _Frame, members: list[_ScanComponent]) -> None:
        self.frame = frame
        self.members = members
        self.interleaved = len(members) > 1
        if self.interleaved:
            self.grid = frame.mcus  # (across, down) in MCUs
            self.slots = [m.component.h * m.component.v for m in members]
        else:
            self.grid = frame.blocks(members[0].component)
            self.slots = [1]
        self.per_unit = sum(self.slots)  # blocks per MCU
        self.units = self.grid[0] * self.grid[1]  # MCUs in the scan
        self.pattern = [slot for slot, n in enumerate(self.slots) for _ in range(n)]

    def take(self, values: np.ndarray, slot: int) -> np.ndarray:
        """Return one member's values, in the order it is coded, from all blocks' (scan order)."""
        start = sum(self.slots[:slot])
        return values.reshape(self.units, self.per_unit)[:, start : start + self.slots[slot]].reshape(-1)

    def place(self, slot: int, values: np.ndarray) -> np.ndarray:
        """Return a member's values (coded order) as its component's MCU-padded block grid (int16).

        Values past 16 bits wrap, as libjpeg's coefficients (``JCOEF``) do.
        """
        c = self.members[slot].component
        across, down = self.frame.mcus
        grid = np.zeros((down * c.v, across * c.h), np.int16)
        if self.interleaved:  # written through views: no reordered copy of the values
            blocks = values.reshape(down, across, c.v, c.h).transpose(0, 2, 1, 3)
            grid.reshape(down, c.v, across, c.h)[...] = blocks
        else:
            width, height = self.grid
            grid[:height, :width] = values.reshape(height, width)
        return grid


@dataclass
class _Intervals:
    """A scan's entropy-coded data destuffed, its restart intervals end to end (each starts on a byte)."""

    data: np.ndarray  # uint8
    starts: np.ndarray  # int32: the bit each interval starts at, then the end of the last
    restart: int  # MCUs in each interval but the last (0: the scan is one interval)
    units: int  # MCUs in the scan

    def __len__(self) -> int:
        return len(self.starts) - 1

    def mcus(self, interval: int) -> int:
        """Return the MCUs in one interval."""
        if not self.restart:
            return self.units
        return min(self.restart, self.units - interval * self.restart)


def _intervals(entropy: memoryview, units: int, restart: int, unit_bits: int) -> _Intervals:
    """Return the scan's data without stuffed zeros, fill and restart markers, and where each interval starts.

    A piece (``PIECE_BYTES``) at a time and vectorised: an interval of one MCU is a marker every few
    bytes, and a Python object per interval would cost more memory than the coefficients this
    decoder avoids. Of each interval only the bytes its MCUs can take are kept (``unit_bits`` an
    MCU at most): junk before the next marker, which libjpeg skips, is never copied, however long.

    :raises _LeftToLibjpeg: a restart marker is missing or out of order.
    """
    raw = np.frombuffer(entropy, np.uint8)
    count = -(-units // restart) if restart else 1
    if len(raw) >= 2**28:  # bit positions are int32: no scan of a file under the size limit is near
        raise JpegDataError(f"a DC scan of {len(raw)} bytes is over what this decoder reads")
    full = restart or units  # MCUs in every interval but the last
    full_bytes = -(-(full * unit_bits) // 8)  # the most an interval's data can take, from a byte
    last_bytes = -(-((units - (count - 1) * full) * unit_bits) // 8)

    def need(interval: np.ndarray) -> np.ndarray:
        """Return the bytes each interval's data can take (int32)."""
        return np.where(interval < count - 1, full_bytes, last_bytes).astype(np.int32)

    capacity = (count - 1) * full_bytes + last_bytes
    data = np.empty(min(len(raw), capacity), np.uint8)  # pages never written are never resident
    starts = np.zeros(count + 1, np.int32)
    found = 0  # restart markers passed: the interval being read
    carried = 0  # bytes of that interval's data kept from earlier pieces
    kept = 0  # bytes of ``data`` written
    pos = 0
    while pos < len(raw) and found < count:
        if found == count - 1 and carried >= last_bytes:
            break  # the last interval's data is complete: what follows is junk or a trailing marker
        piece = raw[pos : pos + PIECE_BYTES + 1]  # a byte more: a marker's second byte
        n = min(PIECE_BYTES, len(piece))
        ff = np.flatnonzero(piece[:n] == 0xFF)
        ff = ff[ff + 1 < len(piece)]
        after = piece[ff + 1]
        keep = np.ones(len(piece), bool)
        if pos + n == len(raw) and piece[n - 1] == 0xFF:
            # The data's last byte 0xFF (its marker's fill, FF FF <marker>): never data, as a data
            # 0xFF is always stuffed (FF 00). Kept, it would be 8 bits a short scan does not have.
            keep[n - 1] = False
        keep[ff[after == 0] + 1] = False  # a stuffed zero
        keep[ff[after == 0xFF]] = False  # fill before a marker (or before a stuffed 0xFF)
        rst = ff[(after & 0xF8) == 0xD0]
        del ff, after
        rst = rst[: count - found]  # those past the last interval end the scan's data
        # Only the markers between intervals are numbered in sequence: libjpeg never reads the
        # number of one after the last interval (it ends the scan's data like any marker).
        between = rst[: count - 1 - found]
        numbers = piece[between + 1] - 0xD0
        if np.any(numbers != (found + np.arange(len(between))) % 8):
            raise _LeftToLibjpeg("a restart marker is missing or out of order")
        keep[rst] = keep[rst + 1] = False
        end = n  # the piece's bytes this pass consumes: with the byte after a last 0xFF it paired
        if len(rst) == count - found:  # the last interval's end: nothing after it is read
            end = int(rst[-1])
        elif n < len(piece) and piece[n - 1] == 0xFF and (piece[n] == 0 or piece[n] & 0xF8 == 0xD0):
            end = n + 1
        keep[end:] = False
        # Each byte's interval (from the markers before it), and the interval's bytes kept up to it:
        # those past what its MCUs can take are dropped.
        bounds = rst + 2  # where the next interval's data begins, in the piece
        interval = np.zeros(len(piece), np.int32)
        interval[bounds[bounds < len(piece)]] = 1
        np.cumsum(interval, out=interval)
        before = np.cumsum(keep, dtype=np.int32)
        at_begin = np.concatenate([[-carried], before[bounds - 1]]).astype(np.int32)
        within = at_begin[interval]
        np.subtract(before, within, out=within)
        keep &= within <= need(found + np.arange(len(at_begin)))[interval]
        del within, interval
        np.cumsum(keep, dtype=np.int32, out=before)
        starts[found + 1 : found + 1 + len(rst)] = kept + before[rst]  # data kept before each marker
        carried = int(before[-1] - before[bounds[-1] - 1]) if len(rst) else carried + int(before[-1])
        taken = piece[keep]
        data[kept : kept + len(taken)] = taken
        kept += len(taken)
        del keep, before, taken
        found += len(rst)
        pos += end
    if found < count - 1:
        raise _LeftToLibjpeg(f"{found + 1} of {count} restart intervals")
    starts[count] = kept
    starts *= 8
    return _Intervals(data[:kept], starts, restart, units)


def _windows(data: np.ndarray, start_bit: int, bits: int) -> np.ndarray:
    """Return the 16 bits at each of ``bits`` positions from ``start_bit`` (uint16, zeros past the end)."""
    first = start_bit >> 3
    skip = start_bit & 7
    count = -(-(bits + skip) // 8)
    chunk = np.zeros(count + 3, np.uint32)
    available = data[first : first + count + 3]
    chunk[: len(available)] = available
    words = chunk[:-3] << 24 | chunk[1:-2] << 16 | chunk[2:-1] << 8 | chunk[3:]
    del chunk
    out = np.empty((count, 8), np.uint16)
    shifted = np.empty_like(words)
    for k in range(8):  # the window at each bit of a byte, written in place (no 8-wide uint32 copy)
        np.right_shift(words, 16 - k, out=shifted)
        out[:, k] = shifted
    return out.reshape(-1)[skip : skip + bits]


def _huffman_diffs(
    intervals: _Intervals, tables: list[tuple[np.ndarray, np.ndarray]], layout: _Layout, worst: int
) -> np.ndarray:
    """Return every block's DC difference (int16, scan order) from a first DC scan.

    The restart intervals are laid end to end (each starts on a byte); the bits are made into
    lookups a chunk at a time and every interval's MCUs in the chunk are chained through it, so
    short intervals cost a Python call each, not a chunk each.

    :param worst: the most bits one MCU can take.
    """
    data, starts_at = intervals.data, intervals.starts
    per_unit = layout.per_unit
    reach = CHUNK_BITS + worst  # bit positions a chunk's lookups cover
    diffs = np.empty(layout.units * per_unit, np.int16)  # a DC difference has 11 bits and a sign
    done = 0  # blocks decoded so far
    bits_per_mcu = float(worst)  # measured as the scan is decoded
    interval, left = 0, intervals.mcus(0)  # the interval being decoded, its MCUs not yet decoded
    pos = 0
    while interval < len(intervals):
        # The chunk's windows (the 16 bits at each position) and each table's bits taken at each
        # position, as bytes: a Python loop indexes those fastest.
        windows = _windows(data, pos, reach + 16)
        by_table = {slot: tables[slot][0][windows[:reach]].tobytes() for slot in set(layout.pattern)}
        lengths = [by_table[slot] for slot in layout.pattern]
        base, chained = pos, array("I")
        # A chunk chains at most CHUNK_BITS blocks (each code takes a bit at least): so many
        # intervals of a few bits cannot make its positions list longer than its bits.
        while interval < len(intervals) and pos - base < CHUNK_BITS and len(chained) < CHUNK_BITS:
            q = pos - base
            n = min(left, max(1, int((CHUNK_BITS - q) / (bits_per_mcu * 1.25))))
            mark = len(chained)
            try:
                end = _chain(lengths, n, q, chained.append)
            except IndexError:  # denser than measured: only as many as surely fit
                del chained[mark:]
                n = min(left, (reach - q) // worst)
                end = _chain(lengths, n, q, chained.append)
            if end - q < n * per_unit:  # a block took no bits: no code matched
                raise JpegDataError("bad Huffman code in a DC scan")
            if base + end > int(starts_at[interval + 1]):
                raise JpegDataError("image file is truncated: a DC scan's data ends early")
            bits_per_mcu = max(1.0, (end - q) / n)
            pos, left = base + end, left - n
            if not left:
                interval += 1
                if interval < len(intervals):
                    pos, left = int(starts_at[interval]), intervals.mcus(interval)
        count = len(chained)
        at_all = np.frombuffer(chained, np.uint32).reshape(-1, per_unit)
        for column, slot in enumerate(layout.pattern):
            total, magnitude = tables[slot]
            w = windows[at_all[:, column]]
            taken = total[w].astype(np.int32)
            if not taken.all():
                raise JpegDataError("bad Huffman code in a DC scan")
            size = magnitude[w].astype(np.int32)
            extra = windows[at_all[:, column] + (taken - size)].astype(np.int32) >> (16 - size)
            extra = np.where(size > 0, extra, 0)
            negative = (size > 0) & (extra < (1 << np.maximum(size - 1, 0)))
            value = np.where(negative, extra - (1 << size) + 1, extra)
            diffs[done + column : done + count : per_unit] = value
        done += count
    return diffs


def _chain(lengths: list[bytes], mcus: int, q: int, append: Callable[[int], None]) -> int:
    """Append the bit position of each block's code for ``mcus`` MCUs from ``q``; return the position after.

    :param lengths: per block of an MCU, its table's bits taken at every position of the chunk.
    """
    if len(lengths) == 1:
        (only,) = lengths
        for _ in range(mcus):
            append(q)
            q += only[q]
        return q
    for _ in range(mcus):
        for table in lengths:
            append(q)
            q += table[q]
    return q


def _predicted(diffs: np.ndarray, layout: _Layout, slot: int) -> np.ndarray:
    """Return DC values (int32) from one member's differences: a running sum restarting with each interval."""
    values = diffs.astype(np.int32)  # libjpeg sums in an int; the coefficient keeps 16 bits of it
    restart = layout.frame.restart
    per_interval = restart * layout.slots[slot]
    if restart and len(values) > per_interval:
        # Each interval's first difference is from 0: a running sum along rows of whole intervals.
        whole = len(values) // per_interval * per_interval
        rows = values[:whole].reshape(-1, per_interval)
        np.cumsum(rows, axis=1, out=rows)
        np.cumsum(values[whole:], out=values[whole:])
    else:
        np.cumsum(values, out=values)
    return values


def _refinement_bits(intervals: _Intervals, layout: _Layout) -> np.ndarray:
    """Return each block's refinement bit (scan order): one raw bit a block, each interval from its byte.

    Only the bytes each interval's blocks need are read (gathered by index, a batch of intervals
    at a time), so what lies past them costs nothing.
    """
    count = len(intervals)
    blocks = intervals.mcus(0) * layout.per_unit  # in every interval but the last
    last = intervals.mcus(count - 1) * layout.per_unit
    out = np.empty((count - 1) * blocks + last, np.uint8)
    width = -(-blocks // 8)  # bytes an interval's bits take
    rows = max(1, (1 << 17) // width)  # intervals at once: 1 MB of bits unpacked
    for first in range(0, count, rows):
        stop = min(count, first + rows)
        starts = intervals.starts[first : stop + 1]
        wanted = np.full(stop - first, blocks, np.int32)
        if stop == count:
            wanted[-1] = last
        if np.any(starts[1:] - starts[:-1] < wanted):
            raise JpegDataError("image file is truncated: a DC refinement scan's data ends early")
        at = (starts[:-1, None] >> 3) + np.arange(width, dtype=np.int32)
        bits = np.unpackbits(intervals.data[np.minimum(at, len(intervals.data) - 1)], axis=1)[:, :blocks]
        if stop == count:  # the last interval's bits, maybe fewer
            out[first * blocks : (count - 1) * blocks] = bits[:-1].reshape(-1)
            out[(count - 1) * blocks :] = bits[-1, :last]
        else:
            out[first * blocks : stop * blocks] = bits.reshape(-1)
    return out
