"""What tells every g3w process on the machine that a relay runs, and how to reach it.

- ``$G3W_HOME/relay.json`` (mode 0600, written atomically once the relay is reachable): its pid,
  local and public URLs, control port and control secret (``RelayInfo``).
- ``$G3W_HOME/relay.lock``: ``flock``ed by the relay for its whole life. The kernel releases it
  when the relay exits, kill -9 included, so ``running()`` tells without the network whether a
  relay.json is live or stale, and two relays cannot both start.
- ``control()``: one request to the relay's control port (127.0.0.1 only) with the secret:
  ``GET /status``, ``POST /stop``. Standard library only: ``relay status``, ``relay stop`` and
  ``doctor`` load no aiohttp.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from get3w_cli.constants import (
    JOURNAL_DIR_MODE,
    JOURNAL_FILE_MODE,
    RELAY_CONTROL_TIMEOUT,
    RELAY_LOCK_PATIENCE,
    RELAY_LOCK_RETRY,
)
from get3w_cli.errors import ConfigError, TunnelError, UsageError, plain_reason

try:
    import fcntl
except ImportError:  # Windows: no flock; a relay.json is then believed until its relay fails to answer
    fcntl = None  # type: ignore[assignment]

RELAY_FILE = "relay.json"
LOCK_FILE = "relay.lock"
CONTROL_HOST = "127.0.0.1"  # the control port is never bound elsewhere, whatever --host says
_READ_MAX = 64 * 1024  # a control answer or a relay.json is a few hundred bytes


@dataclass(frozen=True)
class RelayInfo:
    """A running relay, as relay.json describes it."""

    pid: int
    local_url: str  # http://host:port, where the relay's public side listens on this machine
    public_url: str  # what borrowers register with the provider (before their token)
    control_port: int  # on 127.0.0.1
    tunnel: str  # how public_url reaches it: ngrok, cloudflared, public-url or local
    started_at: str
    secret: str = field(repr=False)  # the control secret: whoever holds it may borrow or stop

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: object) -> RelayInfo:
        """Raises: ValueError, when ``data`` is not a relay description."""
        if not isinstance(data, dict):
            raise ValueError("not an object")
        try:
            info = cls(pid=int(data["pid"]), local_url=str(data["local_url"]), public_url=str(data["public_url"]),
                       control_port=int(data["control_port"]), tunnel=str(data["tunnel"]),
                       started_at=str(data["started_at"]), secret=str(data["secret"]))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"missing or bad field: {exc}") from exc
        if not (0 < info.control_port < 65536 and info.secret):
            raise ValueError("bad control port or secret")
        return info


def read_info(folder: Path) -> RelayInfo | None:
    """The relay.json in ``folder``, or None (missing, unreadable or garbled: no usable relay)."""
    try:
        with open(folder / RELAY_FILE, "rb") as fh:
            return RelayInfo.from_json(json.loads(fh.read(_READ_MAX)))
    except (OSError, ValueError):
        return None


def write_info(folder: Path, info: RelayInfo) -> None:
    """Write relay.json atomically (a 0600 temporary file renamed over it).

    Raises:
        ConfigError: the state folder cannot be written.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=JOURNAL_DIR_MODE)
        fd, tmp = tempfile.mkstemp(prefix=".relay-", suffix=".json", dir=folder)  # mode 0600
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(info.as_json(), fh)
            os.chmod(tmp, JOURNAL_FILE_MODE)
            os.replace(tmp, folder / RELAY_FILE)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except OSError as exc:
        raise ConfigError(f"cannot write {folder / RELAY_FILE}: {exc.strerror or exc}",
                          hint="check that G3W_HOME is writable") from exc


def remove_info(folder: Path, pid: int) -> None:
    """Remove relay.json if it describes relay ``pid`` (a later relay's file is left alone)."""
    info = read_info(folder)
    if info is not None and info.pid == pid:
        with contextlib.suppress(OSError):
            os.unlink(folder / RELAY_FILE)


