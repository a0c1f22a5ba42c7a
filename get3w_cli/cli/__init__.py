"""The command-line layer: the only code that parses flags, prints, reads the environment or exits."""

from __future__ import annotations


def main() -> None:
    """Entry point of the ``g3w`` console script."""
    from get3w_cli.cli.app import app

    app(prog_name="g3w")
