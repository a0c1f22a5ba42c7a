"""The g3w error tree: every failure the tool can report, with its exit code and a hint.

    G3wError                       70 unless a subclass says otherwise
    ├── UsageError                  2  bad flags or input; nothing was sent
    ├── ConfigError                 3  missing key, bad config file
    ├── JournalError                3  the local journal (history.db) cannot be opened, read or written
    ├── ApiError                       an HTTP error answer from a provider
    │   ├── AuthError               3  401, 403, insufficient balance / quota
    │   ├── RejectedError           5  400, 404, 409, 422
    │   └── TransientError          6  429 and 5xx that outlasted the retries
    ├── NetworkError                6  connection trouble that outlasted the retries
    │   └── SubmitUnknownError      6  a submit whose fate is unknown (never resubmitted)
    ├── JournalWriteError           6  a submitted task could not be journalled (its record was shown)
    ├── TaskFailedError             1  the provider reports failed / cancelled
    ├── WaitTimeoutError            4  the wait ran out; the task may still run
    ├── NotFinishedError            4  not finished yet, so nothing to download (g3w download)
    ├── InterruptedByUser         130  Ctrl-C / SIGTERM
    ├── WebhookSetupError           7  listener or tunnel could not be set up
    │   ├── ListenerError
    │   └── TunnelError
    ├── DownloadError               8  completed, but an output could not be downloaded
    └── BatchIncompleteError        9  some batch lines did not complete

``error_for_status`` picks the ApiError subclass for an HTTP status (used by the HTTP layer and
the v3 envelope). Only the CLI boundary turns these into messages and exit codes. Foreign exceptions
(httpx, aiohttp, pyngrok) are translated into this tree by the module that owns them.
"""

from __future__ import annotations

import re
from enum import IntEnum
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

if TYPE_CHECKING:
    from get3w_cli.records import Task


class ExitCode(IntEnum):
    """The exit codes of CONTRACT.md section 3."""

    OK = 0
    TASK_FAILED = 1
    USAGE = 2
    CONFIG = 3
    TIMEOUT = 4
    REJECTED = 5
    TRANSIENT = 6
    WEBHOOK = 7
    DOWNLOAD = 8
    BATCH_INCOMPLETE = 9
    INTERNAL = 70
    INTERRUPTED = 130


class G3wError(Exception):
    """Base of every error g3w reports on purpose."""

    exit_code: ClassVar[ExitCode] = ExitCode.INTERNAL
    default_hint: ClassVar[str | None] = None

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint if hint is not None else self.default_hint

    def __str__(self) -> str:
        return self.message


class UsageError(G3wError):
    exit_code = ExitCode.USAGE


class ConfigError(G3wError):
    exit_code = ExitCode.CONFIG


class JournalError(G3wError):
    """The journal (SQLite under G3W_HOME) failed; every sqlite3 error becomes one of these.

    The default hint names only G3W_HOME: a write that fails after a submit must not suggest
    ``--no-history`` (that would invite submitting again); such callers give their own hint.
    """

    exit_code = ExitCode.CONFIG
    default_hint = "check that G3W_HOME (where history.db lives) is a writable folder with free space"


class ProviderNames(Protocol):
    """What a hint says of the provider that answered (``names.ProviderFacts``)."""

    @property
    def provider(self) -> str: ...
    @property
    def title(self) -> str: ...
    @property
    def key_env(self) -> str: ...


class ApiError(G3wError):
    """An error answer from a provider's API; ``about``: that provider, when known."""

    exit_code = ExitCode.REJECTED

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        retry_after: float | None = None,
        details: Any = None,
        hint: str | None = None,
        about: ProviderNames | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.code = code
        self.retry_after = retry_after
        self.details = details
        self.about = about


_NO_FUNDS = re.compile(r"balance|quota|credit", re.IGNORECASE)


class AuthError(ApiError):
    """401, 402, 403: a key refused, or an account without funds; the hint names that provider's key."""

    exit_code = ExitCode.CONFIG
    default_hint = ("check the API key (g3w config set get3w.api_key ..., or GET3W_API_KEY / ABSTRAKT_API_KEY) "
                    "and the account balance")

    def __init__(self, message: str, *, hint: str | None = None, about: ProviderNames | None = None,
                 **fields: Any) -> None:
        super().__init__(message, hint=hint, about=about, **fields)
        if hint is None and about is not None:
            self.hint = self._hint_for(about)

    @property
    def no_funds(self) -> bool:
        """The account ran out (Get3W: 403 "Insufficient balance"; Abstrakt: QUOTA_EXCEEDED)."""
        return self.status == 402 or bool(_NO_FUNDS.search(f"{self.code or ''} {self.message}"))

    def _hint_for(self, about: ProviderNames) -> str:
        setting = f"g3w config set {about.provider}.api_key ..."
        if self.no_funds:
            left = "; g3w balance shows what is left" if about.provider == "get3w" else ""
            return f"top up the {about.title} account{left}"
        if self.status == 403:
            return f"the {about.title} key ({about.key_env} or {setting}) may not do this; check its permissions"
        return f"check the {about.title} API key: {about.key_env}, {setting}, or --api-key"