def remove_stale(folder: Path) -> bool:
    """Remove a relay.json whose relay is gone; True if one was removed."""
    path = folder / RELAY_FILE
    if not path.exists() or running(folder):
        return False
    with contextlib.suppress(OSError):
        os.unlink(path)
    return not path.exists()


@contextlib.contextmanager
def relay_lock(folder: Path) -> Iterator[None]:
    """Hold the relay lock for the block (the relay's whole life).

    Raises:
        UsageError: another relay holds it (exit 2, naming it).
        ConfigError: the lock file cannot be created.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=JOURNAL_DIR_MODE)
        fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, JOURNAL_FILE_MODE)
    except OSError as exc:
        raise ConfigError(f"cannot create {folder / LOCK_FILE}: {exc.strerror or exc}",
                          hint="check that G3W_HOME is writable") from exc
    try:
        if _have_flock() and not _take(fd):
            info = read_info(folder)
            where = f" (pid {info.pid}, {info.public_url})" if info else ""
            raise UsageError(f"a relay is already running{where}",
                             hint="use it as it is (g3w relay status), or stop it first: g3w relay stop")
        yield
    finally:
        os.close(fd)  # releases the lock


def _have_flock() -> bool:
    return fcntl is not None


def _take(fd: int) -> bool:
    """Take the lock; a prober holding it shared for an instant is waited for, briefly."""
    deadline = time.monotonic() + RELAY_LOCK_PATIENCE
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(RELAY_LOCK_RETRY)


def running(folder: Path) -> bool:
    """Whether a relay holds the lock in ``folder`` (no network; without flock, a relay.json says so)."""
    if not _have_flock():
        return (folder / RELAY_FILE).exists()
    try:
        fd = os.open(folder / LOCK_FILE, os.O_RDONLY)
    except OSError:
        return False  # never made: no relay ever ran here
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)  # also releases the shared lock just taken
    return False


def live_info(folder: Path) -> RelayInfo | None:
    """The running relay's description, or None when none runs (a stale relay.json is ignored)."""
    info = read_info(folder)
    return info if info is not None and running(folder) else None


def control(info: RelayInfo, method: str, path: str, *, timeout: float = RELAY_CONTROL_TIMEOUT) -> dict[str, Any]:
    """One request to the relay's control port; its JSON answer.

    Raises:
        TunnelError: kind "relay_unreachable": no answer, or not a 200 with JSON.
    """
    conn = http.client.HTTPConnection(CONTROL_HOST, info.control_port, timeout=timeout)
    try:
        conn.request(method, path, headers={"Authorization": f"Bearer {info.secret}"})
        response = conn.getresponse()
        status, body = response.status, response.read(_READ_MAX)
    except (OSError, http.client.HTTPException) as exc:
        raise unreachable(info, plain_reason(exc)) from exc
    finally:
        conn.close()
    try:
        answer = json.loads(body) if status == 200 else None
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        raise unreachable(info, f"it answered HTTP {status}")
    return answer


def unreachable(info: RelayInfo, why: str) -> TunnelError:
    return TunnelError(f"the relay (pid {info.pid}) does not answer on {CONTROL_HOST}:{info.control_port} ({why})",
                       kind="relay_unreachable",
                       hint="see `g3w relay status`; restart it with `g3w relay`, or pass --no-relay")


def describe(folder: Path) -> dict[str, Any]:
    """What ``relay status --json`` says: ``{"alive": false}`` (with an ``error`` when a relay holds
    the lock but does not answer), or the running relay's description (no secret) and borrowers."""
    info = live_info(folder)
    if info is None:
        remove_stale(folder)
        return {"alive": False}
    try:
        answer = control(info, "GET", "/status")
    except TunnelError as exc:
        return {"alive": False, "pid": info.pid, "error": exc.message}
    return {"alive": True, **{k: v for k, v in info.as_json().items() if k != "secret"},
            "clients": answer.get("clients"), "forwarded": answer.get("forwarded")}
