"""``g3w __complete KIND [PREFIX]``: the values the shell completion scripts cannot know statically.

    models  the model names of the lists ``g3w models`` cached (models_cache), Get3W's also short
    tasks   the ids of the newest journalled tasks

One value a line on stdout, those starting with PREFIX. It reads local files only, never the
network, and fails silently (a completion must never print an error into the user's line).
``cli.main`` calls ``main`` before typer is even imported, so completing is faster than ``--help``;
the hidden ``__complete`` command (complete_cmd.py) is the same for in-process callers.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

KINDS = ("models", "tasks")


def values(kind: str, prefix: str, env: Mapping[str, str]) -> list[str]:
    """The completions of ``kind`` that start with ``prefix`` (none for an unknown kind)."""
    from get3w_cli.config import default_state_dir

    state = default_state_dir(env)
    found: list[str] = []
    if kind == "models":
        from get3w_cli import models_cache
        from get3w_cli.names import Provider

        for name in models_cache.cached_run_names(state):
            found.append(name)
            short = name.removeprefix(f"{Provider.GET3W}/")
            if short != name and "/" not in short:  # flux-dev means get3w/flux-dev
                found.append(short)
    elif kind == "tasks":
        found = _task_ids(state)
    return [value for value in dict.fromkeys(found) if value.startswith(prefix)]


def _task_ids(state: os.PathLike[str]) -> list[str]:
    from pathlib import Path

    from get3w_cli.cli.context import JOURNAL_FILE
    from get3w_cli.constants import COMPLETION_TASK_IDS
    from get3w_cli.errors import G3wError
    from get3w_cli.journal import Journal

    path = Path(state) / JOURNAL_FILE
    if not path.is_file():
        return []  # completing must not create the journal
    try:
        journal = Journal(path)
        try:
            return [e.id for e in journal.tasks(limit=COMPLETION_TASK_IDS) if e.id]
        finally:
            journal.close()
    except G3wError:
        return []


def main(argv: list[str]) -> int:
    """``g3w __complete KIND [PREFIX]`` without typer: print the values, exit 0 whatever happens."""
    if argv and argv[0] in KINDS:
        try:
            sys.stdout.write("".join(f"{v}\n" for v in values(argv[0], argv[1] if len(argv) > 1 else "",
                                                            os.environ)))
        except (OSError, ValueError):
            pass  # a closed pipe, an unreadable home: no completions, no noise
    return 0

