"""Help that teaches (issue #13): metavars that say what to type, options in the README's panels,
examples for every command, --json saying what it prints, `g3w help COMMAND`, "did you mean"."""

from __future__ import annotations

import re

import pytest
from conftest import g3w_on_terminal
from inproc import invoke

from get3w_cli.cli.app import COMMANDS, load_command

WIDTH = {"COLUMNS": "80"}
SCREEN = 24  # lines of one terminal screen: each panel of `run --help` fits in one


def _paths() -> list[tuple[str, ...]]:
    paths: list[tuple[str, ...]] = []
    for name in COMMANDS:
        command = load_command(name)
        paths.append((name,))
        paths.extend((name, sub) for sub in getattr(command, "commands", {}) or {})
    return paths


PATHS = _paths()


def _help(*path: str) -> str:
    result = invoke(*path, "--help", env=WIDTH)
    assert result.code == 0, result.stderr
    return result.stdout


def _sections(text: str) -> dict[str, list[str]]:
    """Each ``Title:`` section's lines (up to the next blank line)."""
    found: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if re.match(r"^[A-Z][\w ()]*:$", line):
            current = found.setdefault(line[:-1], [])
        elif not line.strip():
            current = None
        elif current is not None:
            current.append(line)
    return found


@pytest.mark.parametrize("path", PATHS, ids=" ".join)
def test_metavars_say_what_to_type(path: tuple[str, ...]) -> None:
    """No typer-isms: no {MODEL} in the Usage line, no <str>, <list[str]> or <a|b> metavars, and
    every line fits 80 columns."""
    text = _help(*path)
    usage = text.splitlines()[0]
    assert usage.startswith(f"Usage: g3w {' '.join(path)} [OPTIONS]"), usage
    assert "{" not in usage and "<" not in usage, usage
    assert not re.search(r"<(str|int|float|path|list\[\w+\]|[\w-]+(\|[\w-]+)+)>", text), text
    assert max(len(line) for line in text.splitlines()) <= 80, text


@pytest.mark.parametrize("path", PATHS, ids=" ".join)
def test_every_value_declares_what_to_type(path: tuple[str, ...]) -> None:
    """Every argument and every option that takes a value names it (a metavar or its choices), so
    none falls back to the type's word (TEXT, INTEGER) or the parameter's name."""
    command = load_command(path[0])
    for name in path[1:]:
        command = command.commands[name]
    for param in command.params:
        if param.param_type_name == "option" and param.is_flag:
            continue
        assert param.metavar or getattr(param.type, "choices", None), (path, param.name)


def test_run_usage_and_metavars() -> None:
    """run: `MODEL` in the usage line; choices as `auto|webhook|poll|sync`; durations, dirs, URLs named."""
    text = _help("run")
    assert text.splitlines()[0] == "Usage: g3w run [OPTIONS] MODEL"
    for shown in ("--via auto|webhook|poll|sync", "--timeout DURATION", "-o, --output DIR", "-i, --param KEY=VALUE",
                  "--input FILE", "--public-url URL", "--listen-port PORT", "--webhook-secret SECRET"):
        assert shown in text, shown


def test_run_help_groups_options_as_the_readme_does_each_in_one_screen() -> None:
    """Input, wait, output and connection options in that order, each panel (its heading too) at
    most a screen long on a real 80 x 24 terminal; --help alone under Options."""
    shown = g3w_on_terminal("run", "--help", env={}, size=(80, SCREEN), stdout_on_terminal=True)
    assert shown.code == 0, shown.stderr
    text = shown.stdout.replace("\r\n", "\n")
    sections = _sections(text)
    titles = [t for t in sections if t.endswith("options")]
    assert titles == ["Input options", "Wait options", "Output options", "Connection options"], titles
    assert "--via" in "\n".join(sections["Wait options"])
    assert "--prompt" in "\n".join(sections["Input options"])
    assert "--sandbox" in "\n".join(sections["Connection options"])
    for title, lines in sections.items():
        assert 1 + len(lines) <= SCREEN, (title, len(lines))
    assert [line.split()[0] for line in sections["Options"]] == ["-h,"]


@pytest.mark.parametrize("path", PATHS, ids=" ".join)
def test_every_command_has_examples(path: tuple[str, ...]) -> None:
    """An Examples section: at least two commands (sub-commands too), each after a # comment, and
    each one a g3w command line."""
    lines = _sections(_help(*path)).get("Examples", [])
    commands = [line.strip() for line in lines if not line.strip().startswith("#")]
    comments = [line for line in lines if line.strip().startswith("#")]
    assert len(commands) >= 2, lines
    assert len(comments) == len(commands)
    assert all("g3w " in line for line in commands), commands


@pytest.mark.parametrize("path", [p for p in PATHS if "--json" in _help(*p)], ids=" ".join)
def test_json_help_says_what_it_prints(path: tuple[str, ...]) -> None:
    """Each command's --json says whether it prints one JSON object, an array, or JSON Lines."""
    line = next(line for line in _help(*path).splitlines() if line.strip().startswith("--json"))
    assert re.search(r"one JSON (object|array)|JSON Lines", line), line


@pytest.mark.parametrize("path", [(), ("run",), ("batch",), ("config",), ("config", "set")], ids=" ".join)
def test_help_command_prints_the_commands_help(path: tuple[str, ...]) -> None:
    """`g3w help [COMMAND...]` is exactly `g3w [COMMAND...] --help`."""
    result = invoke("help", *path, env=WIDTH)
    assert result.code == 0, result.stderr
    assert result.stdout.rstrip("\n") == invoke(*path, "--help", env=WIDTH).stdout.rstrip("\n")


def test_help_of_an_unknown_command_suggests() -> None:
    result = invoke("help", "rnu")
    assert result.code == 2
    assert "no command 'rnu'" in result.stderr and "Did you mean 'run'?" in result.stderr
    result = invoke("help", "config", "gte")
    assert result.code == 2 and "g3w config has no command 'gte'" in result.stderr
    assert "'get'" in result.stderr


@pytest.mark.parametrize(("typed", "meant"), [("rn", "run"), ("histroy", "history"), ("cancle", "cancel")])
def test_a_mistyped_command_gets_did_you_mean(typed: str, meant: str) -> None:
    """The lazy root suggests from its command list (typer's own suggestion sees no loaded command)."""
    result = invoke(typed)
    assert result.code == 2
    assert f"No such command '{typed}'. Did you mean '{meant}'" in result.stderr, result.stderr


def test_a_word_like_no_command_gets_no_suggestion() -> None:
    result = invoke("zzzzzz")
    assert result.code == 2
    assert "No such command 'zzzzzz'." in result.stderr and "Did you mean" not in result.stderr
