"""The hidden ``g3w __complete KIND [PREFIX]`` command (the work is in complete.py, typer-free)."""

from __future__ import annotations

from typing import Annotated

import typer

from get3w_cli.cli.app import commands as app
from get3w_cli.cli.complete import main

Kind = Annotated[str, typer.Argument(metavar="KIND", help="models or tasks.", show_default=False)]
Prefix = Annotated[str, typer.Argument(metavar="PREFIX", help="What is typed so far.", show_default=False)]


@app.command("__complete", hidden=True)
def complete_cmd(kind: Kind, prefix: Prefix = "") -> None:
    """Print completion values, one a line (used by the shell completion scripts)."""
    main([kind, prefix])
