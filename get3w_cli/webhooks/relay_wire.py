"""The frames between the relay and its borrowers (one WebSocket binary message each).

A frame is a JSON header and a raw body: 4 bytes (big-endian) giving the header's length, the
header, then the body as it was, byte for byte (a signature is over the raw body).

    relay -> borrower  {"id": n, "method": "POST", "rest": "<path after the token>",
                        "headers": [[name, value], ...]} + the delivery's body
    borrower -> relay  {"id": n, "status": 200, "content_type": "...", "headers": {...}} + the answer's body

A text message ``{"bye": "<reason>"}`` from the relay says why it is about to close the connection.
"""

from __future__ import annotations

import json
from typing import Any

_LENGTH_BYTES = 4


def pack(header: dict[str, Any], body: bytes) -> bytes:
    head = json.dumps(header, separators=(",", ":")).encode("utf-8", "surrogatepass")
    return len(head).to_bytes(_LENGTH_BYTES, "big") + head + body


def unpack(frame: bytes) -> tuple[dict[str, Any], bytes]:
    """Raises: ValueError, when ``frame`` is not one."""
    if len(frame) < _LENGTH_BYTES:
        raise ValueError("frame too short")
    size = int.from_bytes(frame[:_LENGTH_BYTES], "big")
    end = _LENGTH_BYTES + size
    if end > len(frame):
        raise ValueError("frame header cut short")
    header = json.loads(frame[_LENGTH_BYTES:end].decode("utf-8", "surrogatepass"))
    if not isinstance(header, dict):
        raise ValueError("frame header is not an object")
    return header, frame[end:]


def header_pairs(value: object) -> list[tuple[str, str]]:
    """The ``headers`` of a relayed request, checked. Raises: ValueError."""
    if not isinstance(value, list) or not all(
            isinstance(p, list) and len(p) == 2 and all(isinstance(x, str) for x in p) for p in value):
        raise ValueError("headers are not [name, value] pairs")
    return [(name, text) for name, text in value]
