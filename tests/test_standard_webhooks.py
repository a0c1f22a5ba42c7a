"""The Standard Webhooks signatures (v1, the spec) and WaveSpeed's (v3), checked against published
test vectors and independent HMACs; de-duplication by ``webhook-id``; v3 ids of three segments."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

from get3w_cli.payloads import callback_task, get3w_api_hint
from get3w_cli.providers import resolve_route
from get3w_cli.records import Status
from get3w_cli.webhooks.delivery import DUPLICATE, NEW, Classifier, Deduper, Delivery
from get3w_cli.webhooks.forwarder import forward_headers, resign
from get3w_cli.webhooks.signatures import verify_delivery, verifying_providers
from get3w_cli.webhooks.standard import sign_standard, standard_headers, standard_key, verify_standard, wavespeed_key

# --- The Standard Webhooks reference library's test vectors --------------------------------------
# Copied from github.com/standard-webhooks/standard-webhooks, libraries/python/tests/test_webhooks.py
# (test_sign_function, test_invalid_signature_raises_error, test_multi_sig_payload_is_valid); the
# same values are in the JavaScript, Go and Ruby libraries' tests of that repository.
SW_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SW_MSG_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SW_TIMESTAMP = 1614265330
SW_PAYLOAD = b'{"test": 2432232314}'
SW_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
SW_INVALID = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA="  # one character off
SW_DECOYS = ["v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=", "v2,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc="]
NOW = float(SW_TIMESTAMP)


def sw_headers(signature: str = SW_SIGNATURE, *, msg_id: str = SW_MSG_ID,
               stamp: str = str(SW_TIMESTAMP)) -> dict[str, str]:
    return {"webhook-id": msg_id, "webhook-timestamp": stamp, "webhook-signature": signature}


def test_the_published_v1_vector_is_reproduced_and_verified() -> None:
    """sign_standard gives the reference library's signature; the receiver accepts it for either provider."""
    assert sign_standard("v1", SW_SECRET, SW_MSG_ID, SW_TIMESTAMP, SW_PAYLOAD) == SW_SIGNATURE
    assert verify_standard("v1", SW_SECRET, sw_headers(), SW_PAYLOAD, now=NOW)
    for provider in ("get3w", "abstrakt"):
        assert verify_delivery(provider, SW_SECRET, sw_headers(), SW_PAYLOAD, now=NOW)


def test_the_secret_works_with_or_without_its_prefix_and_blanks() -> None:
    """A pasted whsec_ secret as it is, the bare base64 part, or either with a stray newline."""
    for secret in (SW_SECRET, SW_SECRET.removeprefix("whsec_"), f" {SW_SECRET}\n"):
        assert verify_delivery("get3w", secret, sw_headers(), SW_PAYLOAD, now=NOW)
    assert standard_key(SW_SECRET) == base64.b64decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")


@pytest.mark.parametrize(("headers", "why"), [
    (sw_headers(SW_INVALID), "the published invalid signature"),
    ({k: v for k, v in sw_headers().items() if k != "webhook-id"}, "no webhook-id"),
    ({k: v for k, v in sw_headers().items() if k != "webhook-timestamp"}, "no webhook-timestamp"),
    ({k: v for k, v in sw_headers().items() if k != "webhook-signature"}, "no webhook-signature"),
    (sw_headers(stamp="hello"), "a timestamp that is no number"),
    (sw_headers(stamp=f"{SW_TIMESTAMP}.0"), "a timestamp that is not integer seconds"),
    (sw_headers(msg_id="msg_other"), "another id"),
    (sw_headers(SW_SIGNATURE.replace("v1,", "v1a,")), "an asymmetric (v1a) label"),
    (sw_headers(SW_SIGNATURE.replace("v1,", "v3,")), "a v1 signature labelled v3"),
    (sw_headers("v1,not base64!"), "a signature that is not base64"),
])
def test_bad_standard_deliveries_are_refused(headers: dict[str, str], why: str) -> None:
    """Each broken part of the published delivery makes it fail, for every provider's schemes."""
    assert not verify_delivery("get3w", SW_SECRET, headers, SW_PAYLOAD, now=NOW), why
    assert not verify_delivery("abstrakt", SW_SECRET, headers, SW_PAYLOAD, now=NOW), why


def test_the_body_and_the_secret_are_bound() -> None:
    """A changed body or another secret fails."""
    assert not verify_standard("v1", SW_SECRET, sw_headers(), SW_PAYLOAD + b" ", now=NOW)
    assert not verify_standard("v1", "whsec_" + base64.b64encode(b"another key 24 bytes....").decode(), sw_headers(),
                               SW_PAYLOAD, now=NOW)


def test_several_signatures_in_one_header_key_rotation() -> None:
    """The published multi-signature header: decoys and other versions around the valid one."""
    header = " ".join([SW_DECOYS[0], SW_DECOYS[1], SW_SIGNATURE, SW_DECOYS[0]])
    assert verify_delivery("get3w", SW_SECRET, sw_headers(header), SW_PAYLOAD, now=NOW)
    assert not verify_delivery("get3w", SW_SECRET, sw_headers(" ".join(SW_DECOYS)), SW_PAYLOAD, now=NOW)


