"""The sandbox's knobs (``SandboxOptions``), read live: tests may change them between requests
(except ``state_file``, read when the sandbox starts)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from get3w_cli.constants import SANDBOX_DEFAULT_DURATION, SANDBOX_SYNC_CUTOFF


@dataclass
class SandboxOptions:
    """How the sandbox behaves; every field may be changed while it runs."""

    duration: float = SANDBOX_DEFAULT_DURATION
    webhook_secret: str | None = None
    abstrakt_sign_body_only: bool = False
    webhook_time_scale: float = 1.0
    webhook_duplicates: int = 0
    sync_cutoff: float = SANDBOX_SYNC_CUTOFF
    max_concurrent: int | None = None
    retry_after: float = 1.0
    # Where tasks are saved for the next sandbox (see persist); read once, by start().
    state_file: Path | None = None
    # Told of each API or CDN request once answered: (method, path, status; None: connection
    # dropped on purpose). `g3w sandbox` prints a line for each.
    on_request: Callable[[str, str, int | None], None] | None = None
