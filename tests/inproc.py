"""The CLI app run in-process, for commands that stop before any network I/O (a subprocess adds only time)."""

from __future__ import annotations

import logging

from typer.testing import CliRunner

from conftest import Result
from get3w_cli.cli.app import app


def invoke(*args: str, env: dict[str, str] | None = None, input: str | None = None) -> Result:
    """Run ``g3w ARGS`` in this process; stdout and stderr kept apart, logging left as it was."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        outcome = CliRunner().invoke(app, list(args), env=env, input=input)
    finally:
        root.handlers[:], root.level = handlers, level
    return Result(outcome.exit_code, outcome.stdout, outcome.stderr)
