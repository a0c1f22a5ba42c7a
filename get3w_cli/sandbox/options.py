"""The sandbox's knobs (``SandboxOptions``), read live: tests may change them between requests
(except ``state_file``, read when the sandbox starts)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from get3w_cli.constants import SANDBOX_DEFAULT_DURATION, SANDBOX_SYNC_CUTOFF
from get3w_cli.names import SignatureScheme


@dataclass
class SandboxOptions:
    """How the sandbox behaves; every field may be changed while it runs."""

    duration: float = SANDBOX_DEFAULT_DURATION
    webhook_secret: str | None = None
    # How deliveries are signed; NATIVE: each API its own way (Abstrakt's over the body alone
    # with abstrakt_sign_body_only). The Standard schemes add webhook-id, stable across retries.
    signature_scheme: str = SignatureScheme.NATIVE
    abstrakt_sign_body_only: bool = False
    webhook_time_scale: float = 1.0
    webhook_duplicates: int = 0
    sync_cutoff: float = SANDBOX_SYNC_CUTOFF
    # Which Abstrakt docs generation the run endpoint follows: "both" (either switch makes a run
    # asynchronous; a webhook_url too), "newer" (only "sync": false or a webhook_url), "older"
    # (synchronous by default; only "async": true returns at once).
    abstrakt_generation: str = "both"
    # Abstrakt's cancel answer (undocumented): "job" (the job), "empty" (204, no body), "odd"
    # (200, a JSON object that is no job), "text" (200, plain text).
    abstrakt_cancel_answer: str = "job"
    # At most this many models a page of GET /v1/models, whatever ``limit`` asks (None: 100).
    abstrakt_models_page_max: int | None = None
    # POST /api/v3/files/upload answers data.url ("url"), data.download_url ("download_url"), or
    # 404 ("wavespeed": only WaveSpeed's /api/v3/media/upload/binary, data.download_url, works).
    upload_answer: str = "url"
    max_concurrent: int | None = None
    retry_after: float = 1.0
    # Where tasks are saved for the next sandbox (see persist); read once, by start().
    state_file: Path | None = None
    # The shape of Get3W v3's model list: "wavespeed" (with input schemas) or "get3w" (catalogue).
    models_shape: str = "wavespeed"
    # Told of each API or CDN request once answered: (method, path, status; None: connection
    # dropped on purpose). `g3w sandbox` prints a line for each.
    on_request: Callable[[str, str, int | None], None] | None = None
