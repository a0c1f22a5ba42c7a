"""Atomic downloads of a task's outputs as ``<DIR>/<id>_<index>.<ext>`` (or a batch's
``--name-template``), returned as absolute paths.

Each file is written as ``.<name>.<pid>.<random>.part`` and renamed into place. The pid names
the writer: a process killed mid-download (SIGKILL runs no cleanup) leaves its ``.part``
behind, and the next download into that folder removes those whose writer is dead.

Output URLs are often signed and expire: ``download_fresh`` asks the provider for the task again
(fresh URLs) when the output host answers 403, 404 or 410, and downloads those.
"""

from __future__ import annotations

import mimetypes
import os
import re
import secrets
import string
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from get3w_cli.errors import DownloadError, UsageError, plain_reason

if TYPE_CHECKING:
    from get3w_cli.http import HttpSession
    from get3w_cli.records import Task

ProgressFactory = Callable[[str], Callable[[int, "int | None"], None]]
# The file name of output ``index`` whose extension (with its dot) is ``ext``.
Namer = Callable[[int, str], str]
# What an output host answers for a URL that has expired (signed URLs: 403; deleted: 404, 410).
EXPIRED_STATUSES = frozenset({403, 404, 410})
# ``.<stem>.<pid>.<8 hex>.part``; the stem may itself hold dots.
_PART = re.compile(r"^\..+\.(?P<pid>[0-9]+)\.[0-9a-f]{8}\.part$")
# Folders already swept by this process: a batch downloads thousands of tasks into one folder,
# and listing it for each would cost time growing with the square of their number.
_swept: set[str] = set()
_KNOWN_TYPES = {"image/jpeg": ".jpg", "image/png": ".png", "image/webp": ".webp", "video/mp4": ".mp4",
                "image/gif": ".gif", "audio/mpeg": ".mp3", "audio/wav": ".wav", "video/webm": ".webm"}


def extension_for(url: str, content_type: str) -> str:
    """The file extension: from the URL's path when it has one, else from the Content-Type."""
    suffix = PurePosixPath(urlsplit(url).path).suffix.lower()
    if suffix and len(suffix) <= 6 and suffix[1:].isalnum():
        return suffix
    mime = content_type.split(";")[0].strip().lower()
    return _KNOWN_TYPES.get(mime) or mimetypes.guess_extension(mime) or ".bin"


def _safe_id(task_id: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in task_id)


def _safe_name(name: str) -> str:
    """A file name that stays in its folder and in sight: no separators, no leading dot."""
    cleaned = "".join("_" if ch in "/\\\0" else ch for ch in name)
    return "_" + cleaned[1:] if cleaned.startswith(".") else cleaned or "_"


TEMPLATE_FIELDS = ("key", "index", "ext", "id", "line")
_DISTINCT_FIELDS = ("key", "id", "line")  # each tells a batch's lines apart