class RejectedError(ApiError):
    exit_code = ExitCode.REJECTED
    default_hint = "check the model name and the inputs"


class TransientError(ApiError):
    exit_code = ExitCode.TRANSIENT
    default_hint = "the provider is busy or failing; try again later"


class NetworkError(G3wError):
    exit_code = ExitCode.TRANSIENT
    default_hint = "check the network connection and the base URL"


class SubmitUnknownError(NetworkError):
    """The submit request was sent but no usable answer came: a task may or may not exist."""

    default_hint = (
        "a task may exist and may be billed: it was journalled as unknown and not resubmitted; "
        "look for it in `g3w history` or the provider's dashboard rather than resubmitting blindly"
    )


class JournalWriteError(G3wError):
    """A task exists at the provider but its journal row could not be written."""

    exit_code = ExitCode.TRANSIENT

    def __init__(self, task_id: str, reason: str) -> None:
        super().__init__(
            f"task {task_id} could not be recorded in the journal ({reason})",
            hint=f"the task is not lost and must not be submitted again: its record is printed; "
                 f"follow it with `g3w wait {task_id}` once the journal (G3W_HOME) is writable",
        )
        self.task_id = task_id


class TaskFailedError(G3wError):
    exit_code = ExitCode.TASK_FAILED

    def __init__(self, task: Task, *, hint: str | None = None) -> None:
        reason = f": {task.error.message}" if task.error else ""
        super().__init__(f"task {task.id} {task.status.value}{reason}", hint=hint)
        self.task = task


class WaitTimeoutError(G3wError):
    exit_code = ExitCode.TIMEOUT

    def __init__(self, task_id: str, *, cancelled: bool = False, task: Task | None = None) -> None:
        what = "cancelled it" if cancelled else "it may still be running"
        super().__init__(
            f"timed out waiting for task {task_id}; {what}",
            hint=None if cancelled else f"resume with: g3w wait {task_id}",
        )
        self.task_id = task_id
        self.cancelled = cancelled
        self.task = task  # the last snapshot seen, when known


class NotFinishedError(G3wError):
    """The task has not finished (``g3w download``): nothing to fetch yet, and it may still run."""

    exit_code = ExitCode.TIMEOUT


class InterruptedByUser(G3wError):
    exit_code = ExitCode.INTERRUPTED

    def __init__(self, message: str = "interrupted", *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)


class WebhookSetupError(G3wError):
    exit_code = ExitCode.WEBHOOK


class ListenerError(WebhookSetupError):
    default_hint = "choose another --listen-port / --port, or use --via poll"


class TunnelError(WebhookSetupError):
    """A tunnel could not be opened. ``kind`` classifies why, for tests and fallbacks."""

    def __init__(self, message: str, *, kind: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.kind = kind


class DownloadError(G3wError):
    exit_code = ExitCode.DOWNLOAD
    default_hint = "the output URLs are printed above; fetch them yourself or retry with g3w wait <id> -o DIR"

    def __init__(self, message: str, *, urls: tuple[str, ...] = (), hint: str | None = None,
                 status: int | None = None) -> None:
        super().__init__(message, hint=hint)
        self.urls = urls
        self.status = status  # the output host's HTTP status, when it answered with an error


class BatchIncompleteError(G3wError):
    exit_code = ExitCode.BATCH_INCOMPLETE


def error_for_status(
    status: int,
    message: str,
    *,
    code: str | None = None,
    retry_after: float | None = None,
    details: Any = None,
    about: ProviderNames | None = None,
) -> ApiError:
    """The ApiError subclass for an HTTP (or v3 envelope) status: 401/402/403 auth, 429/5xx transient."""
    hint = None
    if status in (401, 402, 403):
        cls: type[ApiError] = AuthError
    elif status == 429 or status >= 500:
        cls = TransientError
    else:
        cls = RejectedError
        if 300 <= status < 400:
            hint = "the API answered with a redirect; check the base URL"
    return cls(message, status=status, code=code, retry_after=retry_after, details=details, hint=hint, about=about)


_ERRNO = re.compile(r"\[Errno -?\d+\]\s*")


def without_errno(text: str) -> str:
    """``text`` without Python's ``[Errno N]`` markers (a message quoting an exception's text)."""
    return _ERRNO.sub("", text)


def plain_reason(exc: BaseException) -> str:
    """Why ``exc`` happened, as words for a message: an OSError's own sentence ("permission
    denied"), else its text without ``[Errno N]``; never a Python class name."""
    if isinstance(exc, KeyError) and exc.args:
        return f"no {exc.args[0]!r}"
    strerror = exc.strerror if isinstance(exc, OSError) else None
    text = without_errno(str(strerror or exc)).strip()
    if not text:
        return "no details given"
    # "Permission denied" reads as part of the sentence it ends; "ERR_NGROK_108 ..." keeps its case.
    return text[0].lower() + text[1:] if text[1:2].islower() else text
