"""A progressive JPEG writer with any scan script and any sampling, for the decoders' tests.

Pillow's encoder (libjpeg) writes one progression, libjpeg's default, and three samplings. Files in
the wild come from mozjpeg, jpegli, cameras and hand-tuned scripts: DC scans per component,
spectral bands one coefficient wide, deep successive approximation, 4:1:1 or 4:4:0. This writer
makes any of them from an image, so a decoder can be compared with libjpeg on the same bytes
(libjpeg reads what is written; whether the image looks like the source does not matter).

The entropy coding is a transcription of libjpeg's jcphuff.c (encode_mcu_DC_first, _DC_refine,
_AC_first, _AC_refine, with EOB runs and buffered correction bits) and its restart handling. The
Huffman tables are fixed, not optimised: 12 DC symbols of 4 bits, every AC symbol in 8 or 9 bits,
with the symbol order reversed in table 1 so that a decoder using the wrong table fails.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np
from PIL import Image

#: Zigzag position -> natural (row-major) index of an 8x8 block.
_ZIGZAG = np.array(
    [0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27,
     20, 13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58,
     59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63]
)  # fmt: skip
# ITU T.81 Annex K tables, natural order.
_LUMA_QUANT = [
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
]  # fmt: skip
_CHROMA_QUANT = [17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99, 24, 26, 56, 99, 99, 99,
                 99, 99, 47, 66, 99, 99, 99, 99, 99, 99] + [99] * 32  # fmt: skip
_DC_COUNTS = bytes([0, 0, 0, 12] + [0] * 12)
_AC_COUNTS = bytes([0] * 7 + [255, 1] + [0] * 7)
_DCT = np.array([[(np.sqrt(0.5) if u == 0 else 1.0) / 2 * np.cos((2 * x + 1) * u * np.pi / 16)
                  for x in range(8)] for u in range(8)])  # fmt: skip

#: Sampling factors (h, v) of each component, by name.
SAMPLINGS = {
    "L": [(1, 1)],
    "4:4:4": [(1, 1)] * 3,
    "4:2:2": [(2, 1), (1, 1), (1, 1)],
    "4:2:0": [(2, 2), (1, 1), (1, 1)],
    "4:1:1": [(4, 1), (1, 1), (1, 1)],
    "4:4:0": [(1, 2), (1, 1), (1, 1)],
    "mixed": [(2, 2), (1, 2), (2, 1)],  # each chroma plane its own way
}


@dataclass(frozen=True)
class Scan:
    """One scan: the components' indices, the spectral band, successive approximation bits."""

    components: tuple[int, ...]
    ss: int
    se: int
    ah: int = 0
    al: int = 0


def script(*scans: tuple) -> list[Scan]:
    """Return a scan script from (components, ss, se, ah, al) tuples."""
    return [Scan(*scan) for scan in scans]


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


def _symbols(table: int, count: int) -> list[int]:
    return list(range(count)) if table == 0 else list(reversed(range(count)))


def _codes(counts: bytes, symbols: list[int]) -> dict[int, tuple[int, int]]:
    """Return symbol -> (code, length) for a canonical Huffman table."""
    codes, code, at = {}, 0, 0
    for length, count in enumerate(counts, start=1):
        for _ in range(count):
            codes[symbols[at]] = (code, length)
            code, at = code + 1, at + 1
        code <<= 1
    return codes


_DC_CODES = [_codes(_DC_COUNTS, _symbols(t, 12)) for t in (0, 1)]
_AC_CODES = [_codes(_AC_COUNTS, _symbols(t, 256)) for t in (0, 1)]


class _Bits:
    """libjpeg's bit writer: MSB first, 0xFF stuffed with 0x00, padded with ones."""

    def __init__(self) -> None:
        self.out = bytearray()
        self.acc = 0
        self.count = 0

    def put(self, value: int, length: int) -> None:
        self.acc = self.acc << length | (value & ((1 << length) - 1))
        self.count += length
        while self.count >= 8:
            self.count -= 8
            byte = self.acc >> self.count & 0xFF
            self.out += b"\xff\x00" if byte == 0xFF else bytes([byte])
        self.acc &= (1 << self.count) - 1

    def flush(self) -> None:
        if self.count:
            self.put(0x7F, 8 - self.count)


