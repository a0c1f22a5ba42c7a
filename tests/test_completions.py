"""The shipped completion scripts match the CLI, and complete for real in bash, zsh and fish."""

from __future__ import annotations

import os
import re
import select
import shlex
import shutil
import subprocess
import sys
import time
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


@pytest.fixture
def shell_env(tmp_path: Path) -> dict[str, str]:
    """What a user's shell would have: `g3w` on PATH, a cached model list, a journalled task, and
    a folder with a file and a sub-folder to complete paths in (the current directory)."""
    from inproc import invoke

    from get3w_cli.models import ModelInfo
    from get3w_cli.models_cache import ModelsCache

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "g3w"
    shim.write_text(f"#!/bin/sh\nPYTHONPATH={ROOT} exec {sys.executable} -m get3w_cli \"$@\"\n")
    shim.chmod(0o755)
    home = Path(os.environ["G3W_HOME"])
    cache = ModelsCache(home)
    cache.save("get3w", "https://api.get3w.com",
               [ModelInfo("get3w", name, f"get3w/{name}") for name in ("flux-dev", "flux-schnell")])
    cache.save("abstrakt", "https://api.abstrakt.one", [ModelInfo("abstrakt", "flux-schnell", "abstrakt:flux-schnell")])
    task_id = invoke("submit", "flux-dev", "-p", "x", "--sandbox").stdout.strip()
    work = tmp_path / "work"
    (work / "pics" / "dir").mkdir(parents=True)
    (work / "pics" / "a.png").write_bytes(b"")
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "TASK_ID": task_id,
            "WORK": str(work)}


# (typed line, what completing it must offer exactly); TASK is the journalled task's id.
CASES = [
    ("g3w ru", {"run"}),
    ("g3w run flux-dev --vi", {"--via"}),
    ("g3w run --via ", {"auto", "webhook", "poll", "sync", "stream"}),
    ("g3w run --tunnel n", {"ngrok", "none"}),
    ("g3w run fl", {"flux-dev", "flux-schnell"}),
    ("g3w run -p cat flux-s", {"flux-schnell"}),
    ("g3w submit abstrakt:fl", {"abstrakt:flux-schnell"}),
    ("g3w get pred", {"TASK"}),
    ("g3w history --status c", {"created", "completed", "cancelled"}),
    ("g3w config get defaults.", {"defaults.via", "defaults.timeout", "defaults.output", "defaults.preview"}),
    ("g3w run --input pics/", {"pics/a.png", "pics/dir"}),
    ("g3w run -o pics/", {"pics/dir"}),
    ("g3w help hi", {"history"}),
]


def _expected(want: set[str], env: dict[str, str]) -> set[str]:
    return {env["TASK_ID"] if w == "TASK" else w for w in want}


def _bash_complete(line: str, env: dict[str, str]) -> list[str]:
    """Complete ``line`` as bash would: COMP_WORDS split at blanks and at ':' (COMP_WORDBREAKS)."""
    words = [piece for word in line.split(" ") for piece in re.split(r"(:)", word) if piece != ""]
    words += [""] if line.endswith(" ") else []
    array = " ".join(shlex.quote(w) for w in words)
    script = ROOT / "completions" / FILES["bash"]
    code = (f"source {script}; COMP_WORDBREAKS=$'\"\\'><=;|&(:'; COMP_LINE={shlex.quote(line)}; "
            f"COMP_POINT=${{#COMP_LINE}}; COMP_WORDS=({array}); COMP_CWORD={len(words) - 1}; _g3w; "
            "printf '%s\\n' \"${COMPREPLY[@]}\"")
    out = subprocess.run(["bash", "-c", code], capture_output=True, text=True, check=True, env=env, cwd=env["WORK"])
    return out.stdout.split()


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash not installed")
@pytest.mark.parametrize(("line", "want"), CASES, ids=[c[0] for c in CASES])
def test_bash_completes(shell_env: dict[str, str], line: str, want: set[str]) -> None:
    """Commands, options, choices, models (from the cache), task ids (from the journal), statuses,
    config keys, files for FILE and only folders for DIR. After `abstrakt:` bash replaces only what
    follows the colon, so the script offers that part."""
    got = _bash_complete(line, shell_env)
    expected = _expected(want, shell_env)
    if ":" in line.split(" ")[-1]:
        expected = {w.rpartition(":")[2] for w in expected}
    assert set(got) == expected, got


def test_bash_offers_nothing_where_nothing_fits(shell_env: dict[str, str]) -> None:
    """A second argument to run, a duration: no list (and no stray file names)."""
    assert _bash_complete("g3w run flux-dev ", shell_env) == []
    assert _bash_complete("g3w run --timeout ", shell_env) == []
    assert "--secret" not in _bash_complete("g3w run --", shell_env)


