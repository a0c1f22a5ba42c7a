"""The owner of one callback token: how every request to ``/<token>/...`` is answered.

Whichever server carried the request (the ephemeral listener of run/batch, or the relay that
many g3w processes share), it is answered here, by the process that waits for the task: the
same classification (``delivery.Classifier``, shared with ``g3w listen``), the same
de-duplication (the ``Inbox``), the same answer. Nothing here does I/O: a server reads the
request, calls ``answer`` and writes the ``Reply`` back.

A ``GET /<token>/_probe/<nonce>`` is the end-to-end probe (``listener.check_reachable``): the
nonce is remembered and echoed. Rejections are counted in ``stats`` and logged at debug level;
a signature rejection is reported to the inbox, whose waiters say so through their own notify.
"""

from __future__ import annotations

import hmac
import json
import logging
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from get3w_cli.constants import WEBHOOK_PROBES_MAX, WEBHOOK_TOKEN_BYTES
from get3w_cli.errors import plain_reason
from get3w_cli.webhooks.delivery import NEW, STALE, Classifier
from get3w_cli.webhooks.inbox import Inbox

log = logging.getLogger("g3w.webhooks")

PROBE_SEGMENT = "_probe"


@dataclass
class ListenerStats:
    """Counters of what was done with requests that carried the token."""

    received: int = 0  # POSTs at the token path, before any check
    accepted: int = 0  # queued in the inbox
    duplicates: int = 0  # acknowledged, not queued (duplicate or stale)
    rejected_signature: int = 0  # 401
    rejected_other: int = 0  # 400, 405, 413, 422, 500


@dataclass(frozen=True)
class Reply:
    """An HTTP answer, as bytes, for whichever server carries it back."""

    status: int
    body: bytes
    content_type: str = "application/json"
    headers: Mapping[str, str] = field(default_factory=dict)


def json_answer(status: int, headers: Mapping[str, str] | None = None, **body: object) -> Reply:
    """A small JSON answer; never carries internals (no exception text, no traceback)."""
    return Reply(status, json.dumps(body).encode(), headers=dict(headers or {}))


NOT_FOUND = json_answer(404, error="not found")


def new_token() -> str:
    """A fresh callback token: WEBHOOK_TOKEN_BYTES random bytes, URL-safe."""
    return secrets.token_urlsafe(WEBHOOK_TOKEN_BYTES)


class CallbackEndpoint:
    """Answers the requests at ``/<token>/...`` for the waiters behind ``inbox``."""

    def __init__(
        self,
        inbox: Inbox,
        *,
        secrets: Mapping[str, str] | None = None,  # provider -> webhook secret
        token: str | None = None,
        provider_hint: str | None = None,
    ) -> None:
        self.inbox = inbox
        self.token = token if token is not None else new_token()
        self.provider_hint = provider_hint
        self.stats = ListenerStats()
        self.probes: set[str] = set()
        self._classifier = Classifier(secrets, provider=provider_hint)

    def __repr__(self) -> str:  # the token is a credential: keep it out of logs
        return "<CallbackEndpoint>"

    def callback_url(self, base: str) -> str:
        """``base`` (no trailing slash needed) + "/" + token."""
        return f"{base.rstrip('/')}/{self.token}"

    def rest_of(self, path: str) -> str | None:
        """The path after ``/<token>`` ("" for none), or None when the token is wrong (a 404)."""
        first, _, rest = path.lstrip("/").partition("/")
        if not hmac.compare_digest(first.encode("utf-8", "replace"), self.token.encode("utf-8")):
            return None
        return rest

    def answer(self, method: str, rest: str, headers: Mapping[str, str], body: bytes | None) -> Reply:
        """Answer one request whose token was right; ``rest`` is the path after it.

        ``body`` is the whole body of a POST, or None when it was over the size limit (the server
        stopped reading it); other methods carry none.
        """
        probe = rest.split("/")
        if method == "GET" and len(probe) == 2 and probe[0] == PROBE_SEGMENT and probe[1]:
            return self._probe(probe[1])
        if method != "POST":
            self.stats.rejected_other += 1
            return json_answer(405, {"Allow": "POST"}, error="method not allowed")
        self.stats.received += 1
        if body is None:
            return self._reject(413, "body too large")
        examined = self._classifier.examine(headers, body, received_at=time.time())
        if examined.status == 401:
            self.stats.rejected_signature += 1
            self.inbox.signature_rejected()
            log.debug("webhook rejected (401): %s", examined.reason)
            return json_answer(401, error=examined.reason)
        if examined.delivery is None:
            return self._reject(examined.status, examined.reason)
        verdict = self.inbox.offer(examined.delivery)
        if verdict != NEW:
            self.stats.duplicates += 1
            if verdict == STALE:
                return json_answer(200, received=True, stale=True)
            return json_answer(200, received=True, duplicate=True)
        self.stats.accepted += 1
        return json_answer(200, received=True)

    def internal_error(self, exc: Exception) -> None:
        """A server's handler failed on a request for this token (the sender got a 500)."""
        self.stats.rejected_other += 1
        log.error("webhook handler failed: %s", plain_reason(exc))
        log.debug("webhook handler traceback", exc_info=exc)

    def _probe(self, nonce: str) -> Reply:
        if len(self.probes) >= WEBHOOK_PROBES_MAX:
            self.probes.clear()
        self.probes.add(nonce)
        return Reply(200, nonce.encode(), content_type="text/plain")

    def _reject(self, status: int, reason: str) -> Reply:
        self.stats.rejected_other += 1
        # Not a warning: it would be printed over the progress display of the run.
        log.debug("webhook rejected (%s): %s", status, reason)
        return json_answer(status, error=reason)