class _Scan:
    """The state of one scan being written (jcphuff's phuff_entropy_encoder)."""

    def __init__(self, scan: Scan, tables: list[int]) -> None:
        self.scan = scan
        self.tables = tables  # per member
        self.bits = _Bits()
        self.last_dc = [0] * len(scan.components)
        self.eobrun = 0
        self.correction: list[int] = []  # BE: the EOB run's buffered correction bits
        self.restarts = 0

    def symbol(self, member: int, value: int) -> None:
        code, length = _AC_CODES[self.tables[member]][value]
        self.bits.put(code, length)

    def emit_eobrun(self, member: int) -> None:
        if self.eobrun > 0:
            nbits = self.eobrun.bit_length() - 1
            self.symbol(member, nbits << 4)
            if nbits:
                self.bits.put(self.eobrun, nbits)
            self.eobrun = 0
            for bit in self.correction:
                self.bits.put(bit, 1)
            self.correction = []

    def restart(self, member: int) -> None:
        self.emit_eobrun(member)
        self.bits.flush()
        self.bits.out += bytes([0xFF, 0xD0 + self.restarts % 8])
        self.restarts += 1
        self.last_dc = [0] * len(self.last_dc)

    def dc_first(self, member: int, coef: int) -> None:
        value = coef >> self.scan.al  # libjpeg's IRIGHT_SHIFT: arithmetic
        diff, self.last_dc[member] = value - self.last_dc[member], value
        nbits = abs(diff).bit_length()
        code, length = _DC_CODES[self.tables[member]][nbits]
        self.bits.put(code, length)
        if nbits:
            self.bits.put(diff if diff >= 0 else diff - 1, nbits)

    def dc_refine(self, coef: int) -> None:
        self.bits.put(coef >> self.scan.al, 1)

    def ac_first(self, block: np.ndarray) -> None:
        s, r = self.scan, 0
        for k in range(s.ss, s.se + 1):
            coef = int(block[k])
            magnitude = abs(coef) >> s.al
            if magnitude == 0:
                r += 1
                continue
            self.emit_eobrun(0)
            while r > 15:
                self.symbol(0, 0xF0)
                r -= 16
            nbits = magnitude.bit_length()
            self.symbol(0, (r << 4) + nbits)
            self.bits.put(magnitude if coef >= 0 else ~magnitude, nbits)
            r = 0
        if r > 0:
            self.eobrun += 1
            if self.eobrun == 0x7FFF:
                self.emit_eobrun(0)

    def ac_refine(self, block: np.ndarray) -> None:
        s = self.scan
        absolute = [abs(int(block[k])) >> s.al for k in range(s.ss, s.se + 1)]
        eob = max((i for i, a in enumerate(absolute) if a == 1), default=-1)
        r, pending = 0, []  # BR: this block's correction bits
        for i, magnitude in enumerate(absolute):
            if magnitude == 0:
                r += 1
                continue
            while r > 15 and i <= eob:
                self.emit_eobrun(0)
                self.symbol(0, 0xF0)
                r -= 16
                for bit in pending:
                    self.bits.put(bit, 1)
                pending = []
            if magnitude > 1:
                pending.append(magnitude & 1)
                continue
            self.emit_eobrun(0)
            self.symbol(0, (r << 4) + 1)
            self.bits.put(0 if block[s.ss + i] < 0 else 1, 1)
            for bit in pending:
                self.bits.put(bit, 1)
            pending, r = [], 0
        if r > 0 or pending:
            self.eobrun += 1
            self.correction += pending
            if self.eobrun == 0x7FFF or len(self.correction) > 1000 - 64 + 1:
                self.emit_eobrun(0)


