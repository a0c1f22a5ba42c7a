"""The webhook listener over real sockets, and the Inbox's routing and de-duplication."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import socket
import time

import aiohttp
import pytest

from get3w_cli.constants import WEBHOOK_MAX_BODY_BYTES
from get3w_cli.errors import ListenerError, TunnelError
from get3w_cli.records import Status, Task
from get3w_cli.webhooks.inbox import Delivery, Inbox
from get3w_cli.webhooks.listener import CallbackListener, check_reachable
from get3w_cli.webhooks.signatures import sign_abstrakt, sign_get3w

SECRET = "s3cret"


def get3w_body(task_id: str = "pred_1", status: str = "completed") -> bytes:
    return json.dumps({"id": task_id, "model": "get3w/flux-dev", "status": status, "outputs": ["https://x/1.png"]}).encode()


def abstrakt_body(job_id: str = "job_1", status: str = "succeeded") -> bytes:
    return json.dumps({"job_id": job_id, "status": status, "output": {"items": [{"url": "https://x/a.png"}]}}).encode()


async def post(url: str, body: bytes, headers: dict[str, str] | None = None,
               method: str = "POST") -> tuple[int, object]:
    async with aiohttp.ClientSession() as session:
        data = io.BytesIO(body) if len(body) > 1024 * 1024 else body  # aiohttp warns on big bytes
        async with session.request(method, url, data=data, headers=headers or {}) as resp:
            text = await resp.text()
            try:
                return resp.status, json.loads(text)
            except ValueError:
                return resp.status, text


def serve(coro_fn, **listener_kwargs):
    """Run ``coro_fn(listener, inbox)`` against a started listener on 127.0.0.1."""

    async def main():
        inbox = listener_kwargs.pop("inbox", None) or Inbox()
        async with CallbackListener(inbox, **listener_kwargs) as listener:
            return await coro_fn(listener, inbox)

    return asyncio.run(main())


def test_wrong_token_is_404_and_changes_nothing():
    """Any path without the exact token gets 404; nothing is queued or counted."""

    async def scenario(listener, inbox):
        base = f"http://127.0.0.1:{listener.port}"
        for path in ["/", "/nope", f"/{listener.token}x", f"/{listener.token[:-1]}", f"/x/{listener.token}"]:
            status, _ = await post(base + path, get3w_body())
            assert status == 404, path
        status, _ = await post(f"{base}/nope", b"", method="GET")
        assert status == 404
        assert inbox.pending("pred_1") == 0
        assert listener.stats.received == 0 and listener.stats.accepted == 0

    serve(scenario)


def test_token_path_and_subpaths_accept_posts():
    """POST /<token> and /<token>/<anything> are deliveries."""

    async def scenario(listener, inbox):
        assert (await post(listener.local_url, get3w_body("a")))[0] == 200
        assert (await post(listener.local_url + "/hooks/get3w", get3w_body("b")))[0] == 200
        assert inbox.pending("a") == 1 and inbox.pending("b") == 1
        assert listener.stats.accepted == 2

    serve(scenario)


def test_wrong_method_is_405():
    """GET or PUT at the token path is 405 with Allow: POST."""

    async def scenario(listener, inbox):
        async with aiohttp.ClientSession() as session, session.get(listener.local_url) as resp:
            assert resp.status == 405
            assert resp.headers["Allow"] == "POST"
        assert (await post(listener.local_url, get3w_body(), method="PUT"))[0] == 405
        assert listener.stats.rejected_other == 2
        assert inbox.pending("pred_1") == 0

    serve(scenario)


def test_probe_answers_nonce_and_records_it():
    """GET /<token>/_probe/<nonce> answers the nonce and remembers it."""

    async def scenario(listener, inbox):
        status, text = await post(listener.local_url + "/_probe/abc123", b"", method="GET")
        assert (status, text) == (200, "abc123")
        assert "abc123" in listener.probes
        status, _ = await post(f"http://127.0.0.1:{listener.port}/wrong/_probe/zzz", b"", method="GET")
        assert status == 404 and "zzz" not in listener.probes

    serve(scenario)


def test_oversized_body_is_413():
    """A body over the limit gets 413, whether or not Content-Length announces it."""

    async def chunks():
        block = b" " * (1024 * 1024)
        for _ in range(WEBHOOK_MAX_BODY_BYTES // len(block) + 1):
            yield block

    async def scenario(listener, inbox):
        assert (await post(listener.local_url, b" " * (WEBHOOK_MAX_BODY_BYTES + 1)))[0] == 413
        async with aiohttp.ClientSession() as session, session.post(listener.local_url, data=chunks()) as resp:
            assert resp.status == 413
        assert listener.stats.rejected_other == 2

    serve(scenario)


def test_body_at_the_limit_is_read():
    """A body of exactly the limit is not oversized: it is read and accepted."""

    async def scenario(listener, inbox):
        padded = get3w_body()[:-1] + b" " * (WEBHOOK_MAX_BODY_BYTES - len(get3w_body())) + b"}"
        assert len(padded) == WEBHOOK_MAX_BODY_BYTES
        assert (await post(listener.local_url, padded))[0] == 200

    serve(scenario)


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b'"text"', b"\xff\xfe", b"[" * 100_000])
def test_non_json_or_non_object_is_400(body):
    """Bodies that are not a JSON object get 400 and are not queued."""

    async def scenario(listener, inbox):
        status, reply = await post(listener.local_url, body)
        assert status == 400
        assert "error" in reply
        assert listener.stats.rejected_other == 1 and listener.stats.accepted == 0

    serve(scenario)


def test_unparseable_task_is_422():
    """A JSON object that is not a task (no id) gets 422."""

    async def scenario(listener, inbox):
        assert (await post(listener.local_url, b'{"status": "completed"}'))[0] == 422
        assert (await post(listener.local_url, b'{"hello": "world"}'))[0] == 422
        assert listener.stats.rejected_other == 2

    serve(scenario)


def test_bad_get3w_signature_is_401():
    """With a Get3W secret, a wrong or missing signature is 401 and ignored; a right one is verified."""

    async def scenario(listener, inbox):
        body = get3w_body()
        assert (await post(listener.local_url, body, {"X-Get3W-Signature": sign_get3w("wrong", body)}))[0] == 401
        assert (await post(listener.local_url, body))[0] == 401
        assert inbox.pending("pred_1") == 0
        assert listener.stats.rejected_signature == 2
        assert (await post(listener.local_url, body, {"X-Get3W-Signature": sign_get3w(SECRET, body)}))[0] == 200
        delivery = await inbox.next("pred_1")
        assert delivery.verified and delivery.provider == "get3w"
        assert delivery.task.status is Status.COMPLETED and delivery.body == body

    serve(scenario, secrets={"get3w": SECRET})


def test_bad_abstrakt_signature_is_401():
    """With an Abstrakt secret, wrong, stale or missing signatures are 401; a fresh one is verified."""

    async def scenario(listener, inbox):
        body = abstrakt_body()
        now = str(int(time.time()))
        stale = str(int(time.time()) - 3600)
        bad = [
            {"X-Abstrakt-Signature": sign_abstrakt("wrong", body, now), "X-Abstrakt-Timestamp": now},
            {"X-Abstrakt-Signature": sign_abstrakt(SECRET, body, stale), "X-Abstrakt-Timestamp": stale},
            {"X-Abstrakt-Timestamp": now},
        ]
        for headers in bad:
            assert (await post(listener.local_url, body, headers))[0] == 401
        assert listener.stats.rejected_signature == 3 and inbox.pending("job_1") == 0
        good = {"X-Abstrakt-Signature": sign_abstrakt(SECRET, body, now), "X-Abstrakt-Timestamp": now}
        assert (await post(listener.local_url, body, good))[0] == 200
        delivery = await inbox.next("job_1")
        assert delivery.verified and delivery.provider == "abstrakt"
        assert delivery.task.status is Status.COMPLETED

    serve(scenario, secrets={"abstrakt": SECRET})


def test_unsigned_delivery_without_secret_is_unverified():
    """Without any secret a delivery is accepted, but marked unverified."""

    async def scenario(listener, inbox):
        assert (await post(listener.local_url, abstrakt_body("job_9"), {"X-Whatever": "1"}))[0] == 200
        delivery = await inbox.next("job_9")
        assert delivery.verified is False and delivery.verified_by == frozenset()
        assert delivery.provider == "abstrakt"
        assert delivery.payload == json.loads(abstrakt_body("job_9"))
        assert delivery.headers["X-Whatever"] == "1"
        assert delivery.received_at == pytest.approx(time.time(), abs=5)

    serve(scenario)


@pytest.mark.parametrize("headers", [{}, {"X-Abstrakt-Timestamp": "1"}, {"X-Abstrakt-Signature": "x"},
                                     {"X-Get3W-Signature": "0" * 64}])
def test_a_configured_secret_is_never_bypassed_by_claiming_the_other_provider(headers):
    """With only a Get3W secret, an unsigned 'completed' shaped or labelled as Abstrakt is 401, not a hint."""

    async def scenario(listener, inbox):
        for body in (abstrakt_body("job_f"), get3w_body("pred_f")):
            assert (await post(listener.local_url, body, headers))[0] == 401
        assert inbox.pending("job_f") == 0 and inbox.pending("pred_f") == 0
        assert listener.stats.rejected_signature == 2 and inbox.rejected_signatures == 2

    serve(scenario, secrets={"get3w": SECRET})


def test_a_delivery_verified_by_one_provider_is_attributed_to_it():
    """The secret that verifies a delivery decides its provider: an Abstrakt-signed body shaped like
    a Get3W task is Abstrakt's (verified_by names it), whatever provider_hint says."""

    async def scenario(listener, inbox):
        body = json.dumps({"id": "pred_x", "job_id": "pred_x", "status": "completed"}).encode()
        now = str(int(time.time()))
        signed = {"X-Abstrakt-Timestamp": now, "X-Abstrakt-Signature": sign_abstrakt("abstrakt-secret", body, now)}
        assert (await post(listener.local_url, body, signed))[0] == 200
        delivery = await inbox.next("pred_x")
        assert delivery.provider == "abstrakt" and delivery.verified_by == frozenset({"abstrakt"})
        assert delivery.trusted_for("abstrakt") and not delivery.trusted_for("get3w")

    serve(scenario, secrets={"get3w": SECRET, "abstrakt": "abstrakt-secret"}, provider_hint="get3w")


