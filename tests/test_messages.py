"""Messages in the tool's voice (issue #13): no Python class names or [Errno N], hints that name the
right provider and only flags that exist, "did you mean" for models, silent no-ops that speak, and a
task made with --sandbox looked up without it."""

from __future__ import annotations

import ast
import re
import socket
import sys
from pathlib import Path

import pytest
from conftest import ThreadedSandbox, sandbox_env
from inproc import invoke

from get3w_cli.cli.app import COMMANDS, app, load_command
from get3w_cli.errors import AuthError, error_for_status, plain_reason
from get3w_cli.names import FACTS, PROVIDERS

PACKAGE = Path(__file__).resolve().parent.parent / "get3w_cli"
PYTHONISMS = re.compile(r"\[Errno|Error: \w+Error|\b\w+(Error|Exception): |Traceback|Value error,")


def assert_plain(stderr: str) -> None:
    assert not PYTHONISMS.search(stderr.replace("Error: ", "", 1)), stderr


# --- no Python in messages ------------------------------------------------------------------


@pytest.mark.parametrize(("exc", "words"), [
    (PermissionError(13, "Permission denied"), "permission denied"),
    (FileNotFoundError(2, "No such file or directory", "/x"), "no such file or directory"),
    (socket.gaierror(-2, "Name or service not known"), "name or service not known"),
    (OSError("[Errno 111] Connect call failed"), "connect call failed"),
    (KeyError("headers"), "no 'headers'"),
    (ValueError(""), "no details given"),
    (RuntimeError("ERR_NGROK_108 limit"), "ERR_NGROK_108 limit"),
])
def test_plain_reason_is_a_sentence_not_a_class(exc: BaseException, words: str) -> None:
    assert plain_reason(exc) == words


def test_no_code_puts_a_class_name_in_a_message() -> None:
    """No `type(exc).__name__` in messages (the sandbox's own delivery log, a test tool, aside)."""
    found = [f"{path.relative_to(PACKAGE)}:{n}" for path in PACKAGE.rglob("*.py") if "sandbox" not in path.parts
             for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
             if re.search(r"type\(\w+\)\.__name__", line) and re.search(r"exc|err", line)]
    assert found == []


def test_unreadable_config_file_in_words(tmp_path: Path) -> None:
    """A config path that is a folder: `is a directory`, not `[Errno 21] Is a directory: '...'`."""
    folder = tmp_path / "config.toml"
    folder.mkdir()
    result = invoke("config", "list", env={"G3W_CONFIG": str(folder)})
    assert result.code == 3
    assert f"cannot read config file {folder}: is a directory" in result.stderr
    assert_plain(result.stderr)


def test_unreadable_input_file_in_words(tmp_path: Path) -> None:
    result = invoke("run", "flux-dev", "--input", str(tmp_path), "--sandbox")
    assert result.code == 2
    assert f"cannot read --input {tmp_path}: is a directory" in result.stderr
    assert_plain(result.stderr)


def test_journal_that_cannot_be_opened_in_words(tmp_path: Path) -> None:
    """G3W_HOME is a file: the journal cannot be created, said in words."""
    home = tmp_path / "home-file"
    home.write_text("")
    result = invoke("history", env={"G3W_HOME": str(home)})
    assert result.code == 3
    assert f"cannot open the journal {home}/history.db: file exists" in result.stderr
    assert_plain(result.stderr)


# --- hints that name the right provider, and flags that exist -------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_refused_key_points_at_that_providers_key(provider: str) -> None:
    """A 401's hint names that provider's key variable and config key, never the other's."""
    error = error_for_status(401, "HTTP 401: Invalid API key", about=FACTS[provider])
    assert isinstance(error, AuthError) and error.hint
    assert FACTS[provider].key_env in error.hint and f"{provider}.api_key" in error.hint
    assert all(FACTS[other].key_env not in error.hint for other in PROVIDERS if other != provider)


