"""``g3w open ID|FILE``: a task's outputs (or a file) in the desktop's default viewer (CONTRACT 12).

For a task id: the files it was downloaded to when the journal knows them and they still exist,
else its output URLs (from the journal, else from one GET) in the browser. The viewer: the
``BROWSER`` variable when set (as Python's ``webbrowser`` reads it: ``cmd %s`` or ``cmd``; the
first of several separated by ``os.pathsep``), else ``open`` (macOS), ``start`` (Windows),
``xdg-open`` (elsewhere), else for a URL whatever browser ``webbrowser`` finds. None: exit 3,
saying what to install or set. stdout stays empty; stderr names what was opened.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

import typer

from get3w_cli import constants as C
from get3w_cli.cli.app import commands as app
from get3w_cli.cli.boundary import run
from get3w_cli.cli.context import Context
from get3w_cli.cli.help_format import examples
from get3w_cli.cli.options import AccountFlags, RouteFlags, TalkFlags, options
from get3w_cli.cli.render import Ui
from get3w_cli.errors import ConfigError, UsageError

Target = Annotated[str, typer.Argument(metavar="ID|FILE", help="A task id, or a file to open.", show_default=False)]


@app.command("open", epilog=examples(
    ("the outputs of a task (its downloaded files, else its URLs)", "g3w open pred_abc123"),
    ("a file", "g3w open out/pred_abc123_0.png"),
))
@options(hide=("json_out",))
def open_cmd(target: Target, *, talk: TalkFlags, route: RouteFlags, account: AccountFlags) -> None:
    """Open a task's outputs (downloaded files, else URLs) or a file in the default viewer."""
    ui = Ui.for_talk(talk)

    async def body() -> int:
        ctx = Context()
        for item in await _targets(ctx, target, route, account):
            view(item, ctx.env)
            ui.note(f"opened {item}")
        return 0

    run(ui, body)


async def _targets(ctx: Context, target: str, route: RouteFlags, account: AccountFlags) -> list[str]:
    """What to open for ``target``: the file itself, or the task's files, else its URLs."""
    if Path(target).exists():
        return [str(Path(target))]
    if os.sep in target or "/" in target or Path(target).suffix:
        raise UsageError(f"no such file: {target}", hint="give a task id or the path of a file")
    journal = ctx.journal()
    try:
        entry = journal.find(target)
    finally:
        journal.close()
    known = entry.record if entry is not None else None
    if known is not None:
        files = [f for f in known.get("files") or [] if Path(f).exists()]
        if files or known.get("outputs"):
            return files or list(known["outputs"])
    return await _outputs_from_provider(ctx, target, route, account)


async def _outputs_from_provider(ctx: Context, task_id: str, route: RouteFlags, account: AccountFlags) -> list[str]:
    from get3w_cli.cli import flows, resolve
    from get3w_cli.cli.context import open_services

    async with open_services(ctx, resolve.access(ctx, account, provider=route.provider)) as services:
        adapter, _, _ = flows.locate(ctx, services, route, account, task_id, "open")
        with flows.about_task(ctx, services, task_id, "open"):
            task = await adapter.get(task_id)
    if not task.outputs:
        raise UsageError(f"task {task_id} is {task.status.value} and has no outputs to open")
    return list(task.outputs)


def viewer(target: str, env: Mapping[str, str]) -> list[str] | None:
    """The command that shows ``target`` (a path or a URL), or None when this machine has none."""
    browser = env.get("BROWSER", "").split(os.pathsep)[0].strip()
    if browser:
        words = shlex.split(browser)
        return [w.replace("%s", target) for w in words] if "%s" in browser else [*words, target]
    if sys.platform == "darwin":
        return ["open", target]
    if sys.platform == "win32":
        return ["cmd", "/c", "start", "", target]
    found = shutil.which("xdg-open", path=env.get("PATH"))
    return [found, target] if found else None


def view(target: str, env: Mapping[str, str]) -> None:
    """Show ``target`` in the viewer; a viewer still open after OPEN_WAIT keeps running on its own.

    Raises:
        ConfigError: no viewer, or the viewer could not be started or failed.
    """
    command = viewer(target, env)
    if command is None:
        import webbrowser

        if "://" in target and webbrowser.open(target):
            return
        raise ConfigError(f"no program to open {target} with",
                          hint="install xdg-utils (xdg-open), or set BROWSER to a viewer command, e.g. "
                               "BROWSER='firefox %s'")
    try:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, start_new_session=True)  # noqa: S603 - the user's own viewer
    except OSError as exc:
        raise ConfigError(f"cannot run {command[0]}: {exc.strerror or exc}",
                          hint="check BROWSER, or install xdg-utils (xdg-open)") from exc
    try:
        code = process.wait(C.OPEN_VIEWER_WAIT)
    except subprocess.TimeoutExpired:
        return  # a viewer that stays open until its window is closed
    if code != 0:
        raise ConfigError(f"{Path(command[0]).name} could not open {target} (exit status {code})",
                          hint="check BROWSER, or your desktop's default application for this kind of file")
