"""The sandbox's webhook sender: signs, POSTs and retries the final callback of each task.

Schedules (the delay before each attempt, multiplied by ``webhook_time_scale``):

- Get3W v1: the first attempt at once, then 3 retries after 2, 4 and 8 s (seed "Webhook Mode").
- Get3W v3: 4 attempts, at once and after 10, 30 and 60 s (seed "How to Use Webhooks").
- Abstrakt: undocumented; the sandbox makes 4 attempts, at once and after 5, 15 and 30 s.

An attempt fails on a non-2xx answer, a timeout (SANDBOX_WEBHOOK_TIMEOUT scaled, at least
SANDBOX_WEBHOOK_MIN_TIMEOUT) or a connection error. A delivery failure is logged, never raised.

Signing (``SandboxOptions.signature_scheme``, when a secret is set), written here apart from the
receiver's code so that each checks the other:

- ``native``: each API its documented way: Get3W as ``get3w``, Abstrakt as ``abstrakt`` (or
  ``abstrakt-body`` with ``abstrakt_sign_body_only``);
- ``get3w``: ``X-Get3W-Signature`` = hex HMAC-SHA256 of the raw body;
- ``abstrakt``: ``X-Abstrakt-Timestamp`` (unix seconds) and ``X-Abstrakt-Signature`` = hex
  HMAC-SHA256 of ``"<ts>.<body>"``; ``abstrakt-body``: of the body alone;
- ``standard-v1`` / ``wavespeed-v3``: ``webhook-id`` (one per delivery, the same on each retry
  and duplicate), ``webhook-timestamp`` (each attempt's own) and ``webhook-signature`` =
  ``v1,<base64>`` keyed with the base64-decoded part of a ``whsec_`` secret (its text when it is
  not base64), or ``v3,<hex>`` keyed with the text after ``whsec_``; over ``"<id>.<ts>.<body>"``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from typing import Any

import aiohttp

from get3w_cli.constants import (
    SANDBOX_RETRY_SCHEDULE_ABSTRAKT,
    SANDBOX_RETRY_SCHEDULE_GET3W_V1,
    SANDBOX_RETRY_SCHEDULE_GET3W_V3,
    SANDBOX_WEBHOOK_MIN_TIMEOUT,
    SANDBOX_WEBHOOK_TIMEOUT,
)
from get3w_cli.names import SignatureScheme
from get3w_cli.sandbox.logs import DeliveryAttempt, HeaderDict
from get3w_cli.sandbox.options import SandboxOptions
from get3w_cli.sandbox.shapes import ABSTRAKT, V1, V3
from get3w_cli.sandbox.state import SandboxTask

SCHEDULES = {
    V1: SANDBOX_RETRY_SCHEDULE_GET3W_V1,
    V3: SANDBOX_RETRY_SCHEDULE_GET3W_V3,
    ABSTRAKT: SANDBOX_RETRY_SCHEDULE_ABSTRAKT,
}
USER_AGENT = "g3w-sandbox-webhooks"
# HeaderDict keeps names lower-cased; on the wire they carry the documented spelling.
_WIRE_NAMES = {
    "content-type": "Content-Type",
    "user-agent": "User-Agent",
    "x-get3w-signature": "X-Get3W-Signature",
    "x-abstrakt-timestamp": "X-Abstrakt-Timestamp",
    "x-abstrakt-signature": "X-Abstrakt-Signature",
}
_WHSEC = "whsec_"


def new_webhook_id() -> str:
    """A delivery's ``webhook-id`` (Svix style ``msg_...``), kept across its retries."""
    return "msg_" + secrets.token_hex(12)


