"""The one classification of a webhook delivery, shared by both servers (CONTRACT.md section 5).

The ephemeral listener of run/batch and ``g3w listen`` answer a delivery the same way because
both go through here: ``Classifier.examine`` parses, attributes and verifies it; ``Deduper``
says whether it is new, a duplicate or stale.

- **A configured secret is never bypassed.** When any secret is configured, a delivery that no
  configured secret verifies (each secret under every scheme of its provider) is rejected
  (401), whatever provider its headers or body claim.
- **The receiver decides the provider, never the sender.** A verified delivery belongs to a
  provider whose secret verified it (the receiver's own provider first when it is one of them);
  ``verified_by`` lists them all, so that a waiter trusts it only for a task of one of those
  providers. With no secret at all nothing is verified, and the provider (the receiver's,
  else a guess from the payload) only says how to parse a delivery that proves nothing.
- **De-duplication** (same provider, task id and status; or same provider and ``webhook-id``,
  the Standard Webhooks identity of one delivery across its retries, whatever the body): only
  deliveries that count make later ones duplicates: verified ones, ones the waiter confirmed
  (``confirm``), and, where there is nothing to confirm with (``g3w listen`` without any
  secret), unverified ones; so a forgery never masks a genuine delivery. A non-final status
  after the task's final one is stale; after the waiter confirms a final status, everything
  about the task is a duplicate.
Memory is bounded (WEBHOOK_DEDUPE_MAX keys of each kind, oldest forgotten first).
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field

from get3w_cli.constants import WEBHOOK_DEDUPE_MAX
from get3w_cli.payloads import PayloadError, callback_task, infer_provider
from get3w_cli.records import Status, Task
from get3w_cli.webhooks.signatures import verifying_providers
from get3w_cli.webhooks.standard import webhook_id

NEW, DUPLICATE, STALE = "new", "duplicate", "stale"


@dataclass(frozen=True)
class Delivery:
    """One webhook request that passed the checks (parsed, attributed, verified when it could be)."""

    received_at: float  # time.time()
    provider: str | None  # the provider it was parsed as ("get3w" | "abstrakt"); None: unknown
    task: Task | None  # parsed with payloads.callback_task; None if unparseable
    verified: bool  # True only when a configured secret verified it
    headers: Mapping[str, str]
    body: bytes
    payload: object  # parsed JSON
    # The providers whose secrets verified it; by default {provider} when verified.
    verified_by: frozenset[str] = field(default=frozenset())

    def __post_init__(self) -> None:
        if self.verified and not self.verified_by and self.provider:
            object.__setattr__(self, "verified_by", frozenset({self.provider}))

    @property
    def webhook_id(self) -> str | None:
        """The Standard Webhooks ``webhook-id`` header: the same for every retry of one delivery."""
        return webhook_id(self.headers)

    def trusted_for(self, provider: str) -> bool:
        """Whether the secret of ``provider`` (the provider of the task waited for) verified it."""
        return self.verified and provider in self.verified_by


@dataclass(frozen=True)
class Examined:
    """What a server answers to a delivery, and the delivery when it is acceptable."""

    status: int  # the HTTP answer: 200, or 400 not JSON, 401 signature, 422 not a task
    reason: str  # why, for a rejection; "ok" otherwise
    delivery: Delivery | None  # set only when status is 200
    verified: bool = False  # whether a configured secret verified it (for --save)


class Classifier:
    """Parses, attributes and verifies deliveries for one server (its secrets and provider)."""

    def __init__(
        self,
        secrets: Mapping[str, str] | None = None,  # provider -> webhook secret
        *,
        provider: str | None = None,  # the receiver's own provider, when it has one
        now: Callable[[], float] = time.time,
    ) -> None:
        self._secrets = {k: v for k, v in (secrets or {}).items() if v}
        self._provider = provider
        self._now = now

    @property
    def has_secrets(self) -> bool:
        return bool(self._secrets)

    def examine(self, headers: Mapping[str, str], body: bytes, *, received_at: float) -> Examined:
        """Classify one delivery: 400 not JSON, 401 no configured secret verifies it, 422 not a task."""
        try:
            payload = json.loads(body)
        except (ValueError, RecursionError):
            return Examined(400, "body is not JSON", None)
        if not isinstance(payload, dict):
            return Examined(400, "body is not a JSON object", None)
        verified_by = (verifying_providers(self._secrets, headers, body, now=self._now()) if self._secrets
                       else frozenset())
        if self._secrets and not verified_by:
            return Examined(401, "bad or missing signature (no configured secret verifies it)", None)
        candidates = self._candidates(headers, payload, verified_by)
        if not candidates:
            return Examined(422, "not a task payload (no id and status, or job_id)", None, bool(verified_by))
        for provider in candidates:
            try:
                task = callback_task(payload, provider=provider)
            except PayloadError:
                continue
            delivery = Delivery(received_at, provider, task, bool(verified_by), dict(headers), body, payload,
                                verified_by)
            return Examined(200, "ok", delivery, bool(verified_by))
        return Examined(422, f"not a {' or '.join(candidates)} task payload", None, bool(verified_by))

    def _candidates(self, headers: Mapping[str, str], payload: object, verified_by: frozenset[str]) -> list[str]:
        """The providers to parse the payload as, best first."""
        if not verified_by:
            # Nothing is verified: the provider only says how to parse a hint.
            guess = self._provider or infer_provider(headers, payload)
            return [guess] if guess else []
        # Every candidate's secret verified it; among them the receiver's own provider comes
        # first, then (only as a tie-break between verified ones) what the delivery looks like.
        preferred = [p for p in (self._provider, infer_provider(headers, payload)) if p in verified_by]
        return list(dict.fromkeys([*preferred, *sorted(verified_by)]))


class _Bounded(OrderedDict):  # type: ignore[type-arg]
    """An insertion-ordered dict that forgets its oldest entries beyond ``limit``."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def remember(self, key: Hashable, value: object) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.limit:
            self.popitem(last=False)


