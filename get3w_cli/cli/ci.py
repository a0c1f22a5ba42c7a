"""CI integrations (CONTRACT.md section 10), fed by the boundary (records, errors) and the batch's end.

GitHub Actions (``GITHUB_ACTIONS=true``; off with ``--no-ci`` or ``G3W_CI=0``):
  - every secret g3w knows is announced with ``::add-mask::`` as soon as it is registered
    (``redaction.watch``), before anything g3w writes could carry it;
  - an error is also an ``::error title=g3w <command>::`` annotation, its hint included;
  - run, submit, wait and get append ``id``, ``status``, ``via``, ``outputs``, ``files`` and
    ``record`` to ``$GITHUB_OUTPUT``; batch appends ``total``, ``completed``, ``failed``, ``out``;
  - run and batch append a Markdown table to ``$GITHUB_STEP_SUMMARY`` (``ci_summary``).
GitLab CI (``GITLAB_CI=true``): the batch's progress lines inside a collapsible section.
``--dotenv FILE`` (in any CI, or none): the same outputs as a dotenv report (GitLab's
``artifacts:reports:dotenv``: one ``KEY=value`` a line, no multi-line values, 5 KB at most).

Workflow commands go to stderr, so stdout stays data. Trouble writing these files is a warning:
the command's result and exit code stay what they are.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from get3w_cli import constants as C
from get3w_cli.errors import UsageError

if TYPE_CHECKING:
    from get3w_cli.batch.report import Stats
    from get3w_cli.cli.ci_summary import SummaryTable

# Commands whose task records become step outputs; those whose records also make a summary.
TASK_COMMANDS = frozenset({"run", "submit", "wait", "get"})
SUMMARY_COMMANDS = frozenset({"run"})
_OFF_WORDS = frozenset({"0", "false", "no", "off"})
SECTION = "g3w_batch"

_active: Ci | None = None


def _escape_data(text: str) -> str:
    """A workflow command's message, escaped the way the Actions toolkit does."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def workflow_command(name: str, message: str, **properties: str) -> None:
    """``::name k=v::message`` on stderr (stdout carries data)."""
    props = ",".join(f"{key}={_escape_property(value)}" for key, value in properties.items())
    sys.stderr.write(f"::{name}{' ' + props if props else ''}::{_escape_data(message)}\n")
    sys.stderr.flush()


def announce_masks(forms: Sequence[str]) -> None:
    """``::add-mask::`` for each form of a secret (a multi-line one line by line, as GitHub asks)."""
    for form in forms:
        for line in form.splitlines():
            if line.strip():
                workflow_command("add-mask", line)


def github_output_text(values: Mapping[str, str]) -> str:
    """``name=value`` lines; a multi-line value as ``name<<DELIMITER`` ... ``DELIMITER`` with a random
    delimiter that occurs nowhere in it."""
    parts = []
    for name, value in values.items():
        if "\n" not in value and "\r" not in value:
            parts.append(f"{name}={value}\n")
            continue
        delimiter = f"g3w_{secrets.token_hex(C.GITHUB_OUTPUT_DELIMITER_BYTES)}"
        while delimiter in value:
            delimiter = f"g3w_{secrets.token_hex(C.GITHUB_OUTPUT_DELIMITER_BYTES)}"
        parts.append(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")
    return "".join(parts)


def dotenv_text(values: Mapping[str, str]) -> tuple[str, list[str]]:
    """The dotenv report, and the names left out to keep it within GitLab's 5 KB (``record`` first)."""
    kept = {name: value.replace("\r", " ").replace("\n", " ") for name, value in values.items()}
    left_out: list[str] = []

    def text() -> str:
        return "".join(f"{name}={value}\n" for name, value in kept.items())

    for name in ("record", "outputs", "files"):
        if len(text().encode()) <= C.DOTENV_MAX_BYTES:
            break
        if name in kept:
            del kept[name]
            left_out.append(name)
    return text(), left_out


def task_outputs(records: Sequence[Mapping[str, Any]], *, multiline: bool) -> dict[str, str]:
    """The step outputs of one task (``record``: indented JSON when ``multiline``), or of several
    (``wait ID ID``): ids, statuses and vias space-separated, outputs and files in one array,
    ``record`` as JSON Lines (a JSON array when not ``multiline``)."""
    def compact(value: object) -> str:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)

    outputs = [url for r in records for url in r.get("outputs") or []]
    files = [path for r in records for path in r.get("files") or []]
    if len(records) == 1:
        record = records[0]
        text = json.dumps(record, ensure_ascii=False, indent=2, default=str) if multiline else compact(record)
        return {"id": str(record.get("id") or ""), "status": str(record.get("status") or ""),
                "via": str(record.get("via") or ""), "outputs": compact(outputs), "files": compact(files),
                "record": text}
    return {"id": " ".join(str(r.get("id") or "null") for r in records),
            "status": " ".join(str(r.get("status") or "null") for r in records),
            "via": " ".join(str(r.get("via") or "null") for r in records),
            "outputs": compact(outputs), "files": compact(files),
            "record": "\n".join(compact(r) for r in records) if multiline else compact(list(records))}