@pytest.mark.parametrize(("offset", "ok"), [(0, True), (299, True), (-299, True), (301, False), (-301, False)])
def test_timestamps_within_five_minutes(offset: int, ok: bool) -> None:
    """The published tests' tolerance: 5 minutes either way (too old, too new)."""
    assert verify_delivery("get3w", SW_SECRET, sw_headers(), SW_PAYLOAD, now=NOW + offset) is ok


# --- WaveSpeed's v3 ---------------------------------------------------------------------------
# wavespeed.ai/docs/docs-api/verifying_webhook: "remove this prefix and use only the remaining
# string as the HMAC key (do not base64 decode it)"; v3,<hex> over {id}.{timestamp}.{raw_body}.
WS_SECRET = "whsec_5f2d8c1e9a7b4f3e8d6c2a1b0e9f8d7c"  # hex text: decoding it as base64 would also work,
WS_ID = "45b392b22c3b449fa935bd4dc"  # so only the documented keying can match
WS_STAMP = "1758798328"
WS_BODY = b'{"id":"pred_abc123","model":"wavespeed-ai/z-image/turbo","status":"completed","outputs":["https://x/1.png"]}'
WS_HEX = hmac.new(b"5f2d8c1e9a7b4f3e8d6c2a1b0e9f8d7c", f"{WS_ID}.{WS_STAMP}.".encode() + WS_BODY,
                  hashlib.sha256).hexdigest()


def ws_headers(signature: str = f"v3,{WS_HEX}") -> dict[str, str]:
    return {"Webhook-Id": WS_ID, "Webhook-Timestamp": WS_STAMP, "Webhook-Signature": signature}


def test_wavespeed_v3_is_keyed_with_the_secrets_text() -> None:
    """v3,<hex> keyed with the text after whsec_ verifies; the same MAC keyed the v1 way does not."""
    now = float(WS_STAMP)
    assert sign_standard("v3", WS_SECRET, WS_ID, WS_STAMP, WS_BODY) == f"v3,{WS_HEX}"
    assert wavespeed_key(WS_SECRET) == b"5f2d8c1e9a7b4f3e8d6c2a1b0e9f8d7c"
    for secret in (WS_SECRET, WS_SECRET.removeprefix("whsec_")):
        assert verify_delivery("get3w", secret, ws_headers(), WS_BODY, now=now)
    assert verify_delivery("get3w", WS_SECRET, ws_headers(f"v3,{WS_HEX.upper()}"), WS_BODY, now=now)
    decoded_key = hmac.new(standard_key(WS_SECRET), f"{WS_ID}.{WS_STAMP}.".encode() + WS_BODY, hashlib.sha256)
    assert not verify_delivery("get3w", WS_SECRET, ws_headers(f"v3,{decoded_key.hexdigest()}"), WS_BODY, now=now)
    assert not verify_delivery("get3w", WS_SECRET, ws_headers(f"v3,{WS_HEX}"), WS_BODY, now=now + 301)
    assert not verify_delivery("get3w", "whsec_other", ws_headers(), WS_BODY, now=now)


def test_the_receiver_decides_the_provider_of_a_standard_delivery() -> None:
    """Standard headers name no provider: the configured secret that verifies it decides."""
    headers = ws_headers()
    now = float(WS_STAMP)
    assert verifying_providers({"get3w": WS_SECRET, "abstrakt": "whsec_x"}, headers, WS_BODY, now=now) == {"get3w"}
    assert verifying_providers({"get3w": "whsec_x", "abstrakt": WS_SECRET}, headers, WS_BODY, now=now) == {"abstrakt"}
    assert verifying_providers({"get3w": "whsec_x"}, headers, WS_BODY, now=now) == frozenset()


def test_a_secret_that_is_not_base64_keys_v1_with_its_text() -> None:
    """whsec_e2e is no base64: v1 is keyed with its text (the sandbox signs by the same rule)."""
    stamp = 1_700_000_000
    headers = standard_headers("v1", "whsec_e2e!", WS_BODY, "msg_1", now=stamp)
    expected = hmac.new(b"e2e!", f"msg_1.{stamp}.".encode() + WS_BODY, hashlib.sha256).digest()
    assert headers["webhook-signature"] == "v1," + base64.b64encode(expected).decode()
    assert verify_delivery("get3w", "whsec_e2e!", headers, WS_BODY, now=stamp)