@dataclass(frozen=True)
class NameTemplate:
    """A batch's ``--name-template``: ``{key}_{index}.{ext}`` and the like (``str.format`` syntax,
    format specs allowed: ``{index:03d}``). Values are made safe for a file name (characters
    other than letters, digits, ``-``, ``_`` and ``.`` become ``_``); without ``{index}``, the
    second and later outputs of a task get ``_<index>`` before their extension."""

    text: str
    has_index: bool

    @classmethod
    def parse(cls, text: str) -> NameTemplate:
        """The template, checked by rendering a sample.

        Raises:
            UsageError: bad syntax, an unknown placeholder, a path separator, or nothing that tells
                the lines apart.
        """
        def bad(why: str) -> UsageError:
            return UsageError(f"--name-template {text!r}: {why}",
                              hint="placeholders: {key}, {index}, {ext}, {id}, {line}; e.g. '{key}_{index}.{ext}'")

        try:
            parts = list(string.Formatter().parse(text))
        except ValueError as exc:
            raise bad(str(exc)) from exc
        fields = set()
        for literal, field, _, _ in parts:
            if any(ch in literal for ch in "/\\\0"):
                raise bad("it names a file, not a path (no / or \\)")
            if field is not None:
                if field not in TEMPLATE_FIELDS:
                    raise bad(f"unknown placeholder {{{field}}}")
                fields.add(field)
        if not fields & set(_DISTINCT_FIELDS):
            raise bad("it needs {key}, {id} or {line}, or every line's files would get the same name")
        template = cls(text, "index" in fields)
        try:
            template.render(key="k", index=0, ext=".png", task_id="pred_1", line=1)
        except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
            raise bad(str(exc)) from exc
        return template

    def render(self, *, key: str | int, index: int, ext: str, task_id: str, line: int) -> str:
        """The file name of output ``index`` (``ext`` with its dot, as ``extension_for`` gives it)."""
        name = self.text.format(key=_safe_id(str(key)), index=index, ext=_safe_id(ext.lstrip(".")),
                                id=_safe_id(task_id), line=line)
        if not self.has_index and index:
            stem, dot, suffix = name.rpartition(".")
            name = f"{stem}_{index}{dot}{suffix}" if dot and stem else f"{name}_{index}"
        return _safe_name(name)


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists; True when that cannot be told, so its file is kept."""
    if pid == os.getpid():
        return True
    if os.name != "posix":
        return True  # os.kill(pid, 0) would terminate the process on Windows
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # EPERM: alive, and someone else's
    return True


def sweep_dead_parts(folder: Path) -> list[Path]:
    """Remove the ``.part`` files in ``folder`` whose writing process is dead; the paths removed.

    Best effort: a file that cannot be listed or removed stays (it costs disk, not results).
    """
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        match = _PART.match(entry.name)
        if match is None or _alive(int(match["pid"])):
            continue
        try:
            os.unlink(entry.path)
        except OSError:
            continue
        removed.append(Path(entry.path))
    return removed


async def download_outputs(
    session: HttpSession, task: Task, dest: Path, *, progress: ProgressFactory | None = None,
    name: Namer | None = None,
) -> list[str]:
    """Download every output of ``task`` into ``dest``; return the absolute file paths in output
    order. ``name`` names each file (default ``<id>_<index><ext>``).

    Each file is written under a temporary name and renamed into place, so a reader never
    sees a partial file. Temporary files left in ``dest`` by dead processes are removed first
    (once per folder per process).

    Raises:
        DownloadError: the folder cannot be created or any output fails (carries the URLs, and
            the output host's status when it answered with an error).
    """
    dest = Path(os.path.abspath(dest))  # records name files wherever they are read from
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DownloadError(f"cannot create {dest}: {plain_reason(exc)}", urls=task.outputs) from exc
    if (key := os.path.abspath(dest)) not in _swept:
        _swept.add(key)
        sweep_dead_parts(dest)
    files: list[str] = []
    for index, url in enumerate(task.outputs):
        stem = f"{_safe_id(task.id)}_{index}"
        tmp = dest / f".{stem}.{os.getpid()}.{secrets.token_hex(4)}.part"
        try:
            content_type = await session.download(url, tmp, on_progress=progress(stem) if progress else None)
            ext = extension_for(url, content_type)
            final = dest / (name(index, ext) if name else stem + ext)
            os.replace(tmp, final)
        except DownloadError as exc:
            raise DownloadError(f"output {index} of task {task.id} could not be downloaded: {exc.message}",
                                urls=task.outputs, status=exc.status) from exc
        except OSError as exc:
            raise DownloadError(f"cannot write output {index} of task {task.id}: {plain_reason(exc)}",
                                urls=task.outputs) from exc
        finally:
            tmp.unlink(missing_ok=True)
        files.append(str(final))
    return files


async def download_fresh(session: HttpSession, task: Task, dest: Path, *, refetch: Callable[[], Awaitable[Task]],
                         progress: ProgressFactory | None = None) -> tuple[Task, list[str]]:
    """Download ``task``'s outputs; when the output host says one has expired (403, 404, 410),
    ask the provider for the task once more (``refetch``) and download its fresh URLs.

    Returns (the task whose URLs were downloaded, the absolute file paths).

    Raises:
        DownloadError: a download failed (for good), or the provider no longer has the outputs.
        whatever ``refetch`` raises (the provider's errors).
    """
    from get3w_cli.records import Status

    try:
        return task, await download_outputs(session, task, dest, progress=progress)
    except DownloadError as exc:
        if exc.status not in EXPIRED_STATUSES:
            raise
        expired = exc
    fresh = await refetch()
    if fresh.status is not Status.COMPLETED or not fresh.outputs:
        raise DownloadError(f"the outputs of task {task.id} have expired and the provider no longer lists any "
                            f"(the task is {fresh.status.value} now)", urls=task.outputs,
                            hint="the outputs cannot be recovered; run the task again") from expired
    return fresh, await download_outputs(session, fresh, dest, progress=progress)