class Ci:
    """The CI integrations of one command, from its environment and its --no-ci / --dotenv."""

    def __init__(self, command: str, env: Mapping[str, str], *, no_ci: bool = False, dotenv: str | None = None,
                 warn: Callable[[str], None] = lambda _: None) -> None:
        off = no_ci or env.get("G3W_CI", "").strip().lower() in _OFF_WORDS
        self.command = command
        self.github = not off and env.get("GITHUB_ACTIONS") == "true"
        self.gitlab = not off and env.get("GITLAB_CI") == "true"
        self.output_path = _path(env.get("GITHUB_OUTPUT")) if self.github else None
        self.summary_path = _path(env.get("GITHUB_STEP_SUMMARY")) if self.github else None
        self.dotenv = Path(dotenv) if dotenv else None
        self.table: SummaryTable | None = None
        self._warn = warn
        self._unwatch: Callable[[], None] | None = None

    def start(self) -> None:
        """Check --dotenv FILE (before anything is sent) and start announcing secrets.

        Raises:
            UsageError: the dotenv file cannot be written there.
        """
        global _active  # noqa: PLW0603 - one command a process; the batch's hooks find it here
        if self.dotenv is not None:
            _check_writable(self.dotenv)
        if self.github:
            from get3w_cli.redaction import known, watch

            announce_masks(known())
            self._unwatch = watch(announce_masks)
        _active = self

    def close(self) -> None:
        global _active  # noqa: PLW0603 - see start
        if self._unwatch is not None:
            self._unwatch()
            self._unwatch = None
        if _active is self:
            _active = None

    def error(self, message: str, hint: str | None) -> None:
        if self.github:
            workflow_command("error", message + (f"\nHint: {hint}" if hint else ""),
                             title=f"g3w {self.command}".strip())

    def finish_tasks(self, records: Sequence[Mapping[str, Any]]) -> None:
        """The step outputs (and run's summary) of the tasks the command reported."""
        if not records or self.command not in TASK_COMMANDS:
            return
        self._outputs(task_outputs(records, multiline=True), task_outputs(records, multiline=False))
        if self.summary_path is not None and self.command in SUMMARY_COMMANDS:
            from get3w_cli.cli.ci_summary import SummaryTable

            table = SummaryTable(batch=False, budget=self._summary_budget())
            for record in records:
                table.add(record)
            self._append(self.summary_path, table.markdown(f"g3w {self.command}"), "$GITHUB_STEP_SUMMARY")

    def batch_table(self) -> SummaryTable | None:
        if self.summary_path is None:
            return None
        if self.table is None:
            from get3w_cli.cli.ci_summary import SummaryTable

            self.table = SummaryTable(batch=True, budget=self._summary_budget())
        return self.table

    def finish_batch(self, stats: Stats, out: str | None) -> None:
        values = {"total": str(stats.total), "completed": str(stats.done), "failed": str(stats.failed),
                  "out": out if out and out != "-" else ""}
        self._outputs(values, values)
        if self.summary_path is not None and self.table is not None:
            heading = f"g3w batch: {stats.done} of {stats.total} completed"
            self._append(self.summary_path, self.table.markdown(heading, out=values["out"]), "$GITHUB_STEP_SUMMARY")

    def _outputs(self, github: Mapping[str, str], dotenv: Mapping[str, str]) -> None:
        if self.output_path is not None:
            self._append(self.output_path, github_output_text(github), "$GITHUB_OUTPUT")
        if self.dotenv is not None:
            text, left_out = dotenv_text(dotenv)
            if left_out:
                self._warn(f"left {', '.join(left_out)} out of the dotenv report {self.dotenv}: "
                           f"GitLab takes {C.DOTENV_MAX_BYTES // 1024} KB at most")
            try:
                self.dotenv.write_text(text, encoding="utf-8")
            except OSError as exc:
                self._warn(f"could not write the dotenv report {self.dotenv}: {exc.strerror or exc}")

    def _summary_budget(self) -> int:
        used = 0
        if self.summary_path is not None:
            try:
                used = self.summary_path.stat().st_size
            except OSError:
                used = 0
        return max(0, C.GITHUB_SUMMARY_MAX_BYTES - C.GITHUB_SUMMARY_RESERVE_BYTES - used)

    def _append(self, path: Path, text: str, what: str) -> None:
        """Append ``text`` on a line of its own (an earlier writer may have left its last line open)."""
        try:
            with path.open("a+b") as handle:
                if handle.tell() and (handle.seek(-1, 2), handle.read(1))[1] != b"\n":
                    handle.write(b"\n")
                handle.write(text.encode("utf-8"))
        except OSError as exc:
            self._warn(f"could not write {what} ({path}): {exc.strerror or exc}")


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None


