"""Webhook signature vectors for Get3W and Abstrakt, computed independently with hmac."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from get3w_cli.webhooks.signatures import (
    SCHEMES,
    sign_abstrakt,
    sign_get3w,
    signature_headers,
    verify_abstrakt,
    verify_delivery,
    verify_get3w,
    verifying_providers,
)

SECRET = "whsec_test_123"
BODY = b'{"id":"pred_abc123","status":"completed","outputs":["https://cdn/x.png"]}'
NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z
TS = str(int(NOW))


def _hex(secret: str, data: bytes) -> str:
    return hmac.new(secret.encode(), data, hashlib.sha256).hexdigest()


GET3W_SIG = _hex(SECRET, BODY)
ABSTRAKT_SIG = _hex(SECRET, TS.encode() + b"." + BODY)
ABSTRAKT_BODY_ONLY = _hex(SECRET, BODY)


def test_sign_get3w_matches_hmac_of_raw_body():
    """sign_get3w is the hex HMAC-SHA256 of the raw body."""
    assert sign_get3w(SECRET, BODY) == GET3W_SIG


def test_sign_abstrakt_matches_hmac_of_timestamp_dot_body():
    """sign_abstrakt signs '<timestamp>.<body>'."""
    assert sign_abstrakt(SECRET, BODY, TS) == ABSTRAKT_SIG
    assert sign_abstrakt(SECRET, BODY, int(NOW)) == ABSTRAKT_SIG


@pytest.mark.parametrize(
    ("secret", "body", "signature", "ok"),
    [
        (SECRET, BODY, GET3W_SIG, True),
        (SECRET, BODY, GET3W_SIG.upper(), True),
        (SECRET, BODY, "sha256=" + GET3W_SIG, True),
        (SECRET, BODY, "SHA256=" + GET3W_SIG.upper(), True),
        (SECRET, BODY, f"  {GET3W_SIG}  ", True),
        ("wrong-secret", BODY, GET3W_SIG, False),
        (SECRET, BODY.replace(b"completed", b"failed"), GET3W_SIG, False),
        (SECRET, BODY, GET3W_SIG[:-1], False),
        (SECRET, BODY, "", False),
        (SECRET, BODY, None, False),
        (SECRET, BODY, "é" * 64, False),
        ("", BODY, _hex("", BODY), False),
    ],
)
def test_verify_get3w_vectors(secret, body, signature, ok):
    """verify_get3w accepts only the right MAC (prefix / case / spaces tolerated)."""
    assert verify_get3w(secret, body, signature) is ok


@pytest.mark.parametrize(
    ("signature", "timestamp", "now", "ok"),
    [
        (ABSTRAKT_SIG, TS, NOW, True),
        (ABSTRAKT_SIG.upper(), TS, NOW + 299, True),
        ("sha256=" + ABSTRAKT_SIG, TS, NOW - 299, True),
        (ABSTRAKT_BODY_ONLY, None, NOW, True),  # body-only form, no timestamp
        (ABSTRAKT_BODY_ONLY, TS, NOW, True),  # body-only form, fresh timestamp
        (ABSTRAKT_SIG, TS, NOW + 301, False),  # stale
        (ABSTRAKT_SIG, TS, NOW - 301, False),  # from the future
        (ABSTRAKT_BODY_ONLY, TS, NOW + 3600, False),  # stale even in the body-only form
        (ABSTRAKT_SIG, None, NOW, False),  # timestamped MAC but the header is missing
        (ABSTRAKT_SIG, str(int(NOW) + 1), NOW, False),  # timestamp changed
        (ABSTRAKT_SIG, "not-a-number", NOW, False),
        (ABSTRAKT_SIG, "nan", NOW, False),
        (None, TS, NOW, False),
        ("", TS, NOW, False),
    ],
)
def test_verify_abstrakt_vectors(signature, timestamp, now, ok):
    """verify_abstrakt checks the MAC of 'ts.body' or of the body, within 5 minutes of now."""
    assert verify_abstrakt(SECRET, BODY, signature, timestamp, now=now) is ok


def test_verify_abstrakt_rejects_wrong_secret_and_tampered_body():
    """A wrong secret or a changed body fails in both forms."""
    assert not verify_abstrakt("other", BODY, ABSTRAKT_SIG, TS, now=NOW)
    assert not verify_abstrakt("other", BODY, ABSTRAKT_BODY_ONLY, None, now=NOW)
    assert not verify_abstrakt(SECRET, BODY + b" ", ABSTRAKT_SIG, TS, now=NOW)
    assert not verify_abstrakt(SECRET, BODY + b" ", ABSTRAKT_BODY_ONLY, None, now=NOW)


def test_verify_abstrakt_accepts_float_and_millisecond_timestamps():
    """Timestamps may be float seconds, or milliseconds."""
    float_ts = f"{NOW + 0.5}"
    assert verify_abstrakt(SECRET, BODY, _hex(SECRET, f"{float_ts}.".encode() + BODY), float_ts, now=NOW)
    ms_ts = str(int(NOW * 1000))
    assert verify_abstrakt(SECRET, BODY, _hex(SECRET, f"{ms_ts}.".encode() + BODY), ms_ts, now=NOW)


def test_verify_abstrakt_custom_tolerance():
    """The tolerance parameter bounds the clock skew."""
    assert not verify_abstrakt(SECRET, BODY, ABSTRAKT_SIG, TS, now=NOW + 11, tolerance=10)
    assert verify_abstrakt(SECRET, BODY, ABSTRAKT_SIG, TS, now=NOW + 9, tolerance=10)


def test_verify_delivery_dispatches_with_case_insensitive_headers():
    """verify_delivery picks the provider's headers, whatever their case."""
    assert verify_delivery("get3w", SECRET, {"x-get3w-signature": GET3W_SIG}, BODY)
    assert verify_delivery("get3w", SECRET, {"X-GET3W-SIGNATURE": GET3W_SIG}, BODY)
    headers = {"x-abstrakt-signature": ABSTRAKT_SIG, "X-ABSTRAKT-TIMESTAMP": TS}
    assert verify_delivery("abstrakt", SECRET, headers, BODY, now=NOW)
    assert not verify_delivery("abstrakt", SECRET, headers, BODY, now=NOW + 600)


