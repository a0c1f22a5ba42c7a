"""What ``g3w listen`` does with a delivery after acknowledging it: forward, exec, save, replay.

- ``Forwarder`` re-POSTs the original raw body with its Content-Type and signature headers
  (never Authorization, cookies or anything else) to the user's local app, retrying with
  capped exponential backoff and jitter while the app is down (connection errors, timeouts,
  429, 5xx); a 4xx other than 429 is the app's answer and is not retried. Redirects are not
  followed, so a body never goes anywhere the user did not name.
- ``run_exec`` runs a shell command with the event JSON on its stdin.
- ``save_delivery`` writes one delivery as JSON (headers + body, and whether a configured
  secret verified it); ``replay`` sends one again, re-signed with a fresh timestamp when a
  secret is given (Abstrakt's expire) but only when it was saved as verified: re-signing a
  saved forgery would turn it into a validly signed delivery.
aiohttp is used as the client here because webhooks/ must not import get3w_cli.http; its
exceptions never leave this module.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import os
import tempfile
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from aiohttp import ClientError, ClientSession, ClientTimeout

from get3w_cli.constants import (
    FORWARD_BACKOFF_BASE,
    FORWARD_BACKOFF_CAP,
    FORWARD_MAX_ATTEMPTS,
    FORWARD_REPLAY_ATTEMPTS,
    FORWARD_TIMEOUT,
)
from get3w_cli.errors import UsageError, plain_reason
from get3w_cli.payloads import infer_provider
from get3w_cli.retry import NARROW, backoff
from get3w_cli.webhooks.http_common import one_line
from get3w_cli.webhooks.signatures import (
    ABSTRAKT_SIGNATURE_HEADER,
    ABSTRAKT_TIMESTAMP_HEADER,
    GET3W_SIGNATURE_HEADER,
    signature_headers,
)
from get3w_cli.webhooks.standard import (
    WEBHOOK_ID_HEADER,
    WEBHOOK_SIGNATURE_HEADER,
    WEBHOOK_TIMESTAMP_HEADER,
    new_webhook_id,
    signed_version,
    standard_headers,
    webhook_id,
)

FORWARDED_HEADERS = ("Content-Type", GET3W_SIGNATURE_HEADER, ABSTRAKT_SIGNATURE_HEADER, ABSTRAKT_TIMESTAMP_HEADER,
                     WEBHOOK_ID_HEADER, WEBHOOK_TIMESTAMP_HEADER, WEBHOOK_SIGNATURE_HEADER)
# Headers never written to --save files: credentials a stranger (or a proxy) might send, that
# is these and any name containing one of UNSAVED_NAME_PARTS (X-Auth-Token, Client-Secret, ...).
UNSAVED_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key"})
UNSAVED_NAME_PARTS = ("token", "secret", "key")
# ... except the signature headers, which --replay needs (none of them carries a secret).
SAVED_SIGNATURE_HEADERS = frozenset({
    GET3W_SIGNATURE_HEADER.lower(), ABSTRAKT_SIGNATURE_HEADER.lower(), ABSTRAKT_TIMESTAMP_HEADER.lower(),
    WEBHOOK_ID_HEADER, WEBHOOK_TIMESTAMP_HEADER, WEBHOOK_SIGNATURE_HEADER,  # Standard Webhooks (CONTRACT.md 5)
})
_RETRY_STATUSES = frozenset({408, 425, 429})


def forward_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Pick Content-Type and the signature headers (case-insensitively) for a forward."""
    lower = {k.lower(): v for k, v in headers.items()}
    picked = {name: lower[name.lower()] for name in FORWARDED_HEADERS if name.lower() in lower}
    picked.setdefault("Content-Type", "application/json")
    return picked


def backoff_delay(attempt: int, *, base: float = FORWARD_BACKOFF_BASE, cap: float = FORWARD_BACKOFF_CAP) -> float:
    """The pause after failed ``attempt`` (1-based): base * 2^(n-1), capped, with a narrow jitter."""
    return backoff(attempt, base=base, cap=cap, jitter=NARROW)


