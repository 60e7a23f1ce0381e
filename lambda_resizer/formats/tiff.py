"""TIFF: pages counted in one walk."""

from __future__ import annotations

import struct


def page_count(data: bytes) -> int:
    """Return the number of pages (IFDs) of a TIFF or BigTIFF file, walking the chain once.

    A loop or an offset past the end ends the walk; the first page was already read by Pillow.
    """
    order = "<" if data[:2] == b"II" else ">"
    if data[2:4] in (b"+\x00", b"\x00+"):  # BigTIFF: 8-byte counts and offsets, 20-byte entries
        count_format, next_format, entry_size, first = "Q", "Q", 20, 8
    else:
        count_format, next_format, entry_size, first = "H", "I", 12, 4
    count_size, next_size = struct.calcsize(count_format), struct.calcsize(next_format)
    (offset,) = struct.unpack_from(order + next_format, data, first)
    seen: set[int] = set()
    while offset and offset not in seen and offset + count_size <= len(data):
        seen.add(offset)
        (entries,) = struct.unpack_from(order + count_format, data, offset)
        link = offset + count_size + entries * entry_size
        if link + next_size > len(data):
            break
        (offset,) = struct.unpack_from(order + next_format, data, link)
    return max(1, len(seen))
