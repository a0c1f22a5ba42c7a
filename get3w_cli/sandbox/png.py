"""Real PNG files for the sandbox's outputs, built with zlib and struct only.

Each image is a small RGB gradient tinted by a colour derived from its seed (the output's
name), so different outputs differ. ``pad_to`` grows a file to about that many bytes with a
private ancillary chunk, which decoders skip, so the file stays a valid PNG; tests use it to
exercise download progress on large files.
"""

from __future__ import annotations

import hashlib
import struct
import zlib

from get3w_cli.constants import SANDBOX_PNG_SIZE

SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Lower-case 1st letter: ancillary; lower-case 2nd: private; upper-case 3rd: reserved bit
# clear; lower-case 4th: safe to copy. Decoders must ignore it.
PADDING_CHUNK = b"sbPd"
_CHUNK_OVERHEAD = 12  # length + type + CRC
_BIT_DEPTH, _COLOUR_RGB = 8, 2


def chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk: big-endian length, type, data, CRC-32 of type and data."""
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def _pixels(size: int, tint: bytes) -> bytes:
    rows = []
    for y in range(size):
        row = bytearray(b"\x00")  # filter type 0 (None) for each scanline
        for x in range(size):
            shade = (x + y) * 255 // max(1, 2 * size - 2)
            row += bytes(((tint[0] + shade) // 2, (tint[1] + x * 4) % 256, (tint[2] + y * 4) % 256))
        rows.append(bytes(row))
    return b"".join(rows)


def make_png(seed: str, *, size: int = SANDBOX_PNG_SIZE, pad_to: int | None = None) -> bytes:
    """A valid ``size`` x ``size`` RGB PNG, padded to about ``pad_to`` bytes when given."""
    tint = hashlib.sha256(seed.encode()).digest()[:3]
    header = struct.pack(">IIBBBBB", size, size, _BIT_DEPTH, _COLOUR_RGB, 0, 0, 0)
    head = SIGNATURE + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(_pixels(size, tint)))
    tail = chunk(b"IEND", b"")
    if pad_to is not None:
        room = pad_to - len(head) - len(tail) - _CHUNK_OVERHEAD
        if room > 0:
            head += chunk(PADDING_CHUNK, bytes(room))
    return head + tail