def test_forward_and_replay_keep_the_standard_headers() -> None:
    """--forward-to passes the webhook-* headers on; a re-signed replay keeps its version and its id."""
    picked = forward_headers({**ws_headers(), "Authorization": "Bearer sk"})
    assert {k.lower() for k in picked} == {"content-type", "webhook-id", "webhook-timestamp", "webhook-signature"}
    fresh = resign(ws_headers(), WS_BODY, WS_SECRET)
    assert fresh["webhook-id"] == WS_ID and fresh["webhook-signature"].startswith("v3,")
    assert verify_delivery("get3w", WS_SECRET, fresh, WS_BODY)  # signed now, with a fresh timestamp
    assert not any(k.startswith("Webhook-") for k in fresh)  # the old spellings are replaced, not doubled


# --- de-duplication by webhook-id --------------------------------------------------------------


def delivery(body: dict[str, object], headers: dict[str, str], *, verified: bool = True,
             provider: str = "get3w") -> Delivery:
    raw = json.dumps(body).encode()
    task = callback_task(body, provider=provider)
    return Delivery(0.0, provider, task, verified, headers, raw, body)


def test_the_same_webhook_id_is_one_delivery_whatever_the_body() -> None:
    """A retry with the same webhook-id is a duplicate even when its body changed; a new id is new."""
    dedupe = Deduper()
    first = delivery({"id": "pred_1", "status": "processing"}, {"webhook-id": "msg_a"})
    changed = delivery({"id": "pred_1", "status": "completed", "outputs": ["u"]}, {"Webhook-Id": "msg_a"})
    other = delivery({"id": "pred_1", "status": "completed", "outputs": ["u"]}, {"webhook-id": "msg_b"})
    assert [dedupe.classify(d) for d in (first, changed, other)] == [NEW, DUPLICATE, NEW]


def test_webhook_ids_are_provider_scoped_and_forgeries_never_mask() -> None:
    """The same webhook-id from the other provider is another delivery; an unverified one with a
    webhook-id does not make the genuine delivery with that id a duplicate."""
    dedupe = Deduper()
    forged = delivery({"id": "pred_9", "status": "completed"}, {"webhook-id": "msg_x"}, verified=False)
    genuine = delivery({"id": "pred_9", "status": "completed", "outputs": ["u"]}, {"webhook-id": "msg_x"})
    abstrakt = delivery({"job_id": "job_9", "status": "succeeded"}, {"webhook-id": "msg_x"}, provider="abstrakt")
    assert [dedupe.classify(d) for d in (forged, genuine, abstrakt)] == [NEW, NEW, NEW]


# --- Get3W v3 model ids with three segments ---------------------------------------------------


def test_api_v3_takes_a_model_id_of_any_length() -> None:
    """--api v3 keeps wavespeed-ai/z-image/turbo as a v3 id; without --api three segments mean v1."""
    route = resolve_route("wavespeed-ai/z-image/turbo", api="v3")
    assert (route.provider, route.api, route.model) == ("get3w", "v3", "wavespeed-ai/z-image/turbo")
    assert resolve_route("get3w:a/b/c/d", api="v3").model == "a/b/c/d"
    assert resolve_route("wavespeed-ai/z-image/turbo").api == "v1"
    assert resolve_route("flux-dev", api="v3").model == "get3w/flux-dev"


@pytest.mark.parametrize(("payload", "api"), [
    ({"id": "pred_1", "model": "wavespeed-ai/z-image/turbo", "status": "completed"}, "v3"),
    ({"id": "7b3e", "model": "wavespeed-ai/z-image/turbo", "status": "completed", "timings": {"inference": 9}}, "v3"),
    ({"id": "7b3e", "model": "wavespeed-ai/z-image/turbo", "status": "processing", "urls": {}}, "v3"),
    ({"id": "7b3e", "model": "google/nano-banana-pro/text-to-image", "status": "completed"}, "v1"),
    ({"id": "7b3e", "model": "get3w/flux-dev", "status": "completed"}, "v3"),
])
def test_a_payloads_shape_hints_its_api(payload: dict[str, object], api: str) -> None:
    """Without a waiter to say, a three-segment model is v1 only when nothing v3-only is there."""
    assert get3w_api_hint(payload) == api
    assert callback_task(payload, provider="get3w").api == api
    assert callback_task(payload, provider="get3w", api="v3").api == "v3"  # the waiter's adapter decides


def test_the_listener_attributes_a_three_segment_v3_webhook_to_v3() -> None:
    """A signed v3 callback for wavespeed-ai/z-image/turbo parses as a v3 task, not v1 by its model."""
    body = {"id": "a1b2", "model": "wavespeed-ai/z-image/turbo", "status": "completed", "outputs": ["u"],
            "timings": {"inference": 812}, "created_at": "2026-01-01T00:00:00.000Z"}
    raw = json.dumps(body).encode()
    headers = standard_headers("v3", WS_SECRET, raw, "msg_z")
    examined = Classifier({"get3w": WS_SECRET}).examine(headers, raw, received_at=0.0)
    assert examined.status == 200 and examined.delivery is not None and examined.delivery.task is not None
    assert (examined.delivery.task.api, examined.delivery.task.status) == ("v3", Status.COMPLETED)
    assert examined.delivery.verified and examined.delivery.webhook_id == "msg_z"
