"""The shipped completion scripts match the CLI, and the bash one completes for real."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from get3w_cli.cli.completion import FILES, render_all

ROOT = Path(__file__).resolve().parent.parent


def test_completion_scripts_are_current() -> None:
    """Regenerating from the command tree gives exactly the files in completions/."""
    for name, text in render_all().items():
        shipped = (ROOT / "completions" / name).read_text(encoding="utf-8")
        regenerate = "python -m get3w_cli.cli.completion --write completions/"
        assert shipped == text, f"completions/{name} is stale: run {regenerate}"


def test_every_command_and_option_is_in_each_script() -> None:
    """Each script names every command and every long option of `run`."""
    from get3w_cli.cli.completion import command_tree

    tree = command_tree()
    run = next(c for c in tree if c.path == ("run",))
    for text in render_all().values():
        for cmd in tree:
            for word in cmd.path:
                assert word in text
        for opt in run.options:
            assert opt.names[0].lstrip("-") in text


def _bash_complete(words: str) -> list[str]:
    script = ROOT / "completions" / FILES["bash"]
    line = (f"source {script}; COMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}}-1)); _g3w; "
            "printf '%s\\n' \"${COMPREPLY[@]}\"")
    out = subprocess.run(["bash", "-c", line], capture_output=True, text=True, check=True)
    return out.stdout.split()


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash not installed")
def test_bash_completes_commands_options_and_choices() -> None:
    """g3w ru<TAB> -> run; g3w run --vi<TAB> -> --via; g3w run --via <TAB> -> the modes; config <TAB> -> its verbs."""
    assert _bash_complete("g3w ru") == ["run"]
    assert _bash_complete("g3w run flux-dev --vi") == ["--via"]
    assert _bash_complete("g3w run --via ''") == ["auto", "webhook", "poll", "sync", "stream"]
    assert set(_bash_complete("g3w config ''")) >= {"get", "set", "unset", "list", "path"}
    assert "--secret" not in _bash_complete("g3w run --")


def test_root_help_lines_match_the_commands() -> None:
    """The lazy root lists each command with the first line of that command's own docstring."""
    from get3w_cli.cli.app import COMMANDS, load_command

    for name, (_, text) in COMMANDS.items():
        command = load_command(name)
        assert command is not None and command.name == name
        assert (command.help or "").strip().splitlines()[0] == text


def test_help_imports_no_command_module() -> None:
    """`g3w --help` lists every command without importing any command module (fast start-up)."""
    code = ("import sys; sys.argv = ['g3w', '--help']\n"
            "from get3w_cli.cli import main\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m.endswith(('_cmd', '_cmds'))), file=sys.stderr)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stderr.strip() == "[]"
    for name in ("run", "listen", "batch", "config", "doctor"):
        assert f"\n  {name} " in out.stdout
