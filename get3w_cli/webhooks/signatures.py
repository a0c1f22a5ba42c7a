"""Pure HMAC-SHA256 signing and verification of webhook deliveries (CONTRACT.md section 5).

Get3W signs the raw body (``X-Get3W-Signature``). Abstrakt's docs show two schemes, so both
are accepted: ``<X-Abstrakt-Timestamp>.<raw body>`` and the raw body alone
(``X-Abstrakt-Signature``). Signatures are lower-case hex; a ``sha256=`` prefix and
upper-case hex are tolerated.

Both providers may also sign the Standard Webhooks way (``webhook-id``, ``webhook-timestamp``,
``webhook-signature``), as WaveSpeed, whose API Get3W's v3 mirrors, does: ``v1,<base64>`` (the
spec) and ``v3,<hex>`` (WaveSpeed) are both verified (standard.py). Every comparison is
constant-time, and every timestamped scheme refuses a timestamp more than
WEBHOOK_TIMESTAMP_TOLERANCE from now.

Verification is "every configured secret, every scheme of its provider" (``verifying_providers``):
``SCHEMES`` lists each provider's schemes, so supporting another one is one function and one
entry there.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import time
from collections.abc import Callable, Mapping

from get3w_cli.constants import (
    WEBHOOK_TIMESTAMP_MS_THRESHOLD,
    WEBHOOK_TIMESTAMP_TOLERANCE,
)
from get3w_cli.names import Provider
from get3w_cli.webhooks.standard import (
    STANDARD_V1,
    WAVESPEED_V3,
    verify_standard,
)

GET3W_SIGNATURE_HEADER = "X-Get3W-Signature"
ABSTRAKT_SIGNATURE_HEADER = "X-Abstrakt-Signature"
ABSTRAKT_TIMESTAMP_HEADER = "X-Abstrakt-Timestamp"

_PREFIX = "sha256="


def _mac(secret: str, data: bytes) -> str:
    return hmac.new(secret.encode("utf-8"), data, hashlib.sha256).hexdigest()


def _normalize(signature: str) -> bytes:
    sig = signature.strip()
    if sig[: len(_PREFIX)].lower() == _PREFIX:
        sig = sig[len(_PREFIX) :]
    return sig.lower().encode("utf-8", "replace")


def _matches(expected_hex: str, signature: str) -> bool:
    return hmac.compare_digest(expected_hex.encode("ascii"), _normalize(signature))


def sign_get3w(secret: str, body: bytes) -> str:
    """Return the ``X-Get3W-Signature`` value for ``body``."""
    return _mac(secret, body)


def sign_abstrakt(secret: str, body: bytes, timestamp: str | int | float) -> str:
    """Return the ``X-Abstrakt-Signature`` value for ``body`` sent at ``timestamp``."""
    return _mac(secret, f"{timestamp}.".encode() + body)


def verify_get3w(secret: str, body: bytes, signature: str | None) -> bool:
    """Check a Get3W signature: hex HMAC-SHA256 of the raw body."""
    if not secret or not signature:
        return False
    return _matches(_mac(secret, body), signature)


def _timestamp_seconds(timestamp: str) -> float | None:
    try:
        value = float(timestamp.strip())
    except ValueError:
        return None
    if not math.isfinite(value):
        return None
    return value / 1000.0 if abs(value) >= WEBHOOK_TIMESTAMP_MS_THRESHOLD else value


def verify_abstrakt(
    secret: str,
    body: bytes,
    signature: str | None,
    timestamp: str | None,
    *,
    now: float | None = None,
    tolerance: float = WEBHOOK_TIMESTAMP_TOLERANCE,
) -> bool:
    """Check an Abstrakt signature over ``<timestamp>.<body>`` or over the body alone.

    A timestamp further than ``tolerance`` seconds from ``now`` (either way) fails even when
    the MAC matches, so that an old delivery cannot be replayed with its own headers.
    """
    if not secret or not signature:
        return False
    if timestamp is not None and timestamp.strip():
        seconds = _timestamp_seconds(timestamp)
        current = time.time() if now is None else now
        if seconds is None or abs(current - seconds) > tolerance:
            return False
        if _matches(sign_abstrakt(secret, body, timestamp.strip()), signature):
            return True
    return _matches(_mac(secret, body), signature)


# A scheme checks one secret against a delivery: (secret, headers with lower-case names, raw body,
# now as time.time()) -> whether the delivery carries a valid signature made with that secret.
Scheme = Callable[[str, Mapping[str, str], bytes, float], bool]


def _get3w_body_hmac(secret: str, headers: Mapping[str, str], body: bytes, now: float) -> bool:
    return verify_get3w(secret, body, headers.get(GET3W_SIGNATURE_HEADER.lower()))


def _abstrakt_hmac(secret: str, headers: Mapping[str, str], body: bytes, now: float) -> bool:
    return verify_abstrakt(
        secret,
        body,
        headers.get(ABSTRAKT_SIGNATURE_HEADER.lower()),
        headers.get(ABSTRAKT_TIMESTAMP_HEADER.lower()),
        now=now,
    )


def _standard_v1(secret: str, headers: Mapping[str, str], body: bytes, now: float) -> bool:
    return verify_standard(STANDARD_V1, secret, headers, body, now=now)


def _wavespeed_v3(secret: str, headers: Mapping[str, str], body: bytes, now: float) -> bool:
    return verify_standard(WAVESPEED_V3, secret, headers, body, now=now)


# Every scheme each provider signs with. A delivery is verified by a provider's secret when any
# of that provider's schemes accepts it; a new scheme is one more entry in a provider's tuple.
# Get3W's v3 mirrors WaveSpeed, which signs the Standard Webhooks way; Abstrakt's newer docs do
# not show how (or whether) they sign, so the self-describing Standard headers are accepted from
# it too: a delivery still needs a valid MAC made with the secret configured for Abstrakt.
SCHEMES: Mapping[str, tuple[Scheme, ...]] = {
    Provider.GET3W: (_get3w_body_hmac, _standard_v1, _wavespeed_v3),
    Provider.ABSTRAKT: (_abstrakt_hmac, _standard_v1, _wavespeed_v3),
}


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def _verifies(provider: str, secret: str, lower: Mapping[str, str], body: bytes, now: float) -> bool:
    return bool(secret) and any(scheme(secret, lower, body, now) for scheme in SCHEMES.get(provider, ()))


def verify_delivery(
    provider: str,
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float | None = None,
) -> bool:
    """Check a delivery against one provider's secret, under every scheme of that provider."""
    return _verifies(provider, secret, _lower(headers), body, time.time() if now is None else now)


def verifying_providers(
    secrets: Mapping[str, str],
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float | None = None,
) -> frozenset[str]:
    """The providers (keys of ``secrets``) whose secret verifies the delivery under one of their schemes.

    Every configured secret is tried, whatever provider the headers or the body claim: the
    sender does not get to choose which secret applies.
    """
    lower, current = _lower(headers), time.time() if now is None else now
    return frozenset(p for p, secret in secrets.items() if _verifies(p, secret, lower, body, current))


def signature_headers(
    provider: str, secret: str, body: bytes, *, now: float | None = None
) -> dict[str, str]:
    """Return the headers a provider would sign ``body`` with in its own scheme (for replays)."""
    if provider == Provider.GET3W:
        return {GET3W_SIGNATURE_HEADER: sign_get3w(secret, body)}
    if provider == Provider.ABSTRAKT:
        stamp = str(int(time.time() if now is None else now))
        return {
            ABSTRAKT_TIMESTAMP_HEADER: stamp,
            ABSTRAKT_SIGNATURE_HEADER: sign_abstrakt(secret, body, stamp),
        }
    raise ValueError(f"unknown provider: {provider!r}")
