"""The process-wide registry of secret values, and ``redact`` to keep them out of what is printed.

g3w registers every secret as soon as it learns it (API keys, webhook secrets and the ngrok
authtoken when settings are resolved; each callback token when its listener is made). The CLI
passes everything it prints that it did not write itself (log records, error messages, the
``--debug`` traceback) through ``redact``, so that output is safe to paste into a bug report.
``known`` lists what is masked, and ``watch`` tells a listener each new form as it is registered,
for CI logs that mask secrets themselves (GitHub's ``::add-mask::``) before they could appear.

The bottom layer: imports nothing of the package, so any layer may register a secret.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from urllib.parse import quote, quote_plus

# The mask the tunnel already puts over an authtoken that ngrok echoes; no brackets, so that
# rich never takes it for markup.
MASK = "***"
# Shorter values are not secrets worth masking (a test's "t"), and masking them would garble
# ordinary words in the output, and give the value away by where the gaps fall.
MIN_SECRET_LENGTH = 6

_lock = threading.Lock()
_secrets: set[str] = set()
# Every form of every secret, longest first (so that a secret containing another is masked
# whole); replaced as a whole tuple, so readers in other threads never see a half-made one.
_forms: tuple[str, ...] = ()
_pattern: re.Pattern[str] | None = None
# Called with the new forms of each newly registered secret (outside the lock).
_watchers: list[Callable[[tuple[str, ...]], None]] = []


def _forms_of(value: str) -> set[str]:
    """The value as written, and as it appears in a URL (query or path) or a JSON string."""
    return {value, quote(value, safe=""), quote(value), quote_plus(value), json.dumps(value)[1:-1]}


def register(value: str | None) -> None:
    """Remember ``value`` as a secret; empty, missing and very short values are ignored."""
    global _forms, _pattern  # noqa: PLW0603 - the module-wide registry is replaced whole, under its lock
    if not isinstance(value, str) or len(value) < MIN_SECRET_LENGTH:
        return  # (a config file may hold a number where a key belongs: that is for others to report)
    with _lock:
        if value in _secrets:
            return
        _secrets.add(value)
        new = _forms_of(value) - set(_forms)
        forms = set(_forms) | new
        ordered = tuple(sorted(forms, key=lambda form: (-len(form), form)))
        _pattern = re.compile("|".join(re.escape(form) for form in ordered))
        _forms = ordered
        watchers = tuple(_watchers)
    for watcher in watchers:
        watcher(tuple(sorted(new, key=lambda form: (-len(form), form))))


def redact(text: str) -> str:
    """``text`` with every registered secret (in every form) replaced by ``MASK``."""
    pattern = _pattern
    return pattern.sub(MASK, text) if pattern is not None else text


def watch(watcher: Callable[[tuple[str, ...]], None]) -> Callable[[], None]:
    """Call ``watcher`` with the new forms of every secret registered from now on; return the
    function that stops it."""
    with _lock:
        _watchers.append(watcher)

    def stop() -> None:
        with _lock:
            if watcher in _watchers:
                _watchers.remove(watcher)

    return stop


def known() -> tuple[str, ...]:
    """Every string ``redact`` masks: each registered secret and its encoded forms, longest first."""
    return _forms