def encode(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


def _scheme(api: str, options: SandboxOptions) -> str:
    if options.signature_scheme != SignatureScheme.NATIVE:
        return options.signature_scheme
    if api != ABSTRAKT:
        return SignatureScheme.GET3W
    return SignatureScheme.ABSTRAKT_BODY if options.abstrakt_sign_body_only else SignatureScheme.ABSTRAKT


def sign(api: str, body: bytes, options: SandboxOptions, *, now: float | None = None,
         webhook_id: str | None = None) -> HeaderDict:
    """The headers of one delivery attempt of ``body`` for ``api``, signed when a secret is set.

    ``webhook_id`` identifies the delivery under the Standard schemes (a fresh one if None).
    """
    headers = HeaderDict({"Content-Type": "application/json", "User-Agent": USER_AGENT})
    secret, scheme = options.webhook_secret, _scheme(api, options)
    stamp = str(int(time.time() if now is None else now))
    if scheme in (SignatureScheme.ABSTRAKT, SignatureScheme.ABSTRAKT_BODY):
        headers["x-abstrakt-timestamp"] = stamp
        if secret:
            signed = body if scheme == SignatureScheme.ABSTRAKT_BODY else stamp.encode() + b"." + body
            headers["x-abstrakt-signature"] = _hmac(secret.encode(), signed).hex()
    elif scheme in (SignatureScheme.STANDARD_V1, SignatureScheme.WAVESPEED_V3):
        msg_id = webhook_id or new_webhook_id()
        headers["webhook-id"], headers["webhook-timestamp"] = msg_id, stamp
        if secret:
            headers["webhook-signature"] = _standard_signature(scheme, secret, f"{msg_id}.{stamp}.".encode() + body)
    elif secret:
        headers["x-get3w-signature"] = _hmac(secret.encode(), body).hex()
    return headers


def _standard_signature(scheme: str, secret: str, content: bytes) -> str:
    text = secret.strip().removeprefix(_WHSEC)
    if scheme == SignatureScheme.WAVESPEED_V3:
        return "v3," + _hmac(text.encode(), content).hex()  # the text itself, not decoded
    try:
        key = base64.b64decode(text + "=" * (-len(text) % 4), validate=True) or text.encode()
    except (binascii.Error, ValueError):
        key = text.encode()  # not base64: g3w's receiver keys such a secret with its text too
    return "v1," + base64.b64encode(_hmac(key, content)).decode()


def _hmac(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha256).digest()


class Deliverer:
    """Sends webhook deliveries on one aiohttp session and records every attempt."""

    def __init__(self, options: Callable[[], SandboxOptions], log: list[DeliveryAttempt]) -> None:
        self._options = options
        self._log = log
        self._session: aiohttp.ClientSession | None = None
        self._jobs: set[asyncio.Task[None]] = set()

    async def open(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(auto_decompress=False)

    async def close(self) -> None:
        """Cancel pending deliveries and close the session."""
        jobs = list(self._jobs)
        for job in jobs:
            job.cancel()
        await asyncio.gather(*jobs, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    def deliver(self, task: SandboxTask, payload: Any, stale: Any | None = None) -> None:
        """Start delivering ``payload`` (and afterwards the ``stale`` one) in the background."""
        job = asyncio.get_running_loop().create_task(self._run(task, encode(payload), stale))
        self._jobs.add(job)
        job.add_done_callback(self._jobs.discard)

    async def _run(self, task: SandboxTask, body: bytes, stale: Any | None) -> None:
        try:
            await self._final(task, body)
            if stale is not None:
                stale_body = encode(stale)
                headers = sign(task.api, stale_body, self._options())  # another delivery: its own id
                await self._post(task, stale_body, headers, attempt=1, kind="stale")
        finally:
            _settle(task)

    async def _final(self, task: SandboxTask, body: bytes) -> None:
        msg_id = new_webhook_id()  # one delivery: the same webhook-id on every attempt
        for number, delay in enumerate(SCHEDULES[task.api], start=1):
            options = self._options()
            if delay:
                await asyncio.sleep(delay * options.webhook_time_scale)
            headers = sign(task.api, body, options, webhook_id=msg_id)
            attempt = await self._post(task, body, headers, attempt=number, kind="final")
            _settle(task)
            if attempt.ok:
                for _ in range(max(0, self._options().webhook_duplicates)):
                    await self._post(task, body, headers, attempt=number, kind="duplicate")
                return

    async def _post(self, task: SandboxTask, body: bytes, headers: HeaderDict, *,
                    attempt: int, kind: str) -> DeliveryAttempt:
        assert task.webhook_url is not None
        assert self._session is not None
        scale = self._options().webhook_time_scale
        timeout = max(SANDBOX_WEBHOOK_MIN_TIMEOUT, SANDBOX_WEBHOOK_TIMEOUT * scale)
        record = DeliveryAttempt(
            url=task.webhook_url, task_id=task.id, status_code=None, error=None,
            at=asyncio.get_running_loop().time(), body=body, headers=headers,
            attempt=attempt, kind=kind,
        )
        self._log.append(record)
        try:
            async with self._session.post(
                task.webhook_url, data=body,
                headers={_WIRE_NAMES.get(k, k): v for k, v in headers.items()},
                timeout=aiohttp.ClientTimeout(total=timeout), allow_redirects=False,
            ) as response:
                await response.read()
                record.status_code = response.status
        except asyncio.TimeoutError:
            record.error = f"timed out after {timeout:g} s"
        except asyncio.CancelledError:
            record.error = "cancelled: the sandbox closed"
            raise
        # A receiver can fail in any way (bad URL, refused, reset, garbage); none may escape.
        except Exception as exc:  # noqa: BLE001
            record.error = f"{type(exc).__name__}: {exc}"
        return record


def _settle(task: SandboxTask) -> None:
    """Let a submit handler waiting for the first attempt (``sandbox_webhook: early``) go on."""
    if task.first_delivery is not None and not task.first_delivery.done():
        task.first_delivery.set_result(None)