@pytest.mark.skipif(shutil.which("fish") is None, reason="fish not installed (apt-get install fish)")
@pytest.mark.parametrize(("line", "want"), CASES, ids=[c[0] for c in CASES])
def test_fish_completes(shell_env: dict[str, str], line: str, want: set[str]) -> None:
    script = ROOT / "completions" / FILES["fish"]
    out = subprocess.run(["fish", "--no-config", "-c", f"source {script}; complete -C {shlex.quote(line)}"],
                         capture_output=True, text=True, check=True, env=shell_env, cwd=shell_env["WORK"])
    got = {row.split("\t")[0].rstrip("/") for row in out.stdout.splitlines()}
    assert got == _expected(want, shell_env), out.stdout


ZSHRC = """\
fpath=({completions} $fpath)
autoload -Uz compinit && compinit -u -D
compadd() {{  # every candidate the completion offers, to a file (then the real compadd)
  if [[ ${{@[1,(i)(-|--)]}} == *-(O|A|D)\\ * ]]; then builtin compadd "$@"; return $?; fi
  local -a hits; builtin compadd -A hits "$@"
  (( $#hits )) && print -rl -- $hits >> {out}
  builtin compadd "$@"
}}
_test_complete() {{ zle complete-word; print -r -- done > {out}.done }}
zle -N _test_complete
bindkey '^I' _test_complete
print -r -- ready > {out}.ready
"""


def _zsh_complete(line: str, env: dict[str, str], tmp: Path) -> set[str]:
    """Type ``line`` and Tab in an interactive zsh on a pseudo-terminal; what compadd was given."""
    out = tmp / "offered"
    tmp.mkdir()
    (tmp / ".zshrc").write_text(ZSHRC.format(completions=ROOT / "completions", out=out))
    master, terminal = os.openpty()
    proc = subprocess.Popen(["zsh", "-i"], stdin=terminal, stdout=terminal, stderr=terminal, cwd=env["WORK"],
                            env={**env, "ZDOTDIR": str(tmp), "TERM": "dumb"}, start_new_session=True)
    os.close(terminal)
    try:
        for marker, then in ((Path(f"{out}.ready"), line.encode() + b"\t"), (Path(f"{out}.done"), b"")):
            deadline = time.monotonic() + 30
            while not marker.exists():  # the shell's own output is drained meanwhile
                assert time.monotonic() < deadline, f"zsh did not get to {marker.name}"
                if select.select([master], [], [], 0.2)[0]:
                    os.read(master, 65536)
            if then:
                os.write(master, then)
    finally:
        proc.kill()
        proc.wait()
        os.close(master)
    return set(out.read_text().split()) if out.exists() else set()


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh not installed (apt-get install zsh)")
@pytest.mark.parametrize(("line", "want"), CASES, ids=[c[0] for c in CASES])
def test_zsh_completes(shell_env: dict[str, str], tmp_path: Path, line: str, want: set[str]) -> None:
    """zsh offers path completions by their last part (a.png, dir), and the whole model names."""
    got = _zsh_complete(line, shell_env, tmp_path / "zsh")
    expected = {w.rpartition("/")[2] if w.startswith("pics/") else w for w in _expected(want, shell_env)}
    assert got == expected


def test_complete_helper_reads_only_local_files(shell_env: dict[str, str], tmp_path: Path) -> None:
    """`g3w __complete`: cached models (Get3W's also short) and journalled ids; nothing for an
    unknown kind; no journal is created where there is none; the same in-process."""
    from inproc import invoke

    def complete(*args: str, env: dict[str, str] = shell_env) -> list[str]:
        result = subprocess.run(["g3w", "__complete", *args], capture_output=True, text=True, env=env, check=True)
        assert result.stderr == ""
        return result.stdout.split()

    assert sorted(complete("models")) == ["abstrakt:flux-schnell", "flux-dev", "flux-schnell", "get3w/flux-dev",
                                          "get3w/flux-schnell"]
    assert complete("models", "abstrakt:") == ["abstrakt:flux-schnell"]
    assert complete("tasks") == [shell_env["TASK_ID"]]
    assert complete("nothing") == []
    empty = tmp_path / "empty-home"
    assert complete("tasks", env={**shell_env, "G3W_HOME": str(empty)}) == []
    assert not empty.exists()
    assert invoke("__complete", "tasks").stdout.split() == [shell_env["TASK_ID"]]


def test_complete_helper_loads_no_typer() -> None:
    """Completing costs less than `g3w --help`: the helper runs before typer is imported."""
    code = ("import sys; sys.argv = ['g3w', '__complete', 'models']\n"
            "from get3w_cli.cli import main\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('typer', 'httpx', 'rich') if m in sys.modules), file=sys.stderr)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stderr.strip() == "[]"


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
