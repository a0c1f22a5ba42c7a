"""What the sandbox saw and did: the request log and the webhook delivery log.

Tests (and users of ``g3w sandbox`` through ``GET /_sandbox/requests``) assert on these, e.g.
"no Authorization header reached the output host" or "the callback was retried twice".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


class HeaderDict(dict):  # type: ignore[type-arg]
    """A plain ``dict`` of header names to values whose lookups ignore case.

    Names are stored lower-cased, so ``"authorization" in headers`` and
    ``headers["X-Get3W-Signature"]`` both work (``[]``, ``get``, ``in`` and item assignment),
    and the dict still serialises as JSON.
    """

    def __init__(self, items: Mapping[str, str] | Iterable[tuple[str, str]] = ()) -> None:
        pairs = items.items() if isinstance(items, Mapping) else items
        super().__init__((str(k).lower(), str(v)) for k, v in pairs)

    def __setitem__(self, name: str, value: str) -> None:
        super().__setitem__(str(name).lower(), value)

    def __getitem__(self, name: object) -> str:
        return super().__getitem__(str(name).lower())  # type: ignore[no-any-return]

    def __contains__(self, name: object) -> bool:
        return super().__contains__(str(name).lower())

    def get(self, name: object, default: Any = None) -> Any:
        return super().get(str(name).lower(), default)


@dataclass
class LoggedRequest:
    """One HTTP request the sandbox received (admin ``/_sandbox/`` calls are not logged)."""

    method: str
    path: str
    query: dict[str, str]
    headers: HeaderDict
    body: bytes
    at: float  # event loop clock (monotonic seconds)

    def as_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "path": self.path,
            "query": dict(self.query),
            "headers": dict(self.headers),
            "body": self.body.decode("utf-8", errors="replace"),
            "at": self.at,
        }


@dataclass
class DeliveryAttempt:
    """One webhook POST the sandbox made (or tried to make).

    ``kind`` is ``"final"`` for the terminal callback and its retries, ``"duplicate"`` for the
    extra copies of ``webhook_duplicates``, ``"stale"`` for the late ``processing`` callback.
    """

    url: str
    task_id: str
    status_code: int | None
    error: str | None
    at: float  # event loop clock when the attempt started
    body: bytes
    headers: HeaderDict = field(default_factory=HeaderDict)
    attempt: int = 1
    kind: str = "final"

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    def as_json(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "task_id": self.task_id,
            "status_code": self.status_code,
            "error": self.error,
            "at": self.at,
            "body": self.body.decode("utf-8", errors="replace"),
            "headers": dict(self.headers),
            "attempt": self.attempt,
            "kind": self.kind,
        }