def test_rejections_are_not_logged_above_debug(caplog):
    """The listener never prints: 401s and other rejections are counted, logged at debug level only."""

    async def scenario(listener, inbox):
        assert (await post(listener.local_url, get3w_body(), {"X-Get3W-Signature": "0" * 64}))[0] == 401
        assert (await post(listener.local_url, b"not json"))[0] == 400
        not_a_task = b'{"hello": 1}'
        signed = {"X-Get3W-Signature": sign_get3w(SECRET, not_a_task)}
        assert (await post(listener.local_url, not_a_task, signed))[0] == 422
        assert listener.stats.rejected_signature == 1 and listener.stats.rejected_other == 2

    with caplog.at_level(logging.DEBUG, logger="g3w.webhooks"):
        serve(scenario, secrets={"get3w": SECRET})
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert sum("rejected" in r.getMessage() for r in caplog.records) == 3


def test_provider_hint_applies_when_headers_are_silent():
    """provider_hint decides the provider (and thus the secret) when no signature header says."""

    async def scenario(listener, inbox):
        body = json.dumps({"id": "x1", "status": "completed"}).encode()
        assert (await post(listener.local_url, body))[0] == 401  # abstrakt secret applies, unsigned
        assert listener.stats.rejected_signature == 1

    serve(scenario, secrets={"abstrakt": SECRET}, provider_hint="abstrakt")


