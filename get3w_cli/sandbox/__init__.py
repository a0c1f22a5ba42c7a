"""The sandbox provider: a local emulation of Get3W v1, Get3W v3 and Abstrakt on one port.

It is both a user feature (``g3w sandbox --port 8080``; ``--sandbox`` on run/submit/wait/batch
starts one in-process) and the fake every test runs against. It speaks each API's paths,
envelopes, statuses and error bodies as described in ``api/get3w.md`` and ``api/abstrakt.md``,
makes real PNG outputs, and delivers signed webhooks with each provider's retry schedule.

APIs on one base URL:

- Get3W v3: ``POST /api/v3/{model id}``, ``GET /api/v3/predictions/{id}`` (and
  ``/result``), ``DELETE /api/v3/predictions/{id}``, ``GET /api/v3/models|balance|usage|billings``,
  ``POST /api/v3/files/upload`` and WaveSpeed's ``/api/v3/media/upload/binary``. Models:
  get3w/flux-dev, get3w/flux-schnell, get3w/wan-2.1-i2v-720p, wavespeed-ai/z-image/turbo.
- Get3W v1: ``POST /v1/{provider}/{model}/{task}[?webhook=URL][&sync=true]``,
  ``GET /v1/requests/{id}``. Models: google/nano-banana-pro/text-to-image,
  google/nano-banana-pro/edit, bytedance/seedance/text-to-video.
- Abstrakt: ``POST /v1/models/{model}/run`` (200 when done within ``sync_cutoff``, else 202),
  ``GET|DELETE /v1/jobs/{id}``, ``GET /v1/models[/{id}]``. Models: flux-schnell,
  nano-banana-pro-edit, fal-ai/flux/schnell, fal-ai/flux/dev.
- Outputs at ``/cdn/outputs/<id>_<i>.png``; admin endpoints under ``/_sandbox/`` (see control).

Keys: any ``Authorization: Bearer <key>`` works except ``sk_invalid`` (401 "Invalid or revoked
API key") and ``sk_broke`` (403 "Insufficient balance" on submits; Abstrakt QUOTA_EXCEEDED).

Per-task controls, read from the task's input (they stay in the echoed input):

- ``sandbox_duration`` (seconds): run time; default ``SandboxOptions.duration`` (video models
  take SANDBOX_VIDEO_DURATION_FACTOR times longer). Created/pending until 10 % of it, then
  processing, then completed or failed.
- ``sandbox_fail``: ``true`` or a message; the task ends ``failed`` with that error.
- ``sandbox_outputs`` (int, default 1): number of output images.
- ``sandbox_output_bytes`` (int): pad each PNG to about this size (a private ancillary chunk
  keeps it a valid PNG).
- ``sandbox_webhook``: ``"drop"`` never delivers; ``"early"`` makes the submit answer wait until
  the first delivery attempt is over (with ``sandbox_duration: 0`` the callback arrives before
  the task id); ``"late_processing"`` sends a stale ``processing`` callback after the final one.
- ``sandbox_stream`` (v3, with ``"stream": true``): the event shape, a broken stream or a refusal
  (see streaming).

With ``SandboxOptions.state_file`` (set by ``--sandbox``, not by ``g3w sandbox``) tasks outlive
the process: the next sandbox started with the same file answers GET, DELETE and the CDN for
them, on its own base URL, their phase following the wall clock; they never call back (see
persist).

Webhooks are signed in ``SandboxOptions.signature_scheme`` (each API's own by default, or one of
the Standard Webhooks forms, with a ``webhook-id`` kept across retries); other options emulate
what the docs leave open (see options.py).

Undocumented choices: the v1 sync answer past the cutoff is 200 with the task still
``processing``; a v1 failed task carries ``"code": 500``; a deleted v3 task reads ``deleted``
and deleting it again answers the same; cancelling a finished Abstrakt job is 409
``JOB_NOT_CANCELLABLE``; an Abstrakt sync run that fails answers 200 with ``status: failed``;
v3 stream events carry the task's ``id`` (unless ``sandbox_stream: no_id``); v3's model list
carries input schemas WaveSpeed's way (``SandboxOptions.models_shape``).
"""

from __future__ import annotations

from get3w_cli.sandbox.common import BROKE_KEY, INVALID_KEY
from get3w_cli.sandbox.control import Injection
from get3w_cli.sandbox.logs import DeliveryAttempt, HeaderDict, LoggedRequest
from get3w_cli.sandbox.options import SandboxOptions
from get3w_cli.sandbox.server import Sandbox, serve

__all__ = [
    "BROKE_KEY",
    "INVALID_KEY",
    "DeliveryAttempt",
    "HeaderDict",
    "Injection",
    "LoggedRequest",
    "Sandbox",
    "SandboxOptions",
    "serve",
]
