"""How a command's ``--help`` reads: plain text (no rich: start-up), options grouped in panels.

typer groups options by ``rich_help_panel`` only when it renders help through rich, which costs
every command's start-up; ``G3wCommand`` renders the same panels with click's plain formatter
instead, in the order the command takes its flag groups (input, wait, output, connection), and
writes the metavars the options declare (``MODEL``, ``DURATION``, ``auto|webhook|poll|sync``),
never typer's ``{MODEL}`` or ``<str>``. A command's examples are its ``epilog``, built with
``examples()`` and printed as written (not re-wrapped).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from typing import Any

from typer.core import TyperCommand, TyperGroup

OTHER = "Options"
EXAMPLES = "Examples"
_SUGGESTIONS = 3  # "did you mean" names at most this many close matches


def examples(*pairs: tuple[str, str]) -> str:
    """A command's epilog: each example as a ``# what it does`` line and the command line."""
    return "\n".join(f"# {comment}\n{line}" for comment, line in pairs)


def did_you_mean(word: str, known: Iterable[str]) -> str:
    """`` Did you mean 'run'?`` for the closest known names, or an empty string."""
    matches = difflib.get_close_matches(word, list(known), n=_SUGGESTIONS)
    return f" Did you mean {' or '.join(repr(m) for m in matches)}?" if matches else ""


def choices_of(param: Any) -> tuple[str, ...]:
    # Read from the instance: typer versions differ in how they expose a parameter's type.
    for kind in (vars(param).get("type"), getattr(param, "type", None)):
        found = getattr(kind, "choices", None)
        if found:
            return tuple(str(getattr(c, "value", c)) for c in found)
    return ()


def metavar(param: Any) -> str:
    """What to type for a parameter: its declared metavar, else its choices, else its type's word."""
    if param.metavar:
        return str(param.metavar)
    choices = choices_of(param)
    if choices:
        return "|".join(choices)
    name = getattr(getattr(param, "type", None), "name", "")
    return {"integer": "N", "float": "NUMBER", "path": "FILE"}.get(name, "TEXT")


def usage_piece(param: Any) -> str:
    word = metavar(param) + ("..." if param.nargs == -1 else "")
    return word if param.required else f"[{word}]"


def _option_record(param: Any) -> tuple[str, str]:
    names = sorted([*param.opts, *param.secondary_opts], key=lambda n: (n.startswith("--"), n))
    first = ", ".join(names) + ("" if param.is_flag or getattr(param, "count", False) else f" {metavar(param)}")
    return first, (param.help or "") + (" (required)" if param.required else "")


class G3wCommand(TyperCommand):
    """A command whose help shows the option panels and the examples in plain text."""

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        return pieces + [usage_piece(p) for p in self.get_params(ctx)
                         if p.param_type_name == "argument" and not getattr(p, "hidden", False)]

    def format_options(self, ctx: Any, formatter: Any) -> None:
        format_panels(self.get_params(ctx), ctx, formatter)

    def format_epilog(self, ctx: Any, formatter: Any) -> None:
        if not self.epilog:
            return
        with formatter.section(EXAMPLES):
            for line in self.epilog.strip().splitlines():
                formatter.write(f"{'':>{formatter.current_indent}}{line}\n")


def format_panels(params: Sequence[Any], ctx: Any, formatter: Any) -> None:
    """Arguments, then one section per panel: the shared ones in the README's order (input, wait,
    output, connection), a command's own in the order its options come, then the rest."""
    arguments = [(metavar(p), p.help or "") for p in params
                 if p.param_type_name == "argument" and not getattr(p, "hidden", False)]
    panels: dict[str, list[tuple[str, str]]] = {}
    for param in params:
        if param.param_type_name == "option" and not getattr(param, "hidden", False):
            panel = getattr(param, "rich_help_panel", None) or OTHER
            panels.setdefault(panel, []).append(_option_record(param))
    if arguments and any(text for _, text in arguments):
        with formatter.section("Arguments"):
            formatter.write_dl(arguments)
    from get3w_cli.cli.options import CONN, INPUT, OUT, WAIT  # loaded already by every command

    other = panels.pop(OTHER, [])
    shared = [(title, panels.pop(title)) for title in (INPUT, WAIT, OUT, CONN) if title in panels]
    for title, rows in [*shared, *panels.items(), (OTHER, other)]:
        if rows:
            with formatter.section(title):
                formatter.write_dl(rows)


class G3wGroup(TyperGroup):
    """A group of sub-commands (``config``, ``relay``): its own options in panels as a command's,
    then its commands; its examples printed as written."""

    format_epilog = G3wCommand.format_epilog

    def format_options(self, ctx: Any, formatter: Any) -> None:
        format_panels(self.get_params(ctx), ctx, formatter)
        self.format_commands(ctx, formatter)