def test_verified_duplicates_count_once():
    """The same verified (id, status) twice is one delivery; the second is acknowledged as duplicate."""

    async def scenario(listener, inbox):
        body = get3w_body()
        headers = {"X-Get3W-Signature": sign_get3w(SECRET, body)}
        first = await post(listener.local_url, body, headers)
        second = await post(listener.local_url, body, headers)
        assert first == (200, {"received": True})
        assert second == (200, {"received": True, "duplicate": True})
        assert listener.stats.accepted == 1 and listener.stats.duplicates == 1
        assert inbox.pending("pred_1") == 1

    serve(scenario, secrets={"get3w": SECRET})


def test_early_delivery_waits_for_next():
    """A callback that arrives before anyone waits is handed over by the first next()."""

    async def scenario(listener, inbox):
        assert (await post(listener.local_url, get3w_body("early", "processing")))[0] == 200
        assert (await post(listener.local_url, get3w_body("early", "completed")))[0] == 200
        first = await asyncio.wait_for(inbox.next("early"), 1)
        second = await asyncio.wait_for(inbox.next("early"), 1)
        assert [first.task.status, second.task.status] == [Status.PROCESSING, Status.COMPLETED]

    serve(scenario)


def test_take_hands_over_what_is_here_without_waiting():
    """take() returns an early delivery at once, None when nothing is here; next() then gets the rest."""

    async def scenario(listener, inbox):
        assert inbox.take("early") is None
        assert (await post(listener.local_url, get3w_body("early", "processing")))[0] == 200
        assert (await post(listener.local_url, get3w_body("early", "completed")))[0] == 200
        first = inbox.take("early")
        assert first is not None and first.task.status is Status.PROCESSING
        second = await asyncio.wait_for(inbox.next("early"), 1)
        assert second.task.status is Status.COMPLETED and inbox.take("early") is None

    serve(scenario)


