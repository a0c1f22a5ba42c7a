"""Static shell completion scripts (bash, zsh, fish) generated from the command tree.

    python -m get3w_cli.cli.completion --write completions/

What a value completes to follows from the metavar its help shows: FILE completes files, DIR
folders, MODEL the cached model names and ID the journalled task ids (both through the hidden,
local-only ``g3w __complete KIND``: cli/complete.py), STATUS the statuses; choices (--via,
--tunnel...), config KEYs and help's COMMAND complete to their fixed lists. A test regenerates
the scripts and fails when the files in ``completions/`` are stale; others run them in the real
shells.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROG = "g3w"
FILES = {"bash": "g3w.bash", "zsh": "_g3w", "fish": "g3w.fish"}
# Kinds of value: "words" complete to a fixed list; the others as named.
FILE, DIR, MODELS, TASKS, WORDS = "file", "dir", "models", "tasks", "words"
BY_METAVAR = {"FILE": FILE, "DIR": DIR, "MODEL": MODELS, "ID": TASKS}


@dataclass(frozen=True)
class Value:
    kind: str | None  # FILE, DIR, MODELS, TASKS, WORDS, or None: nothing to offer
    words: tuple[str, ...] = ()


@dataclass(frozen=True)
class Opt:
    names: tuple[str, ...]
    help: str
    takes_value: bool
    value: Value = Value(None)

    @property
    def choices(self) -> tuple[str, ...]:
        return self.value.words


@dataclass(frozen=True)
class Cmd:
    path: tuple[str, ...]  # ("run",) or ("config", "get")
    help: str
    options: tuple[Opt, ...]
    subcommands: tuple[str, ...] = ()
    args: tuple[Value, ...] = ()  # the positional arguments in order
    variadic: bool = False  # the last argument repeats (help COMMAND...)

    def arg(self, index: int) -> Value | None:
        if index < len(self.args):
            return self.args[index]
        return self.args[-1] if self.variadic and self.args else None


def _first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0] if (text or "").strip() else ""


def _value(param: Any) -> Value:
    from get3w_cli.cli.app import COMMANDS
    from get3w_cli.cli.help_format import choices_of
    from get3w_cli.config import CONFIG_KEYS
    from get3w_cli.records import Status

    choices = choices_of(param)
    if choices:
        return Value(WORDS, choices)
    metavar = param.metavar or ""
    if metavar == "STATUS":  # the task statuses, and the journal's own states of a submit
        return Value(WORDS, (*(s.value for s in Status), "unknown", "submitting"))
    if param.param_type_name == "argument" and metavar == "KEY":
        return Value(WORDS, CONFIG_KEYS)
    if param.param_type_name == "argument" and metavar == "COMMAND":
        return Value(WORDS, tuple(COMMANDS))
    return Value(BY_METAVAR.get(metavar))


def _options(command: Any) -> tuple[Opt, ...]:
    out = []
    for param in command.params:
        if getattr(param, "param_type_name", "") != "option" or getattr(param, "hidden", False):
            continue
        out.append(Opt(tuple(param.opts) + tuple(param.secondary_opts), _first_line(param.help),
                       not param.is_flag, Value(None) if param.is_flag else _value(param)))
    out.append(Opt(("--help", "-h"), "Show help and exit.", False))
    return tuple(out)


def _cmd(path: tuple[str, ...], command: Any, subs: tuple[str, ...] = ()) -> Cmd:
    arguments = [p for p in command.params if getattr(p, "param_type_name", "") == "argument"]
    return Cmd(path, _first_line(command.help), _options(command), subs, tuple(_value(a) for a in arguments),
               bool(arguments) and arguments[-1].nargs == -1)


def command_tree() -> list[Cmd]:
    """Every command and sub-command of the app, with its options and arguments."""
    import typer.main

    from get3w_cli.cli.app import app

    root = typer.main.get_command(app)
    names = root.list_commands(None)  # type: ignore[attr-defined]
    cmds = [Cmd((), _first_line(root.help), _options(root), tuple(names))]
    for name in names:
        command = root.get_command(None, name)  # type: ignore[attr-defined]
        subs = getattr(command, "commands", None) or {}
        cmds.append(_cmd((name,), command, tuple(subs)))
        cmds.extend(_cmd((name, sub_name), sub) for sub_name, sub in subs.items())
    return cmds


def _q(text: str) -> str:
    return text.replace("'", "'\\''")


def _value_options(cmd: Cmd) -> str:
    return " ".join(name for opt in cmd.options if opt.takes_value for name in opt.names)


def render_all() -> dict[str, str]:
    """File name -> script text, for every supported shell."""
    from get3w_cli.cli.completion_scripts import render_bash, render_fish, render_zsh

    cmds = command_tree()
    return {FILES["bash"]: render_bash(cmds), FILES["zsh"]: render_zsh(cmds), FILES["fish"]: render_fish(cmds)}


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] != "--write":
        sys.stderr.write("usage: python -m get3w_cli.cli.completion --write DIR\n")
        return 2
    target = Path(argv[1])
    target.mkdir(parents=True, exist_ok=True)
    for name, text in render_all().items():
        (target / name).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
