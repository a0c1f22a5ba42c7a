"""The private ngrok config the tunnel gives its agent: the authtoken in a 0600 file, off the
command line, in a temp folder of ours, so that the user's own ngrok.yml is never read or written.

A folder is named with the pid of the g3w that made it. A g3w killed with SIGKILL cannot remove
its own, so each tunnel that opens removes the folders whose process is gone first: an authtoken
does not outlive the run that needed it by more than one run. A live process's folder (another
g3w's tunnel, running now) is left alone.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tempfile

PREFIX = "g3w-ngrok-"
_OWNED = re.compile(rf"^{re.escape(PREFIX)}(\d+)-")


def make_private_config(authtoken: str, temp_dir: str | None = None, version: str = "3") -> tuple[str, str]:
    """Write a minimal ngrok config holding the authtoken; return (its folder, its path).

    ``version`` is the config file version the agent reads ("3" from agent 3.16, else "2"). The
    folder is made in ``temp_dir`` (default: the system's temp dir), mode 0700, named with this
    process's pid. Remove it when the agent stops.

    Raises:
        OSError: the folder or the file cannot be written.
    """
    folder = tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=temp_dir)
    path = os.path.join(folder, "ngrok.yml")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            # A JSON string is a valid YAML double-quoted scalar.
            if version == "3":
                fh.write(f'version: "3"\nagent:\n  authtoken: {json.dumps(authtoken)}\n')
            else:
                fh.write(f'version: "2"\nauthtoken: {json.dumps(authtoken)}\n')
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return folder, path


def remove_stale_configs(temp_dir: str | None = None) -> list[str]:
    """Remove the private config folders in ``temp_dir`` whose process is dead; return their paths.

    Housekeeping: never raises; what cannot be read or removed is left as it is.
    """
    removed: list[str] = []
    if sys.platform == "win32":
        return removed  # no cheap liveness probe there: os.kill(pid, 0) would end the process
    root = temp_dir or tempfile.gettempdir()
    try:
        with os.scandir(root) as entries:
            stale = [entry.path for entry in entries if _is_stale(entry)]
    except OSError:
        return removed
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
        if not os.path.lexists(path):
            removed.append(path)
    return removed


def _is_stale(entry: os.DirEntry[str]) -> bool:
    match = _OWNED.match(entry.name)
    try:
        # Only real folders (never a symlink planted in a shared /tmp), and only our user's.
        return (match is not None and entry.is_dir(follow_symlinks=False)
                and entry.stat(follow_symlinks=False).st_uid == os.getuid()
                and not _alive(int(match.group(1))))
    except OSError:
        return False


def _alive(pid: int) -> bool:
    """True unless the process is known to be gone (any doubt keeps its folder)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OSError, OverflowError):
        return True  # e.g. another user's process (EPERM): alive
    return True