def test_next_wakes_on_a_later_delivery():
    """A waiter blocked in next() gets a delivery that arrives afterwards."""

    async def scenario(listener, inbox):
        waiter = asyncio.create_task(inbox.next("later"))
        await asyncio.sleep(0)  # one turn of the loop: the waiter runs, and blocks
        assert not waiter.done()
        await post(listener.local_url, get3w_body("later"))
        delivery = await asyncio.wait_for(waiter, 1)
        assert delivery.task.id == "later"

    serve(scenario)


def test_late_processing_is_dropped_after_settle():
    """After the waiter settles a terminal status, a late 'processing' changes nothing."""

    async def scenario(listener, inbox):
        await post(listener.local_url, get3w_body("t", "completed"))
        delivery = await inbox.next("t")
        inbox.settle("t", delivery.task.status)
        status, reply = await post(listener.local_url, get3w_body("t", "processing"))
        assert (status, reply["duplicate"]) == (200, True)
        assert inbox.pending("t") == 0 and listener.stats.duplicates == 1

    serve(scenario)


def test_forged_unverified_does_not_mask_genuine():
    """An unverified 'completed' is never a duplicate: a later one still reaches the waiter."""

    async def scenario(listener, inbox):
        await post(listener.local_url, get3w_body("f", "completed"))  # forged
        forged = await inbox.next("f")
        assert not forged.verified  # the waiter's GET finds it still processing: no settle
        await post(listener.local_url, get3w_body("f", "completed"))  # the real one
        genuine = await asyncio.wait_for(inbox.next("f"), 1)
        assert genuine.task.status is Status.COMPLETED
        assert listener.stats.accepted == 2 and listener.stats.duplicates == 0

    serve(scenario)


class ExplodingInbox(Inbox):
    def offer(self, delivery: Delivery) -> str:
        raise RuntimeError("boom")


def test_unexpected_error_is_500_and_logged(caplog):
    """A bug in the handler path answers 500 without a traceback and logs on g3w.webhooks."""

    async def scenario(listener, inbox):
        status, reply = await post(listener.local_url, get3w_body())
        assert status == 500
        assert "Traceback" not in json.dumps(reply) and "boom" not in json.dumps(reply)
        assert listener.stats.rejected_other == 1

    with caplog.at_level(logging.ERROR, logger="g3w.webhooks"):
        serve(scenario, inbox=ExplodingInbox())
    assert any("boom" in r.getMessage() and r.name == "g3w.webhooks" for r in caplog.records)


