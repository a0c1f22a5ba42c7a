"""Helpers the adapters share: URL path pieces, reading answers, and account tables."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote

from get3w_cli.errors import TransientError, UsageError
from get3w_cli.http import Reply
from get3w_cli.providers.base import AccountRows


def id_segment(task_id: str) -> str:
    """A task id as one URL path segment (quoted; dot segments refused)."""
    text = str(task_id).strip()
    if text in ("", ".", ".."):
        raise UsageError(f"invalid task id {task_id!r}")
    return quote(text, safe="")


def model_path(model: str) -> str:
    """A model id as URL path segments: slashes stay raw, everything else is quoted."""
    parts = model.strip().split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise UsageError(f"invalid model name {model!r}")
    return "/".join(quote(part, safe="") for part in parts)


def expect_object(reply: Reply, what: str) -> Mapping[str, Any]:
    """The reply body as a JSON object, or a TransientError naming what was expected."""
    if not isinstance(reply.body, Mapping):
        shape = "a non-JSON body" if reply.body is None else f"JSON {type(reply.body).__name__}"
        message = f"unexpected answer to {what}: {shape} (HTTP {reply.status})"
        raise TransientError(message, status=reply.status)
    return reply.body


def unexpected(what: str, detail: str, reply: Reply) -> TransientError:
    return TransientError(f"unexpected answer to {what}: {detail}", status=reply.status, details=reply.body)


def table(items: Iterable[object], preferred: tuple[str, ...], raw: object) -> AccountRows:
    """AccountRows from a list of JSON objects: the ``preferred`` columns present, in that order."""
    objects = [item for item in items if isinstance(item, Mapping)]
    columns = tuple(name for name in preferred if any(name in item for item in objects))
    if not columns and objects:
        columns = tuple(objects[0])
    rows = tuple(tuple(cell(item.get(name)) for name in columns) for item in objects)
    return AccountRows(columns, rows, raw)


def cell(value: object) -> str:
    """One table cell: strings as they are, None as "", anything else as compact JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
