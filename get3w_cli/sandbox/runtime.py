"""The live state of one sandbox server, shared by its route handlers through the app."""

from __future__ import annotations

from collections import deque
from typing import Any

from get3w_cli.sandbox.catalogue import Model
from get3w_cli.sandbox.common import bad_input, reject
from get3w_cli.sandbox.control import Injection
from get3w_cli.sandbox.logs import DeliveryAttempt, LoggedRequest
from get3w_cli.sandbox.options import SandboxOptions
from get3w_cli.sandbox.persist import StateFile
from get3w_cli.sandbox.shapes import ABSTRAKT, V3, stale_payload, webhook_payload
from get3w_cli.sandbox.state import SandboxTask, TaskStore, parse_controls
from get3w_cli.sandbox.webhooks import Deliverer

_TOO_MANY = {V3: "Too many concurrent tasks"}


class Runtime:
    """Tasks, logs, injections, uploads and the webhook sender of one sandbox."""

    def __init__(self, options: SandboxOptions) -> None:
        self.options = options
        self.base_url = ""
        self.requests: list[LoggedRequest] = []
        self.deliveries: list[DeliveryAttempt] = []
        self.injections: list[Injection] = []
        self.uploads: dict[str, tuple[bytes, str]] = {}
        self.rate_hits: dict[str, deque[float]] = {}
        self.store = TaskStore(self._on_terminal, self._on_change)
        self.state_file: StateFile | None = None  # set by Sandbox.start() with options.state_file
        self.deliverer = Deliverer(lambda: self.options, self.deliveries)

    def new_task(self, *, flavor: str, model: Model, inputs: dict[str, Any], key: str,
                 webhook_url: str | None) -> SandboxTask:
        """Admit and start a task, or raise the API's 400 (bad controls) or 429 (too many)."""
        try:
            controls = parse_controls(inputs, self.options.duration * model.duration_factor)
        except ValueError as exc:
            raise bad_input(flavor, str(exc)) from exc
        limit = self.options.max_concurrent
        if limit is not None and self.store.active_for_key(key) >= limit:
            retry_after = self.options.retry_after
            message = _TOO_MANY.get(flavor, "Rate limit exceeded")
            if flavor == ABSTRAKT:
                message = f"Rate limit exceeded. Retry after {retry_after:g} seconds."
            raise reject(flavor, 429, message, retry_after=retry_after)
        return self.store.create(api=flavor, model=model.id, inputs=inputs, key=key,
                                 controls=controls, webhook_url=webhook_url)

    async def settle_early(self, task: SandboxTask) -> None:
        """For ``sandbox_webhook: early``: wait until the first delivery attempt is over."""
        if task.first_delivery is not None:
            await task.first_delivery

    def _on_change(self, task: SandboxTask) -> None:
        if self.state_file is not None:
            self.state_file.changed(task)

    def _on_terminal(self, task: SandboxTask) -> None:
        if not task.webhook_url or task.controls.webhook == "drop":
            return
        now = self.store.now()
        payload = webhook_payload(task, self.base_url, now)
        stale = None
        if task.controls.webhook == "late_processing":
            stale = stale_payload(task, self.base_url, now)
        self.deliverer.deliver(task, payload, stale)

    def reset(self) -> None:
        """Forget the logs and pending injections; tasks and uploads stay."""
        self.requests.clear()
        self.deliveries.clear()
        self.injections.clear()
        self.rate_hits.clear()