def test_urls_carry_the_token():
    """local_url and callback_url append the token; a wildcard host becomes 127.0.0.1."""
    listener = CallbackListener(Inbox(), host="0.0.0.0", port=4321, token="tok")
    assert listener.local_url == "http://127.0.0.1:4321/tok"
    assert listener.callback_url("https://abc.ngrok.app/") == "https://abc.ngrok.app/tok"
    assert CallbackListener(Inbox(), host="::1", port=1, token="t").local_url == "http://[::1]:1/t"
    fresh = CallbackListener(Inbox())
    assert len(fresh.token) >= 22 and fresh.token != CallbackListener(Inbox()).token  # >= 128 bits
    assert fresh.token not in repr(fresh)


def test_close_frees_the_port_and_is_idempotent():
    """After close() the port can be bound again; close() twice is fine."""

    async def main():
        listener = CallbackListener(Inbox())
        await listener.start()
        port = listener.port
        assert port > 0
        await listener.close()
        await listener.close()
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))
            sock.listen()

    asyncio.run(main())


def test_taken_port_raises_listener_error():
    """Binding a port that is already listening raises ListenerError (exit 7)."""

    async def main():
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            sock.listen()
            with pytest.raises(ListenerError) as info:
                await CallbackListener(Inbox(), port=sock.getsockname()[1]).start()
        assert info.value.exit_code == 7
        with pytest.raises(ListenerError):
            await CallbackListener(Inbox(), host="256.1.1.1").start()

    asyncio.run(main())


def test_check_reachable_passes_locally_and_fails_elsewhere():
    """check_reachable succeeds through a URL that reaches the listener, else raises 'unreachable'."""

    async def scenario(listener, inbox):
        await check_reachable(f"http://127.0.0.1:{listener.port}", listener, timeout=2)
        assert len(listener.probes) == 1
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))  # held, not listening: refused, and nobody else's meanwhile
            with pytest.raises(TunnelError) as info:
                await check_reachable(f"http://127.0.0.1:{sock.getsockname()[1]}", listener, timeout=2)
        assert info.value.kind == "unreachable" and info.value.exit_code == 7
        assert listener.token not in info.value.message

    serve(scenario)


# --- Inbox alone ----------------------------------------------------------------------


def delivery(task_id: str, status: Status, *, verified: bool) -> Delivery:
    task = Task(id=task_id, provider="get3w", api="v3", model="m", status=status)
    return Delivery(time.time(), "get3w", task, verified, {}, b"{}", {})


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_inbox_verified_duplicate_but_unverified_never():
    """Only verified or confirmed deliveries make later ones duplicates."""
    inbox = Inbox()
    assert inbox.put(delivery("a", Status.COMPLETED, verified=False))
    assert inbox.put(delivery("a", Status.COMPLETED, verified=False))
    assert inbox.put(delivery("a", Status.COMPLETED, verified=True))
    assert not inbox.put(delivery("a", Status.COMPLETED, verified=True))
    assert inbox.put(delivery("a", Status.COMPLETED, verified=False))  # verified ones don't mask it
    assert not inbox.put(delivery("a", Status.PROCESSING, verified=True))  # stale: after the final one
    assert inbox.put(delivery("a", Status.FAILED, verified=True))
    assert inbox.pending("a") == 5


def test_inbox_forged_unverified_then_verified_genuine():
    """A forged unverified 'completed' never masks the verified genuine one."""

    async def main():
        inbox = Inbox()
        inbox.put(delivery("g", Status.COMPLETED, verified=False))
        assert not (await inbox.next("g")).verified
        assert inbox.put(delivery("g", Status.COMPLETED, verified=True))
        assert (await inbox.next("g")).verified

    asyncio.run(main())


