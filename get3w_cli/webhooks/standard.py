"""The Standard Webhooks signature headers, in both versions real providers send (CONTRACT.md section 5).

Headers ``webhook-id``, ``webhook-timestamp`` (integer Unix seconds) and ``webhook-signature``,
the last holding one or more space-separated ``<version>,<signature>`` entries (several during a
key rotation), each an HMAC-SHA256 of ``<webhook-id>.<webhook-timestamp>.<raw body>``:

- ``v1,<base64>``: the Standard Webhooks spec (github.com/standard-webhooks/standard-webhooks,
  spec/standard-webhooks.md); the key is the base64-decoded part of a ``whsec_<base64>``
  secret. A secret that is not base64 (a made-up ``whsec_test``) keys the HMAC with its own
  text instead of failing; the sandbox signs by the same rule.
- ``v3,<hex>``: WaveSpeed's documented scheme (wavespeed.ai/docs/docs-api/verifying_webhook);
  the key is the secret's text after ``whsec_``, "do not base64 decode it".

A secret is taken as pasted, with or without its ``whsec_`` prefix, surrounding blanks ignored.
``webhook-id`` stays the same across retries of one delivery: ``delivery.Deduper`` uses it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping

from get3w_cli.constants import WEBHOOK_TIMESTAMP_TOLERANCE

WEBHOOK_ID_HEADER = "webhook-id"
WEBHOOK_TIMESTAMP_HEADER = "webhook-timestamp"
WEBHOOK_SIGNATURE_HEADER = "webhook-signature"
STANDARD_V1 = "v1"  # Standard Webhooks: base64 HMAC keyed with the decoded whsec_ secret
WAVESPEED_V3 = "v3"  # WaveSpeed: hex HMAC keyed with the whsec_ secret's text
VERSIONS = (STANDARD_V1, WAVESPEED_V3)
WHSEC_PREFIX = "whsec_"


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def _secret_text(secret: str) -> str:
    text = secret.strip()
    return text.removeprefix(WHSEC_PREFIX)


def standard_key(secret: str) -> bytes:
    """The ``v1`` HMAC key: the base64-decoded part after ``whsec_`` (else the text itself)."""
    text = _secret_text(secret)
    try:
        key = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    return key or text.encode("utf-8")


def wavespeed_key(secret: str) -> bytes:
    """The ``v3`` HMAC key: the text after ``whsec_``, not decoded."""
    return _secret_text(secret).encode("utf-8")


def _digest(version: str, secret: str, webhook_id: str, timestamp: str, body: bytes) -> bytes:
    key = standard_key(secret) if version == STANDARD_V1 else wavespeed_key(secret)
    return hmac.new(key, f"{webhook_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()


def sign_standard(version: str, secret: str, webhook_id: str, timestamp: str | int, body: bytes) -> str:
    """One ``webhook-signature`` entry, ``v1,<base64>`` or ``v3,<hex>``.

    Raises:
        ValueError: ``version`` is neither ``v1`` nor ``v3``.
    """
    if version not in VERSIONS:
        raise ValueError(f"unknown webhook-signature version: {version!r}")
    digest = _digest(version, secret, webhook_id, str(timestamp), body)
    encoded = base64.b64encode(digest).decode("ascii") if version == STANDARD_V1 else digest.hex()
    return f"{version},{encoded}"


def _entries(header: str, version: str) -> list[str]:
    """The signatures of one version in a space-separated ``webhook-signature`` header."""
    found = []
    for entry in header.split():
        name, sep, value = entry.partition(",")
        if sep and name == version and value:
            found.append(value)
    return found


def _matches(version: str, expected: bytes, value: str) -> bool:
    if version == STANDARD_V1:
        try:
            given = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            return False
        return hmac.compare_digest(expected, given)
    return hmac.compare_digest(expected.hex().encode("ascii"), value.strip().lower().encode("utf-8", "replace"))


def verify_standard(
    version: str,
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float | None = None,
    tolerance: float = WEBHOOK_TIMESTAMP_TOLERANCE,
) -> bool:
    """Whether one of the delivery's ``version`` signatures was made with ``secret``.

    The id, the timestamp and a signature of that version must all be there, and the timestamp
    within ``tolerance`` seconds of ``now`` (either way), so an old delivery cannot be replayed.
    """
    lower = _lower(headers)
    webhook_id = (lower.get(WEBHOOK_ID_HEADER) or "").strip()
    timestamp = (lower.get(WEBHOOK_TIMESTAMP_HEADER) or "").strip()
    signatures = _entries(lower.get(WEBHOOK_SIGNATURE_HEADER) or "", version)
    # Digits only, as the spec writes it: then "<id>.<timestamp>.<body>" cannot be re-split.
    if not (secret and webhook_id and signatures and timestamp.isascii() and timestamp.isdigit()):
        return False
    current = time.time() if now is None else now
    if abs(current - int(timestamp)) > tolerance:
        return False
    expected = _digest(version, secret, webhook_id, timestamp, body)
    matched = False
    for value in signatures:  # every one compared, no early exit: the time says nothing of which
        matched = _matches(version, expected, value) or matched
    return matched


def standard_headers(
    version: str, secret: str, body: bytes, webhook_id: str, *, now: float | None = None
) -> dict[str, str]:
    """The Standard Webhooks headers of one delivery attempt, signed with ``version``."""
    stamp = str(int(time.time() if now is None else now))
    return {
        WEBHOOK_ID_HEADER: webhook_id,
        WEBHOOK_TIMESTAMP_HEADER: stamp,
        WEBHOOK_SIGNATURE_HEADER: sign_standard(version, secret, webhook_id, stamp, body),
    }


def signed_version(headers: Mapping[str, str]) -> str | None:
    """The version of the first ``webhook-signature`` entry g3w can make (``v1``/``v3``), if any."""
    for entry in (_lower(headers).get(WEBHOOK_SIGNATURE_HEADER) or "").split():
        version = entry.partition(",")[0]
        if version in VERSIONS:
            return version
    return None


def new_webhook_id() -> str:
    """A fresh ``webhook-id`` (``msg_`` and 96 random bits, as Svix writes them)."""
    return "msg_" + secrets.token_hex(12)


def webhook_id(headers: Mapping[str, str]) -> str | None:
    """The delivery's ``webhook-id`` (its identity across retries), if it has one."""
    value = _lower(headers).get(WEBHOOK_ID_HEADER)
    return value.strip() or None if value else None
