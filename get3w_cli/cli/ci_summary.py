"""The Markdown table g3w appends to a GitHub Actions step summary ($GITHUB_STEP_SUMMARY).

One row a task: (key,) id, model, status, time, outputs as links, an image shown inline when
its URL is public (GitHub's renderer must be able to fetch it; a sandbox's 127.0.0.1 is not).
GitHub refuses a step summary above 1 MiB, so rows stop at a byte budget and the table ends
with how many were left out; memory does not grow beyond that budget.
"""

from __future__ import annotations

import html
import ipaddress
from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import quote, urlsplit

from get3w_cli import constants as C
from get3w_cli.redaction import redact

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".gif", ".avif"})
_PRIVATE_SUFFIXES = (".local", ".localhost", ".internal", ".lan", ".home.arpa")


def is_public_url(url: str) -> bool:
    """Whether an http(s) URL names a host on the internet (not this machine, not a private network)."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("http", "https") or not host:
        return False
    try:
        return ipaddress.ip_address(host).is_global
    except ValueError:
        return "." in host and not host.endswith(_PRIVATE_SUFFIXES)


def _text(value: object) -> str:
    """A table cell's text: HTML-escaped, pipes escaped, on one line."""
    text = " ".join(str("" if value is None else value).split())
    return html.escape(redact(text), quote=False).replace("|", "\\|")


def _href(url: str) -> str:
    """A URL safe inside a Markdown link, an HTML attribute and a table cell."""
    return quote(redact(url), safe=":/?&=#%~+@!$*;,-._")


def _outputs(urls: list[Any]) -> str:
    cells = []
    for index, url in enumerate(urls):
        if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https"):
            cells.append(_text(url))
            continue
        href = _href(url)
        if is_public_url(url) and PurePosixPath(urlsplit(url).path).suffix.lower() in IMAGE_SUFFIXES:
            cells.append(f'<a href="{href}"><img src="{href}" alt="output {index}" '
                         f'height="{C.GITHUB_SUMMARY_IMAGE_HEIGHT}"></a>')
        else:
            cells.append(f"[output {index}]({href})")
    return " ".join(cells) or "-"


def _time(record: Mapping[str, Any]) -> str:
    from get3w_cli.cli.render import describe_duration

    elapsed = record.get("elapsed_s")
    return describe_duration(float(elapsed)) if isinstance(elapsed, (int, float)) else "-"


class SummaryTable:
    """The rows of a summary, kept within ``budget`` bytes (the rest only counted)."""

    def __init__(self, *, batch: bool, budget: int) -> None:
        self.columns = (("key",) if batch else ()) + ("id", "model", "status", "time", "outputs")
        self.batch = batch
        self.rows: list[str] = []
        self.left_out = 0
        self._budget = budget - len(self._head().encode())
        self._size = 0

    def _head(self) -> str:
        return "| " + " | ".join(self.columns) + " |\n|" + "---|" * len(self.columns) + "\n"

    def add(self, record: Mapping[str, Any]) -> None:
        cells = [_text(record.get("key"))] if self.batch else []
        cells += [_text(record.get("id") or "-"), _text(record.get("model")), _text(record.get("status")),
                  _time(record), _outputs(list(record.get("outputs") or []))]
        row = "| " + " | ".join(cells) + " |\n"
        size = len(row.encode())
        if self.left_out or self._size + size > self._budget:
            self.left_out += 1
            return
        self.rows.append(row)
        self._size += size

    def markdown(self, heading: str, *, out: str = "") -> str:
        text = f"### {_text(heading)}\n\n"
        if self.rows:
            text += self._head() + "".join(self.rows)
        if self.left_out:
            where = f"; every record is in `{_text(out)}`" if out else ""
            text += (f"\n{self.left_out} more rows left out to keep this summary under GitHub's "
                     f"{C.GITHUB_SUMMARY_MAX_BYTES // (1024 * 1024)} MiB limit{where}.\n")
        return text + "\n"