def test_verify_delivery_rejects_missing_or_foreign_headers():
    """A missing header, the other provider's header, or an unknown provider fails."""
    assert not verify_delivery("get3w", SECRET, {}, BODY)
    assert not verify_delivery("get3w", SECRET, {"X-Abstrakt-Signature": GET3W_SIG}, BODY)
    assert not verify_delivery("abstrakt", SECRET, {"X-Get3W-Signature": GET3W_SIG}, BODY, now=NOW)
    assert not verify_delivery("replicate", SECRET, {"X-Get3W-Signature": GET3W_SIG}, BODY)


@pytest.mark.parametrize("provider", ["get3w", "abstrakt"])
def test_signature_headers_round_trip(provider):
    """signature_headers produces headers that verify_delivery accepts (and only for that body)."""
    headers = signature_headers(provider, SECRET, BODY, now=NOW)
    assert verify_delivery(provider, SECRET, headers, BODY, now=NOW)
    assert not verify_delivery(provider, SECRET, headers, BODY + b"x", now=NOW)


def test_signature_headers_unknown_provider():
    """An unknown provider is a programming error."""
    with pytest.raises(ValueError):
        signature_headers("nope", SECRET, BODY)


def test_verifying_providers_tries_every_configured_secret_whatever_the_headers_claim():
    """The secret that verifies a delivery decides: headers claiming the other provider change nothing."""
    secrets = {"get3w": SECRET, "abstrakt": "abstrakt-secret"}
    assert verifying_providers(secrets, {"X-Get3W-Signature": GET3W_SIG}, BODY, now=NOW) == {"get3w"}
    claims_abstrakt = {"X-Get3W-Signature": GET3W_SIG, "X-Abstrakt-Timestamp": TS}
    assert verifying_providers(secrets, claims_abstrakt, BODY, now=NOW) == {"get3w"}
    signed_a = {"X-Abstrakt-Signature": _hex("abstrakt-secret", TS.encode() + b"." + BODY), "X-Abstrakt-Timestamp": TS}
    assert verifying_providers(secrets, signed_a, BODY, now=NOW) == {"abstrakt"}
    assert verifying_providers(secrets, {}, BODY, now=NOW) == frozenset()
    assert verifying_providers(secrets, {"X-Abstrakt-Signature": GET3W_SIG}, BODY, now=NOW) == frozenset()


def test_one_secret_for_both_providers_verifies_under_each_providers_schemes():
    """The same secret configured for both: a delivery is verified by every provider whose scheme it satisfies."""
    both = {"get3w": SECRET, "abstrakt": SECRET}
    body_only = {"X-Get3W-Signature": GET3W_SIG, "X-Abstrakt-Signature": ABSTRAKT_BODY_ONLY}
    assert verifying_providers(both, body_only, BODY, now=NOW) == {"get3w", "abstrakt"}
    assert verifying_providers({"get3w": "", "abstrakt": SECRET}, body_only, BODY, now=NOW) == {"abstrakt"}


def test_every_provider_has_its_schemes_listed():
    """verify_delivery goes through SCHEMES: the one place a new signing scheme is added."""
    assert set(SCHEMES) == {"get3w", "abstrakt"} and all(SCHEMES.values())
