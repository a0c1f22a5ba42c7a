"""Which ngrok agent to run, its version, what pyngrok must speak to it, and installing it.

The agent is: ``NGROK_PATH``, as is; else the first ``ngrok`` on PATH that is an agent; else the
one at pyngrok's default location; else, when allowed, pyngrok installs it there. pyngrok's own
``ngrok`` console script (a venv on PATH has one in bin/) is never taken for the agent, and never
run: running it makes pyngrok download ngrok. Any other file is asked ``<file> version``, and is
an agent only if it answers as one.

What pyngrok 9 speaks to an agent follows its release: version "2" config files before 3.16, the
/api/tunnels agent API before 3.30, /api/endpoints from then; an agent 2.x it cannot drive.

Stdlib only (``doctor`` uses this without loading pyngrok). The install runs pyngrok's installer
in a child Python process: its progress (which pyngrok prints on stdout) never reaches ours, and a
stuck download can be killed at the deadline or on Ctrl-C.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass

from get3w_cli.constants import (
    NGROK_CONFIG_V3_SINCE,
    NGROK_ENDPOINTS_API_SINCE,
    NGROK_INSTALL_TIMEOUT,
    NGROK_LOCK_POLL,
    NGROK_SCRIPT_MAX_BYTES,
    NGROK_VERSION_TIMEOUT,
    PYNGROK_AGENT_MAJOR,
    PYNGROK_MAJORS,
)
from get3w_cli.errors import TunnelError
from get3w_cli.webhooks.ngrok_errors import clean, tunnel_error

_IMPORTS_PYNGROK = re.compile(rb"\b(?:from|import)\s+pyngrok\b")
_VERSION = re.compile(r"\bngrok version (\d+)\.(\d+)(?:\.(\d+))?")
FROM_NGROK_PATH, FROM_PATH, FROM_DEFAULT, INSTALLED = "NGROK_PATH", "PATH", "pyngrok's default location", "installed"


@dataclass(frozen=True)
class AgentSearch:
    """Where to look for the agent, and whether pyngrok may install it."""

    ngrok_path: str | None = None  # NGROK_PATH: the agent to use, as is
    search_path: str | None = None  # the PATH to search (None: this process's)
    install_to: str | None = None  # pyngrok's default location (None: pyngrok's own idea of it)
    install: bool = True


@dataclass(frozen=True)
class Agent:
    """An ngrok agent: where it is, its version, and how it was found."""

    path: str
    version: tuple[int, ...]
    found: str  # FROM_NGROK_PATH, FROM_PATH, FROM_DEFAULT or INSTALLED

    @property
    def version_text(self) -> str:
        return ".".join(map(str, self.version))

    @property
    def config_version(self) -> str:
        """The config file version this agent reads (and pyngrok's ``config_version`` for it)."""
        return "3" if self.version >= NGROK_CONFIG_V3_SINCE else "2"

    @property
    def api(self) -> str:
        """The agent API pyngrok must use: ``/api/endpoints`` from 3.30, ``/api/tunnels`` before."""
        return "/api/endpoints" if self.version >= NGROK_ENDPOINTS_API_SINCE else "/api/tunnels"


@dataclass(frozen=True)
class Lookup:
    """What a search found: the agent (or None), and the ``ngrok`` files it passed over, and why."""

    agent: Agent | None
    skipped: tuple[str, ...] = ()


def find_agent(search: AgentSearch, default_path: str) -> Lookup:
    """Find the agent (see the module docstring); ``default_path``: pyngrok's default location.

    Raises:
        TunnelError: NGROK_PATH names no file, or a file that is not an agent.
    """
    if search.ngrok_path:
        return Lookup(_explicit(search.ngrok_path))
    skipped: list[str] = []
    for path in _on_path(search.search_path):
        version, why = probe(path)
        if version is not None:
            return Lookup(Agent(path, version, FROM_PATH), tuple(skipped))
        skipped.append(f"{path} ({why})")
    if os.path.isfile(default_path):
        version, why = probe(default_path)
        if version is not None:
            return Lookup(Agent(default_path, version, FROM_DEFAULT), tuple(skipped))
        skipped.append(f"{default_path} ({why})")
    return Lookup(None, tuple(skipped))


def _explicit(path: str) -> Agent:
    if not os.path.isfile(path):
        raise tunnel_error("binary_missing", f"NGROK_PATH names no file: {path}")
    version, why = probe(path)
    if version is None:
        kind = "binary_missing" if why.startswith("cannot run") else "not_agent"
        raise tunnel_error(kind, f"NGROK_PATH={path} is not an ngrok agent: {why}")
    return Agent(path, version, FROM_NGROK_PATH)


def _on_path(search_path: str | None) -> Iterator[str]:
    """Every executable ``ngrok`` on PATH, in order (``shutil.which`` stops at the first)."""
    seen: set[str] = set()
    for folder in (os.get_exec_path() if search_path is None else search_path.split(os.pathsep)):
        found = shutil.which("ngrok", path=folder) if folder else None
        if found and os.path.realpath(found) not in seen:
            seen.add(os.path.realpath(found))
            yield found


def is_pyngrok_script(path: str) -> bool:
    """True for pyngrok's console script (or pip's Windows launcher for it, which zips the same
    lines): a small file that imports pyngrok."""
    try:
        if os.path.getsize(path) > NGROK_SCRIPT_MAX_BYTES:
            return False
        with open(path, "rb") as fh:
            return _IMPORTS_PYNGROK.search(fh.read(NGROK_SCRIPT_MAX_BYTES)) is not None
    except OSError:
        return False


def probe(path: str) -> tuple[tuple[int, ...] | None, str]:
    """``(version, "")`` for an agent, else ``(None, why it is not one)``; never runs pyngrok's script."""
    if is_pyngrok_script(path):
        return None, "pyngrok's console script, not the ngrok agent"
    try:
        done = subprocess.run([path, "version"], stdin=subprocess.DEVNULL, capture_output=True, text=True,  # noqa: S603 - the agent the user or PATH names
                              errors="replace", timeout=NGROK_VERSION_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        return None, f"`{path} version` did not answer within {NGROK_VERSION_TIMEOUT:g}s"
    except OSError as exc:
        return None, f"cannot run it: {exc.strerror or exc}"
    match = _VERSION.search(done.stdout)
    if match is None:
        said = clean(done.stdout + " " + done.stderr)[:120] or f"exit status {done.returncode}"
        return None, f"`version` did not answer as ngrok does ({said})"
    return tuple(int(part or 0) for part in match.groups()), ""


def check_drivable(agent: Agent, pyngrok: str | None) -> None:
    """Raise unless the installed pyngrok can drive ``agent``.

    Raises:
        TunnelError: kind "agent_too_old" (an agent 2.x), or "pyngrok_unsupported".
    """
    if pyngrok is None or int(pyngrok.split(".")[0]) not in PYNGROK_MAJORS:
        raise tunnel_error("pyngrok_unsupported", f"pyngrok {pyngrok or '(not installed)'} is not one g3w supports "
                           f"(major {', '.join(map(str, PYNGROK_MAJORS))})")
    if agent.version[0] < PYNGROK_AGENT_MAJOR:
        raise tunnel_error("agent_too_old", f"the ngrok agent at {agent.path} ({agent.found}) is version "
                           f"{agent.version_text}; pyngrok {pyngrok} drives agents {PYNGROK_AGENT_MAJOR}.x",
                           agent=agent.path)


def pyngrok_version() -> str | None:
    """The installed pyngrok's version, read from its metadata (without importing it)."""
    from importlib import metadata

    try:
        return metadata.version("pyngrok")
    except metadata.PackageNotFoundError:
        return None


def default_install_path(env: Mapping[str, str]) -> str:
    """pyngrok's default location for the agent, for this environment (as pyngrok.conf computes it:
    ``PYNGROK_NGROK_PATH``, else ngrok's config folder; tests check the two agree)."""
    if env.get("PYNGROK_NGROK_PATH"):
        return env["PYNGROK_NGROK_PATH"]
    home = os.path.expanduser("~") if not env.get("HOME") else env["HOME"]
    if sys.platform == "darwin":
        folder = os.path.join(home, "Library", "Application Support", "ngrok")
    elif sys.platform == "win32":
        folder = os.path.join(home, "AppData", "Local", "ngrok")
    else:
        folder = os.path.join(env.get("XDG_CONFIG_HOME") or os.path.join(home, ".config"), "ngrok")
    return os.path.join(folder, "ngrok.exe" if sys.platform == "win32" else "ngrok")


# The child: pyngrok's own installer, its download URL given (read from pyngrok's table by the parent).
_INSTALL = """
import os, sys, tempfile
from pyngrok import installer
url, target = sys.argv[1], sys.argv[2]
tempfile.tempdir = os.path.dirname(target)  # the archive is downloaded there, and removed with it
installer.PLATFORMS[installer.get_system() + "_" + installer.get_arch()] = url
try:
    installer.install_ngrok(target, ngrok_version="3")
except Exception as exc:
    cause = exc.__context__ or exc  # pyngrok wraps the download's error in a message naming the URL
    code, reason = getattr(cause, "code", None), getattr(cause, "reason", None)
    said = f"HTTP {code} {reason}" if code and reason else str(reason or cause) or type(cause).__name__
    sys.stderr.write(said + "\\n")
    sys.exit(1)
"""


async def install_agent(url: str, target: str, *, timeout: float = NGROK_INSTALL_TIMEOUT) -> Agent:
    """Install the agent from ``url`` (pyngrok's source) at ``target`` with pyngrok's installer.

    The agent appears at ``target`` whole or not at all (installed beside it, then renamed), and
    two g3w installing at once take turns (a lock on its folder), the second using what the first
    installed.

    Raises:
        TunnelError: kind "install_failed", with the reason.
    """
    folder = os.path.dirname(os.path.abspath(target))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    try:
        os.makedirs(folder, exist_ok=True)
        async with _folder_lock(folder, deadline):
            if os.path.isfile(target):  # another g3w installed it meanwhile
                version, _ = await asyncio.to_thread(probe, target)
                if version is not None:
                    return Agent(target, version, FROM_DEFAULT)
            staging = tempfile.mkdtemp(prefix=".g3w-install-", dir=folder)
            try:
                staged = os.path.join(staging, os.path.basename(target))
                await _run_installer(url, staged, max(0.0, deadline - loop.time()), target, timeout)
                version, why = await asyncio.to_thread(probe, staged)
                if version is None:
                    raise _install_failed(target, url, f"what it installed is not an ngrok agent: {why}")
                os.replace(staged, target)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
    except OSError as exc:
        raise _install_failed(target, url, str(exc)) from exc
    return Agent(target, version, INSTALLED)


async def _run_installer(url: str, staged: str, remaining: float, target: str, timeout: float) -> None:
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _INSTALL, url, staged,
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _, err = await asyncio.wait_for(child.communicate(), remaining)
    except asyncio.TimeoutError:
        raise _install_failed(target, url, f"no agent after {timeout:g}s") from None
    finally:
        if child.returncode is None:  # timed out, or cancelled (Ctrl-C): the download stops here
            with contextlib.suppress(ProcessLookupError):
                child.kill()
            await asyncio.shield(child.wait())
    if child.returncode != 0:
        said = err.decode(errors="replace").strip().splitlines()
        raise _install_failed(target, url, said[-1] if said else f"the installer exited with {child.returncode}")


def _install_failed(target: str, url: str, why: str) -> TunnelError:
    return tunnel_error("install_failed", f"pyngrok could not install the ngrok agent to {target} from {url}: "
                        f"{clean(why)}")


@contextlib.asynccontextmanager
async def _folder_lock(folder: str, deadline: float) -> AsyncIterator[None]:
    """An exclusive lock on ``folder`` (nothing is left behind), waited for without blocking the loop."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: installs do not take turns there
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if asyncio.get_running_loop().time() > deadline:
                    raise TimeoutError(f"another process has been installing ngrok in {folder} too long") from None
                await asyncio.sleep(NGROK_LOCK_POLL)
        yield
    finally:
        os.close(fd)
