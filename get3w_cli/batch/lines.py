"""Batch input: JSON Lines read as a stream, every line checked, and the file's identity.

A line is ``{"model": ..., "input": {...}, "provider"?: ..., "api"?: ..., "key"?: ...}``.
The file is read twice (once to check every line before anything is sent, once to submit),
line by line: memory does not grow with the file, except for the set of keys that proves
them unique. Standard input is first spooled to a temporary file so it can be read twice
and hashed like a file.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import IO, Any

from get3w_cli.constants import BATCH_INVALID_SHOWN, BATCH_READ_CHUNK_BYTES
from get3w_cli.errors import UsageError
from get3w_cli.journal import request_hash
from get3w_cli.providers import PROVIDERS, Route, resolve_route

FIELDS = ("model", "input", "provider", "api", "key")


@dataclass(frozen=True)
class LineDefaults:
    """What a line without ``provider`` / ``api`` gets: the flags, then the settings."""

    provider: str | None = None  # --provider: applies like a line's own "provider"
    api: str | None = None  # --api
    fallback_provider: str | None = None  # G3W_PROVIDER / config: only for unprefixed models


@dataclass(frozen=True)
class BatchLine:
    """One valid line: where it goes and what it sends."""

    number: int  # 1-based, counting blank lines too
    key: str | None
    route: Route
    input: dict[str, Any]

    @property
    def ident(self) -> str:
        """Its identity in the journal: the key when it has one, else its line number."""
        return f"k:{self.key}" if self.key is not None else f"n:{self.number}"

    @property
    def out_key(self) -> str | int:
        """The ``key`` of its output record: the line's key, else its line number."""
        return self.key if self.key is not None else self.number

    @cached_property
    def request_hash(self) -> str:
        """What the line asks for (provider, API, model, input): journalled with its submit, so a
        line edited since can be told apart on --resume."""
        return request_hash(self.route.provider, self.route.api, self.route.model, self.input)


@dataclass(frozen=True)
class LineProblem:
    number: int
    reason: str
    # The line's JSON object, when it was one: what its record can still say (model, input, key).
    fields: Mapping[str, Any] | None = field(default=None, compare=False)

    def __str__(self) -> str:
        return f"line {self.number}: {self.reason}"

    @property
    def out_key(self) -> str | int:
        """The ``key`` of its record: the line's key when it gave a usable one, else its number."""
        key = (self.fields or {}).get("key")
        return key if isinstance(key, str) and key else self.number


@dataclass
class CheckResult:
    """The first pass over the file: counts, the first problems, the routes it uses."""

    valid: int = 0
    invalid: int = 0
    problems: list[LineProblem] = field(default_factory=list)  # the first BATCH_INVALID_SHOWN
    invalid_lines: set[int] = field(default_factory=set)
    routes: set[tuple[str, str]] = field(default_factory=set)  # (provider, api)


class LineError(ValueError):
    """A line that cannot be submitted; the message says why, ``fields`` is its JSON object."""

    def __init__(self, reason: str, fields: Mapping[str, Any] | None = None) -> None:
        super().__init__(reason)
        self.fields = fields


SPOOL_PREFIX = "g3w-batch-"  # g3w-batch-<pid>-<random>.jsonl in the temporary folder
SPOOL_SUFFIX = ".jsonl"


def spool(stream: IO[bytes], folder: Path | None = None) -> Path:
    """Copy ``stream`` (stdin) to a temporary file named with this process's pid and return its
    path; the caller deletes it (``remove_dead_spools`` does, for a caller killed first)."""
    fd, name = tempfile.mkstemp(prefix=f"{SPOOL_PREFIX}{os.getpid()}-", suffix=SPOOL_SUFFIX, dir=folder)
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := stream.read(BATCH_READ_CHUNK_BYTES):
                out.write(chunk)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return Path(name)


def remove_dead_spools(folder: Path | None = None) -> list[Path]:
    """Delete the stdin spools left by ``g3w batch -`` processes that are gone (kill -9 skips
    their clean-up); a live process's spool is left alone. Returns what was removed."""
    removed = []
    for path in Path(folder or tempfile.gettempdir()).glob(f"{SPOOL_PREFIX}*-*{SPOOL_SUFFIX}"):
        pid = path.name[len(SPOOL_PREFIX):].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            try:
                path.unlink()
            except OSError:
                continue  # another g3w removed it first, or it is not ours to remove
            removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


