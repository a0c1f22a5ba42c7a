"""The command-line layer: the only code that parses flags, prints, reads the environment or exits."""

from __future__ import annotations


def main() -> None:
    """Entry point of the ``g3w`` console script."""
    import sys

    if sys.argv[1:2] == ["__complete"]:  # the shell completion scripts' helper: no typer, no command tree
        from get3w_cli.cli.complete import main as complete

        sys.exit(complete(sys.argv[2:]))
    import gc

    # Start-up only creates objects that live as long as the process (modules, classes, the
    # command tree): the collector's passes over them while importing are wasted, a full one
    # alone ~30 ms. ``boundary.run`` turns it back on, with those objects frozen, before the
    # command's own work begins.
    gc.disable()
    try:
        from get3w_cli.cli.app import app

        app(prog_name="g3w")
    finally:
        gc.enable()