@dataclass(frozen=True)
class ForwardResult:
    ok: bool
    attempts: int
    status: int | None  # the last HTTP status, None when no answer came
    detail: str  # "HTTP 200", or what went wrong

    def describe(self) -> str:
        tries = f"after {self.attempts} attempt{'s' if self.attempts != 1 else ''}"
        return f"{self.detail} ({tries})"


class Forwarder:
    """POSTs raw deliveries to one URL, retrying while the target is down."""

    def __init__(
        self,
        url: str,
        *,
        max_attempts: int = FORWARD_MAX_ATTEMPTS,
        timeout: float = FORWARD_TIMEOUT,
        delay: Callable[[int], float] = backoff_delay,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        on_retry: Callable[[int, str, float], None] | None = None,
    ) -> None:
        self.url = url
        self._max_attempts, self._timeout = max_attempts, timeout
        self._delay, self._sleep, self._on_retry = delay, sleep, on_retry
        self._session: ClientSession | None = None

    async def __aenter__(self) -> Forwarder:
        self._session = ClientSession(timeout=ClientTimeout(total=self._timeout))
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def send(self, headers: Mapping[str, str], body: bytes) -> ForwardResult:
        """Forward one delivery; retry while the target is down; never raises for HTTP trouble."""
        picked = forward_headers(headers)
        attempt = 0
        while True:
            attempt += 1
            status, detail = await self._post_once(picked, body)
            ok = status is not None and 200 <= status < 300
            retry = status is None or status >= 500 or status in _RETRY_STATUSES
            if ok or not retry or attempt >= self._max_attempts:
                return ForwardResult(ok, attempt, status, detail)
            pause = self._delay(attempt)
            if self._on_retry is not None:
                self._on_retry(attempt, detail, pause)
            await self._sleep(pause)

    async def _post_once(self, headers: dict[str, str], body: bytes) -> tuple[int | None, str]:
        if self._session is None:
            raise RuntimeError("use Forwarder as an async context manager")
        try:
            async with self._session.post(self.url, data=body, headers=headers, allow_redirects=False) as response:
                await response.read()
                return response.status, f"HTTP {response.status}"
        except asyncio.TimeoutError:
            return None, f"no answer within {self._timeout:g}s"
        except (ClientError, OSError, ValueError) as exc:
            return None, one_line(plain_reason(exc))


async def run_exec(command: str, data: bytes, *, stdout: int | None = None) -> int:
    """Run ``command`` in the shell with ``data`` on stdin; return its exit status.

    The command is killed if this coroutine is cancelled (Ctrl-C). A command that cannot be
    started returns 127, like the shell would.
    """
    try:
        proc = await asyncio.create_subprocess_shell(command, stdin=asyncio.subprocess.PIPE, stdout=stdout)
    except OSError:
        return 127
    try:
        await proc.communicate(data)
    except BaseException:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    return proc.returncode if proc.returncode is not None else -1


def saved_record(received_at: str, method: str, path: str, query: str, headers: Mapping[str, str], body: bytes,
                 answered: int, *, verified: bool = False) -> dict[str, object]:
    """The JSON written by --save: the body as text when it is UTF-8, else base64."""
    record: dict[str, object] = {
        "received_at": received_at, "method": method, "path": path, "query": query, "answered": answered,
        "headers": {k: v for k, v in headers.items() if not carries_credential(k)},
    }
    record["verified"] = verified  # --replay --secret re-signs only what was verified
    try:
        record["body"] = body.decode("utf-8")
    except UnicodeDecodeError:
        record["body_base64"] = base64.b64encode(body).decode("ascii")
    return record


def carries_credential(name: str) -> bool:
    """Whether a header named ``name`` may carry a credential (and so is never saved)."""
    lower = name.lower()
    if lower in SAVED_SIGNATURE_HEADERS:
        return False
    return lower in UNSAVED_HEADERS or any(part in lower for part in UNSAVED_NAME_PARTS)