@pytest.mark.parametrize(("model", "key_env", "other_env"), [
    ("abstrakt:flux-schnell", "ABSTRAKT_API_KEY", "GET3W_API_KEY"),
    ("flux-dev", "GET3W_API_KEY", "ABSTRAKT_API_KEY"),
    ("google/nano-banana-pro/text-to-image", "GET3W_API_KEY", "ABSTRAKT_API_KEY"),
])
def test_401_through_the_cli_names_the_providers_key(sandbox: ThreadedSandbox, model: str, key_env: str,
                                                     other_env: str) -> None:
    result = invoke("run", model, "-p", "x", "--via", "poll", env=sandbox_env(sandbox, key="sk_invalid"))
    assert result.code == 3
    hint = next(line for line in result.stderr.splitlines() if line.startswith("Hint: "))
    assert key_env in hint and other_env not in hint, hint


@pytest.mark.parametrize(("model", "says", "not_says"), [
    ("flux-dev", "g3w balance", "ABSTRAKT"),
    ("abstrakt:flux-schnell", "top up the Abstrakt account", "g3w balance"),
])
def test_no_funds_points_at_the_balance(sandbox: ThreadedSandbox, model: str, says: str, not_says: str) -> None:
    """Get3W's 403 "Insufficient balance" points at `g3w balance`; Abstrakt's QUOTA_EXCEEDED at its
    account (g3w has no Abstrakt balance command)."""
    result = invoke("run", model, "-p", "x", "--via", "poll", env=sandbox_env(sandbox, key="sk_broke"))
    assert result.code == 3
    hint = next(line for line in result.stderr.splitlines() if line.startswith("Hint: "))
    assert says in hint and not_says not in hint, hint


def _every_flag() -> set[str]:
    from typer.main import get_command

    flags = {"--help", "-h", *(o for p in get_command(app).params for o in getattr(p, "opts", ()))}
    for name in COMMANDS:
        command = load_command(name)
        for each in [command, *(getattr(command, "commands", {}) or {}).values()]:
            for param in each.params:
                flags.update(getattr(param, "opts", ()), getattr(param, "secondary_opts", ()))
    return flags


# Flags in the code's text that are not g3w's: the completion generator's own command line, and
# cloudflared's (the command line g3w starts it with, and its version query).
NOT_G3W_FLAGS = {"--write", "--no-autoupdate", "--url", "--version"}


def test_every_flag_named_in_the_code_exists() -> None:
    """Every `--flag` in a string of the package (hints, messages, help, docstrings) is an option
    of some g3w command."""
    flags = _every_flag() | NOT_G3W_FLAGS
    pattern = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*[a-z0-9]")
    unknown = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                unknown += [f"{path.relative_to(PACKAGE)}:{node.lineno} {flag}"
                            for flag in pattern.findall(node.value) if flag not in flags]
    assert unknown == []


def test_the_flag_check_is_not_blind() -> None:
    flags = _every_flag()
    assert {"--via", "--sandbox", "--delete-outputs", "--resubmit-unknown", "--replay", "-o"} <= flags
    assert "--verbose" not in flags


# --- silent no-ops speak --------------------------------------------------------------------


def test_models_search_without_a_match_says_so(sandbox: ThreadedSandbox) -> None:
    result = invoke("models", "zzzz", env=sandbox_env(sandbox))
    assert result.code == 0
    assert "no get3w model matches 'zzzz'" in result.stderr