def test_inbox_settle_confirms_and_drops():
    """settle() of a non-terminal status dedupes that status; of a terminal one drops everything."""
    inbox = Inbox()
    inbox.settle("s", Status.PROCESSING)
    assert not inbox.put(delivery("s", Status.PROCESSING, verified=False))
    assert inbox.put(delivery("s", Status.COMPLETED, verified=False))
    inbox.settle("s", Status.FAILED)
    assert inbox.pending("s") == 0
    assert not inbox.put(delivery("s", Status.COMPLETED, verified=True))
    assert not inbox.put(delivery("s", Status.PROCESSING, verified=False))


def test_inbox_early_deliveries_expire_after_hold():
    """Deliveries nobody asked for are dropped after early_hold."""
    clock = Clock()
    inbox = Inbox(early_hold=10, clock=clock)
    inbox.put(delivery("old", Status.COMPLETED, verified=False))
    clock.now = 5
    inbox.put(delivery("new", Status.COMPLETED, verified=False))
    clock.now = 11
    inbox.put(delivery("other", Status.PROCESSING, verified=False))
    assert inbox.pending("old") == 0 and inbox.pending("new") == 1 and inbox.pending("other") == 1


def test_inbox_early_deliveries_are_bounded():
    """At most early_max unclaimed deliveries are held, oldest dropped first."""
    inbox = Inbox(early_max=3)
    for i in range(5):
        inbox.put(delivery(f"t{i}", Status.COMPLETED, verified=False))
    assert [inbox.pending(f"t{i}") for i in range(5)] == [0, 0, 1, 1, 1]


def test_inbox_claimed_deliveries_do_not_expire():
    """Once someone waits for a task, its deliveries are kept regardless of early_hold."""

    async def main():
        clock = Clock()
        inbox = Inbox(early_hold=1, clock=clock)
        inbox.put(delivery("w", Status.PROCESSING, verified=False))
        assert (await inbox.next("w")).task.status is Status.PROCESSING
        inbox.put(delivery("w", Status.COMPLETED, verified=False))
        clock.now = 100
        inbox.put(delivery("x", Status.COMPLETED, verified=False))
        assert (await asyncio.wait_for(inbox.next("w"), 1)).task.status is Status.COMPLETED

    asyncio.run(main())


def test_inbox_forget_drops_queue_and_cancelled_next_loses_nothing():
    """forget() drops a task's queue; a cancelled next() leaves later deliveries in place."""

    async def main():
        inbox = Inbox()
        waiter = asyncio.create_task(inbox.next("c"))
        await asyncio.sleep(0)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        inbox.put(delivery("c", Status.COMPLETED, verified=False))
        assert (await asyncio.wait_for(inbox.next("c"), 1)).task.id == "c"
        inbox.put(delivery("c", Status.FAILED, verified=False))
        inbox.forget("c")
        assert inbox.pending("c") == 0

    asyncio.run(main())


def test_inbox_rejects_delivery_without_task():
    """A delivery with no parsed task cannot be routed."""
    with pytest.raises(ValueError):
        Inbox().put(Delivery(0.0, None, None, False, {}, b"", {}))


def test_inbox_rejection_signal_is_shared_and_done_once_a_signature_was_rejected():
    """signature_rejected() resolves the one signal every waiter watches, before or after it is asked for."""

    async def main():
        inbox = Inbox()
        signal = inbox.rejection_signal()
        assert not signal.done() and inbox.rejection_signal() is signal
        inbox.signature_rejected()
        assert signal.done() and inbox.rejected_signatures == 1
        later = Inbox()
        later.signature_rejected()
        assert later.rejection_signal().done()

    asyncio.run(main())


def test_inbox_a_delivery_verified_for_another_provider_never_masks_the_genuine_one():
    """De-duplication is per provider: a delivery verified by Abstrakt's secret for a Get3W task's id
    does not make the Get3W-verified one a duplicate."""
    inbox = Inbox()
    task = Task(id="pred_m", provider="abstrakt", api="v1", model="m", status=Status.COMPLETED)
    assert inbox.put(Delivery(time.time(), "abstrakt", task, True, {}, b"{}", {}))
    assert inbox.put(delivery("pred_m", Status.COMPLETED, verified=True))
    assert not inbox.put(delivery("pred_m", Status.COMPLETED, verified=True))
    assert inbox.pending("pred_m") == 2