class Deduper:
    """New, duplicate or stale: the one de-duplication of both servers (rules in the module doc)."""

    def __init__(self, *, count_unverified: bool = False, limit: int = WEBHOOK_DEDUPE_MAX) -> None:
        self._count_unverified = count_unverified
        self._seen = _Bounded(limit)  # (provider, id, status) of counted deliveries
        self._hooks = _Bounded(limit)  # (provider, webhook-id) of counted deliveries
        self._final = _Bounded(limit)  # (provider, id) -> the final Status of a counted delivery
        self._confirmed = _Bounded(limit)  # (id, status) the waiter confirmed
        self._settled = _Bounded(limit)  # id -> the final Status the waiter confirmed

    def classify(self, delivery: Delivery) -> str:
        """NEW, DUPLICATE or STALE; a NEW delivery that counts is remembered.

        Raises:
            ValueError: the delivery has no parsed task.
        """
        task = delivery.task
        if task is None:
            raise ValueError("a delivery without a task cannot be classified")
        provider = delivery.provider or ""
        if task.id in self._settled or (task.id, task.status) in self._confirmed:
            return DUPLICATE
        if (provider, task.id) in self._final and not task.status.terminal:
            return STALE
        if not (delivery.verified or self._count_unverified):
            return NEW
        hook = delivery.webhook_id
        if hook is not None:
            if (provider, hook) in self._hooks:
                return DUPLICATE  # a retry of a delivery already counted, whatever its body
            self._hooks.remember((provider, hook), None)
        key = (provider, task.id, task.status)
        if key in self._seen:
            return DUPLICATE
        self._seen.remember(key, None)
        if task.status.terminal:
            self._final.remember((provider, task.id), task.status)
        return NEW

    def confirm(self, task_id: str, status: Status) -> None:
        """The waiter confirmed ``status`` (by a GET or a trusted callback)."""
        self._confirmed.remember((task_id, status), None)
        if status.terminal:
            self._settled.remember(task_id, status)

    def settled(self, task_id: str) -> bool:
        """Whether the waiter confirmed a final status for ``task_id``."""
        return task_id in self._settled
