"""Which batch a run is, whether it may run, and which of its lines changed since they were sent.

A batch is known by ``--name``, else by its file's absolute path (stdin: by its content's
hash), so that editing a line of a file does not make it a new batch whose every line is paid
again. Its lines are matched by ``key``, else by line number; each line's request hash,
journalled with its submit, tells a line edited since from one that was not.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from get3w_cli.batch.lines import BatchLine
from get3w_cli.batch.report import FAILED
from get3w_cli.constants import BATCH_INVALID_SHOWN, BATCH_NAME_HASH_CHARS
from get3w_cli.errors import UsageError

if TYPE_CHECKING:
    from get3w_cli.journal import Journal

Notify = Callable[[str, str], None]


def batch_identity(journal: Journal, *, name: str | None, source: Path | None, digest: str) -> str:
    """``--name``; else the file's absolute path (``source``; None for stdin: the content's hash).

    A batch an older g3w journalled under its file's hash keeps that name, so that resuming it
    after an upgrade finds its lines.
    """
    if name:
        return name
    by_content = digest[:BATCH_NAME_HASH_CHARS]
    if source is None:
        return by_content
    by_path = str(source.resolve())
    if journal.batch_find(by_path) is None:
        legacy = journal.batch_find(by_content)
        if legacy is not None and legacy["digest"] == digest:
            return by_content
    return by_path


def check_may_run(journal: Journal, name: str, *, resume: bool, notify: Notify) -> bool:
    """Whether the batch ran before (then it is resumed).

    Raises:
        UsageError: the batch ran before and ``resume`` is not set (never pay twice by
            accident), or ``resume`` without a journal.
    """
    if resume and not journal.enabled:
        raise UsageError("--resume needs the journal", hint="drop --no-history")
    known = journal.batch_find(name)
    if known and not resume:
        raise UsageError(f"batch {name} already ran (from {known['source']}); nothing was submitted",
                         hint="add --resume to finish it (finished lines are re-emitted, none is paid twice), "
                              "or --name NAME for a separate run")
    if resume and not known:
        notify("note", f"batch {name} has not run before; starting it")
    return known is not None


@dataclass
class Changed:
    """Lines picked out of a batch (changed since their submit, or failed), the first few kept."""

    count: int = 0
    shown: list[BatchLine] = field(default_factory=list)  # the first BATCH_INVALID_SHOWN

    def describe(self) -> str:
        listed = ", ".join(f"line {line.number}" + (f" (key {line.key})" if line.key is not None else "")
                           for line in self.shown)
        more = f" and {self.count - len(self.shown)} more" if self.count > len(self.shown) else ""
        return listed + more


def changed_lines(journal: Journal, name: str, lines: Iterable[BatchLine]) -> Changed:
    """The lines of ``lines`` journalled by an earlier run with another request (model,
    provider, API or input). Lines journalled before request hashes were kept are not judged."""
    changed = Changed()
    for line in lines:
        known = journal.line_get(name, line.ident)
        if known is None or known.request_hash in (None, line.request_hash):
            continue
        changed.count += 1
        if len(changed.shown) < BATCH_INVALID_SHOWN:
            changed.shown.append(line)
    return changed


def failed_lines(journal: Journal, name: str, lines: Iterable[BatchLine]) -> Changed:
    """The lines of ``lines`` that an earlier run ended ``failed`` (their task failed or was
    cancelled, or the provider refused the submit): what ``--retry-failed`` submits again."""
    failed = Changed()
    for line in lines:
        known = journal.line_get(name, line.ident)
        if known is None or known.state != FAILED:
            continue
        failed.count += 1
        if len(failed.shown) < BATCH_INVALID_SHOWN:
            failed.shown.append(line)
    return failed
