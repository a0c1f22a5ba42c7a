"""Options declared once (cli/options.py): flag groups expand into every command that takes them,
positional arguments survive the expansion, and each command gets its groups back as FlagGroups."""

from __future__ import annotations

from typing import Annotated, Any

import pytest
import typer
from inproc import invoke
from typer.testing import CliRunner

from get3w_cli.cli.options import AccountFlags, InputFlags, TalkFlags, WaitFlags, options
from get3w_cli.names import Via


def _toy_app(seen: dict[str, Any]) -> typer.Typer:
    app = typer.Typer()

    @app.command("go")
    @options(hide=("quiet",))
    def go(first: Annotated[str, typer.Argument()], second: Annotated[str | None, typer.Argument()] = None, *,
           wait: WaitFlags, talk: TalkFlags) -> None:
        seen.update(first=first, second=second, wait=wait, talk=talk)

    @app.command("other")
    def other() -> None:
        """A second command keeps typer from folding the app into one command."""

    return app


def test_positional_arguments_survive_the_expansion_and_groups_come_back_whole() -> None:
    """`go A B --via poll --json`: both positionals in order, the flags inside their groups."""
    seen: dict[str, Any] = {}
    result = CliRunner().invoke(_toy_app(seen), ["go", "alpha", "beta", "--via", "poll", "--json", "--timeout", "5m"])
    assert result.exit_code == 0, result.output
    assert (seen["first"], seen["second"]) == ("alpha", "beta")
    assert isinstance(seen["wait"], WaitFlags) and isinstance(seen["talk"], TalkFlags)
    assert (seen["wait"].via, seen["wait"].timeout, seen["wait"].poll_max) == ("poll", "5m", None)
    assert seen["talk"].json_out is True and seen["talk"].quiet is False


def test_hidden_fields_are_not_options_and_keep_their_default() -> None:
    seen: dict[str, Any] = {}
    result = CliRunner().invoke(_toy_app(seen), ["go", "alpha", "--quiet"])
    assert result.exit_code == 2 and "No such option" in result.output
    assert CliRunner().invoke(_toy_app(seen), ["go", "alpha"]).exit_code == 0
    assert seen["talk"].quiet is False and seen["second"] is None


def test_every_wait_option_is_offered_by_run_and_batch_from_one_declaration() -> None:
    """A WaitFlags field is an option of run and batch without being listed there (one declaration)."""
    import typing

    names = []
    for field in WaitFlags.names():
        info = typing.get_type_hints(WaitFlags, include_extras=True)[field].__metadata__[0]
        names.append(info.default if isinstance(info.default, str) else info.param_decls[0])
    for command in ("run", "batch"):
        text = invoke(command, "--help").stdout
        assert all(name in text for name in names), (command, [n for n in names if n not in text])
    inputs = [typing.get_type_hints(InputFlags, include_extras=True)[name].__metadata__[0]
              for name in InputFlags.names()]
    assert all(info.default in invoke("submit", "--help").stdout for info in inputs)


def test_a_flag_group_is_frozen_and_knows_only_its_options() -> None:
    """Built from keywords (defaults for the rest), read-only, and a misspelt option is an error."""
    wait = WaitFlags(via=Via.POLL)
    assert (wait.via, wait.timeout, wait.listen_host) == (Via.POLL, None, "127.0.0.1")
    with pytest.raises(AttributeError):
        wait.via = Via.SYNC  # type: ignore[misc]
    with pytest.raises(TypeError, match="poll_maxx"):
        WaitFlags(poll_maxx="5s")  # type: ignore[call-arg]
    assert AccountFlags.names() == ("api_key", "base_url", "sandbox")
    assert "sk_" not in repr(AccountFlags(api_key="sk_secret"))  # no field-by-field repr to leak a key


def test_commands_keep_their_positional_arguments() -> None:
    """The real commands parse their positional arguments (a decorator that drops them would fail)."""
    for argv, expected in ((["run", "--help"], "MODEL"), (["cancel", "--help"], "ID"), (["batch", "--help"], "FILE"),
                           (["models", "--help"], "SEARCH"), (["config", "get", "--help"], "KEY")):
        result = invoke(*argv)
        assert result.code == 0 and expected in result.stdout.split("\n", 1)[0], (argv, result.stdout[:200])
    missing = invoke("run", "--via", "poll")
    assert missing.code == 2 and "MODEL" in missing.stderr