def _check_writable(path: Path) -> None:
    if path.is_dir():
        raise UsageError(f"--dotenv {path} is a folder", hint="give the file to write, e.g. --dotenv g3w.env")
    if not path.parent.is_dir():
        raise UsageError(f"--dotenv {path}: no folder {path.parent}", hint="create it first, or write elsewhere")
    if not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise UsageError(f"--dotenv {path}: not writable", hint="write the report elsewhere")


def annotate_error(message: str, hint: str | None) -> None:
    """An error besides the one the command exits with (``wait ID ID``), as an annotation too."""
    if _active is not None:
        from get3w_cli.redaction import redact

        _active.error(redact(message), redact(hint) if hint else None)


def batch_rows(sink: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    """The batch's record sink, also feeding the step summary's table (when there is one)."""
    table = _active.batch_table() if _active is not None else None
    if table is None:
        return sink

    def write(record: dict[str, Any]) -> None:
        sink(record)
        table.add(record)

    return write


@asynccontextmanager
async def batch_section(stats: Stats, out: str | None) -> AsyncIterator[None]:
    """Around the batch's run: GitLab's collapsible section for its progress; at the end (any end)
    the batch's outputs and summary."""
    ci = _active
    if ci is not None and ci.gitlab:
        _stderr(f"\x1b[0Ksection_start:{int(time.time())}:{SECTION}[collapsed=true]\r\x1b[0Kg3w batch progress\n")
    try:
        yield
    finally:
        if ci is not None:
            if ci.gitlab:
                _stderr(f"\x1b[0Ksection_end:{int(time.time())}:{SECTION}\r\x1b[0K\n")
            ci.finish_batch(stats, out)


def _stderr(text: str) -> None:
    sys.stderr.write(text)
    sys.stderr.flush()