def test_config_get_of_an_unset_key_says_it_is_unset(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    result = invoke("config", "get", "get3w.api_key", env={"G3W_CONFIG": str(config)})
    assert (result.code, result.stdout) == (1, "")
    assert f"get3w.api_key is not set in {config}" in result.stderr
    assert "GET3W_API_KEY" not in result.stderr
    result = invoke("config", "get", "get3w.api_key", env={"G3W_CONFIG": str(config), "GET3W_API_KEY": "sk_x"})
    assert result.code == 1 and "GET3W_API_KEY is set in the environment" in result.stderr


# --- did you mean, for models ---------------------------------------------------------------


def test_an_unknown_model_suggests_from_the_cached_list(sandbox: ThreadedSandbox) -> None:
    """Once the list is cached (by the input check of run and submit for Get3W v3, by `g3w models`
    for Abstrakt), a 404 on submit suggests the close names; with no list, the hint says where
    names are listed."""
    env = sandbox_env(sandbox)
    result = invoke("submit", "flux-dve", "-p", "x", env=env)
    assert result.code == 5
    assert "did you mean flux-dev " in result.stderr, result.stderr
    result = invoke("submit", "abstrakt:flux-schnel", "-p", "x", env=env)
    assert result.code == 5
    assert "Hint: check the model name: g3w models --provider abstrakt lists them" in result.stderr, result.stderr
    assert invoke("models", "--provider", "abstrakt", env=env).code == 0
    result = invoke("run", "flux-dve", "-p", "x", "--via", "poll", env=env)
    assert result.code == 5
    assert "did you mean flux-dev " in result.stderr, result.stderr
    result = invoke("submit", "abstrakt:flux-schnel", "-p", "x", env=env)
    assert result.code == 5
    assert "did you mean abstrakt:flux-schnell " in result.stderr, result.stderr
    assert "g3w models --provider abstrakt" in result.stderr


# --- a --sandbox task looked up without --sandbox ---------------------------------------------


@pytest.mark.parametrize("command", ["get", "wait", "cancel"])
def test_a_sandbox_task_looked_up_without_sandbox_says_add_it(command: str) -> None:
    """The journal knows the task with the base URL of a sandbox that is gone: exit 2 at once,
    pointing at --sandbox, instead of retrying a dead local port."""
    task_id = invoke("submit", "flux-dev", "-p", "x", "--sandbox").stdout.strip()
    result = invoke(command, task_id, env={"GET3W_API_KEY": "sk_test"})
    assert result.code == 2, result.stderr
    assert f"task {task_id} was created with --sandbox" in result.stderr
    assert f"g3w {command} {task_id} --sandbox" in result.stderr
    assert invoke(command, task_id, "--sandbox").code in (0, 2)  # cancel of a finished task is 2


@pytest.mark.parametrize("command", ["download", "open"])
def test_download_and_open_of_a_sandbox_task_without_sandbox_say_add_it(command: str, tmp_path: Path) -> None:
    """download and open look a journalled --sandbox task up as get does: exit 2 at once (the
    sandbox that made it is gone), the hint naming the command with --sandbox; nothing opened."""
    task_id = invoke("submit", "flux-dev", "-p", "x", "--sandbox").stdout.strip()
    shown = tmp_path / "shown"
    viewer = f"{sys.executable} -c \"open('{shown}', 'a').write('opened')\" %s"
    extra = ("-o", str(tmp_path / "out")) if command == "download" else ()
    result = invoke(command, task_id, *extra, env={"GET3W_API_KEY": "sk_test", "BROWSER": viewer})
    assert result.code == 2, result.stderr
    assert f"task {task_id} was created with --sandbox" in result.stderr
    assert f"g3w {command} {task_id} --sandbox" in result.stderr
    assert not shown.exists() and result.stdout == ""


def test_a_404_for_an_id_the_sandbox_made_says_add_sandbox(sandbox: ThreadedSandbox) -> None:
    """Not journalled (--no-history), so the provider is asked: its 404 points at --sandbox."""
    task_id = invoke("submit", "flux-dev", "-p", "x", "--sandbox", "--no-history").stdout.strip()
    result = invoke("get", task_id, env=sandbox_env(sandbox))
    assert result.code == 5
    assert f"created with --sandbox: add it (g3w get {task_id} --sandbox)" in result.stderr
    other = invoke("get", "pred_0000000000", env=sandbox_env(sandbox))
    assert other.code == 5 and "--sandbox" not in other.stderr