def parse_line(number: int, text: str, defaults: LineDefaults) -> BatchLine:
    """Check one non-blank line and return it routed.

    Raises:
        LineError: the line cannot be submitted (the message is the reason).
    """
    try:
        obj = json.loads(text)
    except ValueError as exc:
        raise LineError(f"not valid JSON ({exc})") from exc
    if not isinstance(obj, dict):
        raise LineError("not a JSON object")
    try:
        return _parse_object(number, obj, defaults)
    except LineError as exc:
        exc.fields = obj
        raise


def _parse_object(number: int, obj: dict[str, Any], defaults: LineDefaults) -> BatchLine:
    unknown = sorted(set(obj) - set(FIELDS))
    if unknown:
        raise LineError(f"unknown field {', '.join(map(repr, unknown))}; a line has {', '.join(FIELDS)}")
    model, values, provider, api, key = (obj.get(name) for name in FIELDS)
    if not isinstance(model, str) or not model.strip():
        raise LineError("model is missing" if model is None else "model must be a non-empty string")
    if not isinstance(values, dict):
        raise LineError("input is missing" if values is None else "input must be a JSON object")
    if provider is not None and provider not in PROVIDERS:
        raise LineError(f"provider must be one of {', '.join(PROVIDERS)}")
    if api is not None and api not in ("v1", "v3"):
        raise LineError("api must be v1 or v3")
    if key is not None and (not isinstance(key, str) or not key):
        raise LineError("key must be a non-empty string")
    return BatchLine(number, key, _route(model, provider, api, defaults), values)


def _route(model: str, provider: str | None, api: str | None, defaults: LineDefaults) -> Route:
    explicit = provider or defaults.provider
    prefixed = ":" in model.split("/", 1)[0]
    if not explicit and not prefixed:
        explicit = defaults.fallback_provider
    try:
        return resolve_route(model, provider=explicit, api=api or defaults.api)
    except UsageError as exc:
        raise LineError(exc.message) from exc


def read_lines(path: Path, defaults: LineDefaults) -> Iterator[BatchLine | LineProblem]:
    """Every non-blank line of the file, parsed, in order (a stream: one line in memory).

    Raises:
        UsageError: the file cannot be read.
    """
    try:
        with path.open("rb") as handle:
            for number, raw in enumerate(handle, start=1):
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError:
                    yield LineProblem(number, "not UTF-8 text")
                    continue
                if number == 1:
                    text = text.lstrip("\ufeff")
                if not text.strip():
                    continue
                try:
                    yield parse_line(number, text, defaults)
                except LineError as exc:
                    yield LineProblem(number, str(exc), exc.fields)
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from exc


def checked_lines(path: Path, defaults: LineDefaults) -> Iterator[BatchLine | LineProblem]:
    """Every non-blank line, parsed, with a key used before made a problem (a stream, but for
    the set of keys that proves them unique)."""
    first_use: dict[str, int] = {}
    for item in read_lines(path, defaults):
        if isinstance(item, BatchLine) and item.key is not None:
            earlier = first_use.setdefault(item.key, item.number)
            if earlier != item.number:
                route = item.route
                fields = {"model": route.model, "input": item.input, "provider": route.provider, "api": route.api,
                          "key": item.key}
                yield LineProblem(item.number, f"key {item.key!r} is already used on line {earlier}", fields)
                continue
        yield item


def check_file(path: Path, defaults: LineDefaults) -> CheckResult:
    """The first pass: check every line (keys must be unique) without keeping the lines."""
    result = CheckResult()
    for item in checked_lines(path, defaults):
        if isinstance(item, LineProblem):
            result.invalid += 1
            result.invalid_lines.add(item.number)
            if len(result.problems) < BATCH_INVALID_SHOWN:
                result.problems.append(item)
            continue
        result.valid += 1
        result.routes.add((item.route.provider, item.route.api))
    return result


def valid_lines(path: Path, defaults: LineDefaults, skip: set[int]) -> Iterator[BatchLine]:
    """The second pass: the valid lines, minus those the first pass found invalid."""
    for item in read_lines(path, defaults):
        if isinstance(item, BatchLine) and item.number not in skip:
            yield item


def invalid_lines(path: Path, defaults: LineDefaults) -> Iterator[LineProblem]:
    """The invalid lines, each with its reason (for the records of ``--skip-invalid``)."""
    for item in checked_lines(path, defaults):
        if isinstance(item, LineProblem):
            yield item