def save_delivery(directory: Path, name: str, record: Mapping[str, object]) -> Path:
    """Write ``record`` as ``directory/name`` atomically (temporary file, then rename)."""
    fd, tmp = tempfile.mkstemp(prefix=".delivery-", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(record, handle, ensure_ascii=False, indent=1)
        target = directory / name
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


@dataclass(frozen=True)
class SavedDelivery:
    headers: dict[str, str]
    body: bytes
    verified: bool | None  # None: saved by a g3w that did not record it
    answered: object  # the HTTP status the listener answered, as saved


def read_saved(path: Path) -> SavedDelivery:
    """Read a --save file back.

    Raises:
        UsageError: the file is missing or is not a saved delivery.
    """
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        headers = record["headers"]
        body = (record["body"].encode("utf-8") if "body" in record
                else base64.b64decode(record["body_base64"], validate=True))
    except (OSError, ValueError, KeyError, TypeError, AttributeError, binascii.Error) as exc:
        raise UsageError(f"cannot replay {path}: not a saved delivery ({plain_reason(exc)})",
                         hint="give a file written by g3w listen --save DIR") from exc
    if not isinstance(headers, dict):
        raise UsageError(f"cannot replay {path}: headers is not an object")
    verified = record.get("verified")
    return SavedDelivery({str(k): str(v) for k, v in headers.items()}, body,
                         verified if isinstance(verified, bool) else None, record.get("answered"))


def load_saved(path: Path) -> tuple[dict[str, str], bytes]:
    """Read a --save file back as (headers, raw body).

    Raises:
        UsageError: the file is missing or is not a saved delivery.
    """
    saved = read_saved(path)
    return saved.headers, saved.body


def _not_resigned_reason(saved: SavedDelivery) -> str | None:
    """Why a saved delivery must be sent as it was saved, not re-signed (None: it may be re-signed)."""
    if saved.verified is True:
        return None
    if saved.verified is None:
        return "the file does not say whether it was verified (saved by an older g3w)"
    if saved.answered == 401:
        return "it was rejected for its signature when it was saved"
    return "it was not verified when it was saved"


def resign(headers: Mapping[str, str], body: bytes, secret: str, provider: str | None = None) -> dict[str, str]:
    """Replace the signature headers with fresh ones made with ``secret``: in the Standard
    Webhooks version the delivery was signed with (same ``webhook-id``), else in its provider's
    own scheme (provider inferred)."""
    stale = {name.lower() for name in FORWARDED_HEADERS[1:]}
    kept = {k: v for k, v in headers.items() if k.lower() not in stale}
    version = signed_version(headers)
    if version is not None:
        return {**kept, **standard_headers(version, secret, body, webhook_id(headers) or new_webhook_id())}
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        payload = None
    who = infer_provider(headers, {}) or provider or infer_provider(headers, payload)
    if who is None:
        return dict(headers)
    return {**kept, **signature_headers(who, secret, body)}


async def replay(path: Path, url: str, *, secret: str | None = None, provider: str | None = None,
                 max_attempts: int = FORWARD_REPLAY_ATTEMPTS,
                 on_not_resigned: Callable[[str], None] | None = None) -> ForwardResult:
    """Send a --save file to ``url`` again (a few attempts while the target is down).

    With ``secret``, a delivery saved as verified is re-signed; anything else is sent as it was
    saved, and ``on_not_resigned`` hears why.

    Raises:
        UsageError: the file is not a saved delivery.
    """
    saved = read_saved(path)
    headers, body = saved.headers, saved.body
    if secret:
        reason = _not_resigned_reason(saved)
        if reason is None:
            headers = resign(headers, body, secret, provider)
        elif on_not_resigned is not None:
            on_not_resigned(reason)
    async with Forwarder(url, max_attempts=max_attempts) as forwarder:
        return await forwarder.send(headers, body)
