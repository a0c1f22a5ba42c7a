"""The server core of ``g3w listen``: a long-lived webhook receiver (aiohttp).

Unlike the ephemeral listener there is no token: the user picked the port, and ``--path``
(default: any path) is the only guard, so every request is assumed to come from a stranger.
The handler only checks and acknowledges; everything slow (printing, ``--exec``,
``--forward-to``, ``--save``) happens later, off a bounded queue that ``listen_loop`` drains.

Answers: 2xx for a unique event, a duplicate (same id and status) or a stale one (a
non-final status after the task's final one); 401 bad signature; 400 not JSON; 404 other
path; 405 not POST; 413 over WEBHOOK_MAX_BODY_BYTES; 422 JSON that is not a task; 503 when
the queue is full (the provider retries; the delivery was not counted, so the retry is not
a "duplicate"); 500 for a bug (one line, no traceback). Each rejection is one rate-limited
note. Parsing, attribution, verification and de-duplication are ``delivery.Classifier`` and
``delivery.Deduper``, shared with the ephemeral listener: with any secret configured, a
delivery that no configured secret verifies is 401 whatever provider it claims; duplicates
count only among verified deliveries, or among unverified ones when no secret is configured
at all (there is nothing to confirm them with): a forged delivery can never mask a genuine one.

The queue is bounded in bytes too: a delivery's bytes are charged to ``budget`` as they are
read and stay charged until it is completely handled (see budget.py); a delivery that would
go over ``queue_max_bytes`` gets the same 503 as a full queue.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from itertools import chain
from typing import Any

from aiohttp import web

from get3w_cli.constants import (
    LISTEN_DEFAULT_PORT,
    LISTEN_QUEUE_MAX,
    LISTEN_QUEUE_MAX_BYTES,
    LISTEN_RETRY_AFTER_S,
    WEBHOOK_HEADER_TIMEOUT,
    WEBHOOK_MAX_BODY_BYTES,
)
from get3w_cli.errors import ListenerError, plain_reason
from get3w_cli.records import Task
from get3w_cli.webhooks.budget import ByteBudget, Claim, NoRoom
from get3w_cli.webhooks.delivery import DUPLICATE, NEW, Classifier, Deduper, Delivery
from get3w_cli.webhooks.http_common import (
    NoteLimiter,
    Served,
    json_reply,
    line_logger,
    one_line,
    read_body,
    serve_app,
    url_host,
)

__all__ = ["Event", "NoteLimiter", "RawDelivery", "Received", "Receiver", "ReceiverConfig", "iso_utc"]


def iso_utc(timestamp: float) -> str:
    """``2026-11-22T10:00:00.123Z`` for a ``time.time()`` value."""
    moment = datetime.fromtimestamp(timestamp, timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@dataclass(frozen=True)
class RawDelivery:
    """A POST at the listening path whose body was read, as it came (for --save)."""

    received_at: float
    method: str
    path: str
    query: str
    headers: Mapping[str, str]
    body: bytes
    answered: int  # the HTTP status we answered
    verified: bool = False  # whether a configured secret verified it (--save records it)


@dataclass(frozen=True)
class Event:
    """A delivery that parsed as a task (verified, or unverified when no secret applies)."""

    provider: str
    task: Task
    verified: bool
    payload: Mapping[str, Any]
    raw: RawDelivery

    def as_json(self) -> dict[str, Any]:
        """The ``--json`` line of CONTRACT.md section 5."""
        task = self.task
        return {
            "received_at": iso_utc(self.raw.received_at),
            "provider": self.provider,
            "id": task.id,
            "status": task.status.value,
            "verified": self.verified,
            "outputs": list(task.outputs),
            "error": task.error.as_dict() if task.error else None,
            "payload": dict(self.payload),
        }


@dataclass(frozen=True)
class Received:
    """One item of the receiver's queue: the raw delivery, and its event when unique.

    ``claim`` holds the delivery's bytes in the receiver's budget: whoever takes the item from
    the queue calls ``release()`` once done with it (``claim.hold()`` first for each further
    holder, such as a worker that runs later).
    """

    raw: RawDelivery
    event: Event | None
    claim: Claim | None = None

    def release(self) -> None:
        if self.claim is not None:
            self.claim.release()


@dataclass(frozen=True)
class ReceiverConfig:
    host: str = "127.0.0.1"
    port: int = LISTEN_DEFAULT_PORT
    path: str | None = None  # None: any path
    secrets: Mapping[str, str] = field(default_factory=dict, repr=False)  # provider -> secret
    provider: str | None = None  # used when the headers do not tell
    keep_raw: bool = False  # queue every read delivery (for --save), not only unique events
    queue_max: int = LISTEN_QUEUE_MAX
    queue_max_bytes: int = LISTEN_QUEUE_MAX_BYTES
    header_timeout: float = WEBHOOK_HEADER_TIMEOUT


@dataclass
class ReceiverStats:
    events: int = 0
    duplicates: int = 0
    stale: int = 0
    rejected: int = 0


class Receiver:
    """The ``g3w listen`` HTTP server; unique events (and raw deliveries) go to ``queue``."""

    def __init__(self, config: ReceiverConfig, notes: NoteLimiter) -> None:
        self.config = config
        self.notes = notes
        self.port = config.port
        self.stats = ReceiverStats()
        self.queue: asyncio.Queue[Received] = asyncio.Queue(config.queue_max)
        self._classifier = Classifier(config.secrets, provider=config.provider)
        self._path = _normalize_path(config.path) if config.path else None
        # Without any secret there is nothing to confirm an event with: unverified ones count.
        self._dedupe = Deduper(count_unverified=not self._classifier.has_secrets)
        self.budget = ByteBudget(config.queue_max_bytes)
        self._served: Served | None = None

    @property
    def local_url(self) -> str:
        """The URL to POST to on this machine (with ``--path`` when given)."""
        return f"http://{url_host(self.config.host)}:{self.port}{self._path or ''}"

    def callback_url(self, public_base: str | None) -> str:
        """The URL a provider should call: the public one (plus ``--path``) or the local one."""
        if not public_base:
            return self.local_url
        base = public_base.rstrip("/")
        has_path = "/" in base.split("://", 1)[-1]
        return base if has_path else base + (self._path or "")

    async def start(self) -> None:
        """Bind and serve.

        Raises:
            ListenerError: the address cannot be bound (port taken, bad host, ...).
        """
        server_log = line_logger("g3w.listen.http", lambda text: self.notes.note("http", f"bad request: {text}"))
        try:
            self._served = await serve_app(self._handle, host=self.config.host, port=self.config.port,
                                           on_error=self._internal_error, logger=server_log,
                                           warn=lambda text: self.notes.note("accept-failure", text),
                                           header_timeout=self.config.header_timeout)
        except (OSError, OverflowError, ValueError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            raise ListenerError(f"cannot listen on {self.config.host}:{self.config.port}: {reason}",
                                hint="choose another --port, or stop what is using it") from exc
        self.port = self._served.port

    async def close(self) -> None:
        """Stop serving and free the port (idempotent)."""
        served, self._served = self._served, None
        if served is not None:
            await served.close()

    def _internal_error(self, exc: Exception) -> None:
        self.stats.rejected += 1
        detail = one_line(plain_reason(exc))
        self.notes.note("internal", f"500: internal error handling a delivery: {detail}")

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if self._path and _normalize_path(request.path) != self._path:
            return self._reject(404, "not_found", f"{one_line(request.path)} is not {self._path}")
        if request.method != "POST":
            return self._reject(405, "method", f"{one_line(request.method)} {one_line(request.path)}: only POST",
                                headers={"Allow": "POST"})
        claim = self.budget.claim()  # this handler's hold; each queued item takes its own
        try:
            return await self._read(request, claim)
        except NoRoom:
            return self._busy()
        finally:
            claim.release()

    async def _read(self, request: web.Request, claim: Claim) -> web.Response:
        """Read and examine a POST at the listening path, charging its bytes to ``claim``.

        Raises:
            NoRoom: the receiver holds too many bytes already (answer 503).
        """
        if not claim.grow(sum(map(len, chain.from_iterable(request.raw_headers)))):  # the headers' bytes
            raise NoRoom
        received_at = time.time()
        body = await read_body(request, WEBHOOK_MAX_BODY_BYTES, claim)
        if body is None:
            return self._reject(413, "too_large", f"body over {WEBHOOK_MAX_BODY_BYTES // (1024 * 1024)} MiB")
        headers = dict(request.headers)
        examined = self._classifier.examine(headers, body, received_at=received_at)
        raw = RawDelivery(received_at, request.method, request.path, request.query_string, headers, body,
                          examined.status, examined.verified)
        parsed = examined.delivery
        if parsed is None:
            self._keep(Received(raw, None, claim))
            return self._reject(examined.status, _KINDS[examined.status], examined.reason)
        if self.queue.full():  # checked before the dedupe memory changes: the retry must count
            return self._busy()
        return self._accept(raw, parsed, claim)

    def _accept(self, raw: RawDelivery, delivery: Delivery, claim: Claim) -> web.Response:
        verdict = self._dedupe.classify(delivery)
        if verdict == NEW:
            self.stats.events += 1
            event = Event(delivery.provider or "", _task_of(delivery), delivery.verified, _payload_of(delivery), raw)
            self._queue(Received(raw, event, claim))
            return json_reply(200, received=True)
        self._keep(Received(raw, None, claim))
        if verdict == DUPLICATE:
            self.stats.duplicates += 1
            return json_reply(200, received=True, duplicate=True)
        self.stats.stale += 1
        return json_reply(200, received=True, stale=True)

    def _keep(self, item: Received) -> None:
        """Queue a delivery that is not an event, for --save only, and only if there is room."""
        if self.config.keep_raw and not self.queue.full():
            self._queue(item)

    def _queue(self, item: Received) -> None:
        if item.claim is not None:
            item.claim.hold()  # released by the consumer once the item is completely handled
        self.queue.put_nowait(item)

    def _busy(self) -> web.Response:
        return self._reject(503, "busy", "too many deliveries waiting; asked the sender to retry",
                            headers={"Retry-After": str(LISTEN_RETRY_AFTER_S)})

    def _reject(self, status: int, kind: str, reason: str, *, headers: dict[str, str] | None = None) -> web.Response:
        self.stats.rejected += 1
        self.notes.note(kind, f"{status}: {reason}")
        return json_reply(status, headers=headers, error=reason)


_KINDS = {400: "not_json", 401: "signature", 422: "unknown_shape"}


def _task_of(delivery: Delivery) -> Task:
    assert delivery.task is not None  # an accepted delivery always has its task
    return delivery.task


def _payload_of(delivery: Delivery) -> Mapping[str, Any]:
    payload = delivery.payload
    return payload if isinstance(payload, dict) else {}


def _normalize_path(path: str) -> str:
    """``hook``, ``/hook`` and ``/hook/`` are the same path."""
    return "/" + path.strip().strip("/")
