"""Atomic downloads of a task's outputs as ``<DIR>/<id>_<index>.<ext>``."""

from __future__ import annotations

import mimetypes
import os
import secrets
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Callable
from urllib.parse import urlsplit

from get3w_cli.errors import DownloadError

if TYPE_CHECKING:
    from get3w_cli.http import HttpSession
    from get3w_cli.records import Task

ProgressFactory = Callable[[str], Callable[[int, "int | None"], None]]
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


async def download_outputs(
    session: HttpSession, task: Task, dest: Path, *, progress: ProgressFactory | None = None
) -> list[str]:
    """Download every output of ``task`` into ``dest``; return the file paths in output order.

    Each file is written under a temporary name and renamed into place, so a reader never
    sees a partial file.

    Raises:
        DownloadError: the folder cannot be created or any output fails (carries the URLs).
    """
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DownloadError(f"cannot create {dest}: {exc}", urls=task.outputs) from exc
    files: list[str] = []
    for index, url in enumerate(task.outputs):
        stem = f"{_safe_id(task.id)}_{index}"
        tmp = dest / f".{stem}.{secrets.token_hex(4)}.part"
        try:
            content_type = await session.download(url, tmp, on_progress=progress(stem) if progress else None)
            final = dest / (stem + extension_for(url, content_type))
            os.replace(tmp, final)
        except DownloadError as exc:
            raise DownloadError(f"output {index} of task {task.id} could not be downloaded: {exc.message}",
                                urls=task.outputs) from exc
        except OSError as exc:
            raise DownloadError(f"cannot write output {index} of task {task.id}: {exc}", urls=task.outputs) from exc
        finally:
            tmp.unlink(missing_ok=True)
        files.append(str(final))
    return files
