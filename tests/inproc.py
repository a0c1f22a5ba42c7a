"""The CLI app run in-process: what a fresh ``g3w`` process does, without paying for its start-up.

Any command can run here, network I/O included: the CLI's one ``asyncio.run`` runs in the
test's main thread while a ``ThreadedSandbox`` (or a stand-in server) answers from its own
thread. Keep real subprocesses (``conftest.g3w``) for what needs a process boundary: the console
script itself, signals, terminals, kill -9, rlimits, a closed pipe, start-up probes, and a
``g3w listen`` that serves while the test reads its output line by line.

Each call starts from what a new process would have: Python's default warning filters (not
the suite's "error": a library's ResourceWarning is silent in a real g3w process, and must not
become an exit 70 here), an empty registry of secrets to mask, no memo of swept download
folders; the logging set-up and all of these are put back afterwards, so no call sees what an
earlier one (or an earlier test) left behind, and none leaves anything.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from conftest import Result
from typer.testing import CliRunner

from get3w_cli import downloads, redaction
from get3w_cli.cli.app import app

# Python's default filters for a process started without -W or PYTHONWARNINGS.
_IGNORED_BY_DEFAULT = (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning)


@contextmanager
def _fresh_process_state() -> Iterator[None]:
    root, pyngrok = logging.getLogger(), logging.getLogger("pyngrok")
    handlers, level, pyngrok_level = root.handlers[:], root.level, pyngrok.level
    # redaction keeps its registry in module globals (a process runs one command): a command
    # starts with it empty, as in a new process, and the test's own registrations come back after.
    registry = (set(redaction._secrets), redaction._forms, redaction._pattern)
    _set_registry(set(), (), None)
    downloads._swept.clear()
    try:
        with warnings.catch_warnings():
            warnings.resetwarnings()
            for category in _IGNORED_BY_DEFAULT:
                warnings.simplefilter("ignore", category)
            yield
    finally:
        root.handlers[:], root.level = handlers, level
        pyngrok.setLevel(pyngrok_level)
        _set_registry(*registry)
        downloads._swept.clear()


def _set_registry(secrets: set[str], forms: tuple[str, ...], pattern: re.Pattern[str] | None) -> None:
    with redaction._lock:
        redaction._secrets.clear()
        redaction._secrets.update(secrets)
        redaction._forms, redaction._pattern = forms, pattern


def invoke(*args: str, env: dict[str, str] | None = None, input: str | None = None) -> Result:
    """Run ``g3w ARGS`` in this process; stdout and stderr kept apart, exit code as the process's.

    An exception that escapes the CLI (its boundary turns every one into exit 70) is raised here,
    so that a bug in the test's harness is never mistaken for an exit code.
    """
    with _fresh_process_state():
        outcome = CliRunner().invoke(app, list(args), env=env, input=input, prog_name="g3w",
                                     catch_exceptions=False)
    return Result(outcome.exit_code, outcome.stdout, outcome.stderr)
