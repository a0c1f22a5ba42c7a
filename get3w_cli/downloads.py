"""Atomic downloads of a task's outputs as ``<DIR>/<id>_<index>.<ext>``.

Each file is written as ``.<id>_<index>.<pid>.<random>.part`` and renamed into place. The pid
names the writer: a process killed mid-download (SIGKILL runs no cleanup) leaves its ``.part``
behind, and the next download into that folder removes those whose writer is dead.
"""

from __future__ import annotations

import mimetypes
import os
import re
import secrets
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from get3w_cli.errors import DownloadError, plain_reason

if TYPE_CHECKING:
    from get3w_cli.http import HttpSession
    from get3w_cli.records import Task

ProgressFactory = Callable[[str], Callable[[int, "int | None"], None]]
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
    session: HttpSession, task: Task, dest: Path, *, progress: ProgressFactory | None = None
) -> list[str]:
    """Download every output of ``task`` into ``dest``; return the file paths in output order.

    Each file is written under a temporary name and renamed into place, so a reader never
    sees a partial file. Temporary files left in ``dest`` by dead processes are removed first
    (once per folder per process).

    Raises:
        DownloadError: the folder cannot be created or any output fails (carries the URLs).
    """
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
            final = dest / (stem + extension_for(url, content_type))
            os.replace(tmp, final)
        except DownloadError as exc:
            raise DownloadError(f"output {index} of task {task.id} could not be downloaded: {exc.message}",
                                urls=task.outputs) from exc
        except OSError as exc:
            raise DownloadError(f"cannot write output {index} of task {task.id}: {plain_reason(exc)}",
                                urls=task.outputs) from exc
        finally:
            tmp.unlink(missing_ok=True)
        files.append(str(final))
    return files