def _planes(image: Image.Image, sampling: list[tuple[int, int]]) -> list[np.ndarray]:
    """Return each component's samples at its own resolution (box-averaged), as libjpeg sizes them."""
    width, height = image.size
    h_max, v_max = max(h for h, _ in sampling), max(v for _, v in sampling)
    full = np.asarray(image.convert("L") if len(sampling) == 1 else image.convert("YCbCr"), np.float64)
    full = full.reshape(height, width, -1)
    pad_h, pad_w = -height % v_max, -width % h_max
    full = np.pad(full, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    planes = []
    for index, (h, v) in enumerate(sampling):
        fy, fx = v_max // v, h_max // h
        plane = full[..., index].reshape(full.shape[0] // fy, fy, full.shape[1] // fx, fx).mean(axis=(1, 3))
        planes.append(plane[: -(-height * v // v_max), : -(-width * h // h_max)])
    return planes


def _coefficients(plane: np.ndarray, rows: int, cols: int, quant: np.ndarray) -> np.ndarray:
    """Return a plane's quantised DCT coefficients, (rows, cols, 64) in zigzag order, edges replicated."""
    padded = np.pad(plane, ((0, rows * 8 - plane.shape[0]), (0, cols * 8 - plane.shape[1])), mode="edge")
    blocks = padded.reshape(rows, 8, cols, 8).transpose(0, 2, 1, 3) - 128.0
    dct = np.einsum("ux,rcxy,vy->rcuv", _DCT, blocks, _DCT).reshape(rows, cols, 64)
    return np.rint(dct / quant).astype(np.int64)[..., _ZIGZAG]


def _quant(table: list[int], quality: int) -> np.ndarray:
    scale = 5000 // quality if quality < 50 else 200 - quality * 2
    return np.clip((np.array(table) * scale + 50) // 100, 1, 255)


def write(
    image: Image.Image,
    sampling: str,
    scans: list[Scan],
    *,
    quality: int = 90,
    restart: int = 0,
) -> bytes:
    """Return ``image`` as a progressive JPEG (SOF2) coded by ``scans``.

    :param sampling: a key of :data:`SAMPLINGS` ("L": greyscale).
    :param restart: the restart interval in MCUs (a single-component scan's MCU is one block), 0: none.
    """
    factors = SAMPLINGS[sampling]
    width, height = image.size
    h_max, v_max = max(h for h, _ in factors), max(v for _, v in factors)
    mcus = (-(-width // (8 * h_max)), -(-height // (8 * v_max)))
    quants = [_quant(_LUMA_QUANT, quality), _quant(_CHROMA_QUANT, quality)]
    coefs = [
        _coefficients(plane, mcus[1] * v, mcus[0] * h, quants[min(i, 1)])
        for i, (plane, (h, v)) in enumerate(zip(_planes(image, factors), factors, strict=True))
    ]
    out = [b"\xff\xd8"]
    for index, quant in enumerate(quants[: min(2, len(factors))]):
        out.append(struct.pack(">HHB", 0xFFDB, 67, index) + bytes(quant[_ZIGZAG].tolist()))
    frame = b"".join(bytes([i + 1, h << 4 | v, min(i, 1)]) for i, (h, v) in enumerate(factors))
    out.append(struct.pack(">HHBHHB", 0xFFC2, 8 + len(frame), 8, height, width, len(factors)) + frame)
    for kind, counts, count in ((0, _DC_COUNTS, 12), (1, _AC_COUNTS, 256)):
        for table in (0, 1):
            body = bytes([kind << 4 | table]) + counts + bytes(_symbols(table, count))
            out.append(struct.pack(">HH", 0xFFC4, 2 + len(body)) + body)
    if restart:
        out.append(struct.pack(">HHH", 0xFFDD, 4, restart))
    for scan in scans:
        tables = [min(c, 1) for c in scan.components]
        members = b"".join(bytes([c + 1, t << 4 | t]) for c, t in zip(scan.components, tables, strict=True))
        out.append(
            struct.pack(">HHB", 0xFFDA, 6 + 2 * len(scan.components), len(scan.components))
            + members
            + bytes([scan.ss, scan.se, scan.ah << 4 | scan.al])
        )
        out.append(_entropy(scan, tables, factors, coefs, width, height, h_max, v_max, mcus, restart))
    return b"".join(out) + b"\xff\xd9"


def _entropy(
    scan: Scan,
    tables: list[int],
    factors: list[tuple[int, int]],
    coefs: list[np.ndarray],
    width: int,
    height: int,
    h_max: int,
    v_max: int,
    mcus: tuple[int, int],
    restart: int,
) -> bytes:
    """Return one scan's entropy-coded data."""
    state = _Scan(scan, tables)
    if len(scan.components) > 1:  # MCUs of each member's h x v blocks
        units = []
        for my in range(mcus[1]):
            for mx in range(mcus[0]):
                unit = []
                for member, c in enumerate(scan.components):
                    h, v = factors[c]
                    rows = coefs[c][my * v : (my + 1) * v, mx * h : (mx + 1) * h]
                    unit += [(member, block) for row in rows for block in row]
                units.append(unit)
    else:  # one component's own blocks, raster order
        c = scan.components[0]
        h, v = factors[c]
        rows, cols = _ceil(_ceil(height * v, v_max), 8), _ceil(_ceil(width * h, h_max), 8)
        units = [[(0, coefs[c][y, x])] for y in range(rows) for x in range(cols)]
    for number, unit in enumerate(units):
        if restart and number and number % restart == 0:
            state.restart(0)
        for member, block in unit:
            if scan.ss == 0:
                if scan.ah == 0:
                    state.dc_first(member, int(block[0]))
                else:
                    state.dc_refine(int(block[0]))
            elif scan.ah == 0:
                state.ac_first(block)
            else:
                state.ac_refine(block)
    state.emit_eobrun(0)
    state.bits.flush()
    return bytes(state.bits.out)
