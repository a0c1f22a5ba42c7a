"""What went wrong with ngrok, in one line: the kinds of failure, their hints, and the agent's own words.

An ngrok failure becomes a ``TunnelError`` whose ``kind`` says why (for tests and fallbacks) and
whose message keeps what the agent said, made one line: ngrok's service ends its errors with
``\\r\\n\\r\\nERR_NGROK_<n>\\r\\n``, and the agent's log quotes them with the escapes written out.
Every hint names only flags and settings that exist. Stdlib only (no pyngrok).
"""

from __future__ import annotations

import re

from get3w_cli.constants import NGROK_MESSAGE_MAX
from get3w_cli.errors import TunnelError, without_errno

_FALLBACK = "or use --public-url URL, or --via poll"
_TOKEN_PAGE = "https://dashboard.ngrok.com/get-started/your-authtoken"  # noqa: S105 - a URL, not a secret
_DOWNLOAD = "https://ngrok.com/download"
HINTS = {
    "no_authtoken": f"set NGROK_AUTHTOKEN or run `g3w config set ngrok.authtoken <token>` ({_TOKEN_PAGE}); {_FALLBACK}",
    "binary_missing": f"install ngrok ({_DOWNLOAD}) and put it on PATH or set NGROK_PATH to it, or let pyngrok "
                      f"install it (unset G3W_NGROK_INSTALL, `g3w config set ngrok.install true`); {_FALLBACK}",
    "not_agent": f"set NGROK_PATH to the ngrok agent itself ({_DOWNLOAD}), or unset it to let g3w find or install "
                 f"the agent; {_FALLBACK}",
    "install_failed": f"check the network, or install ngrok yourself ({_DOWNLOAD}) and set NGROK_PATH; {_FALLBACK}",
    "agent_too_old": f"run `{{agent}} update`, or point NGROK_PATH at a current agent ({_DOWNLOAD}); {_FALLBACK}",
    "update_required": f"ngrok's service wants a newer agent: run `{{agent}} update`, or point NGROK_PATH at a "
                       f"current agent ({_DOWNLOAD}); {_FALLBACK}",
    "pyngrok_unsupported": f"install a supported pyngrok (`pip install 'pyngrok>=9.1,<10'`); {_FALLBACK}",
    "session_limit": "another ngrok agent is online with this authtoken (ERR_NGROK_108): stop it, or pass its URL "
                     "with --public-url, or use --via poll",
    "endpoint_in_use": "your ngrok domain is already served by another agent (ERR_NGROK_334): stop it, or pass its "
                       "URL with --public-url, or use --via poll",
    "too_many_endpoints": "this ngrok account runs as many endpoints as its plan allows (ERR_NGROK_324): stop one "
                          "(https://dashboard.ngrok.com/agents), or pass a URL with --public-url, or use --via poll",
    "auth_failed": f"ngrok rejected the authtoken: check NGROK_AUTHTOKEN / ngrok.authtoken ({_TOKEN_PAGE}); "
                   f"{_FALLBACK}",
    "start_timeout": f"ngrok could not reach its service: check the network (a proxy or firewall may block "
                     f"connect.ngrok-agent.com:443); {_FALLBACK}",
    "other": f"run with --debug to see ngrok's log; {_FALLBACK}",
}
# ngrok's error codes (https://ngrok.com/docs/errors/) and the kind each one is.
CODE_KINDS = {
    "ERR_NGROK_108": "session_limit",
    "ERR_NGROK_334": "endpoint_in_use",
    "ERR_NGROK_324": "too_many_endpoints",
    **dict.fromkeys(("ERR_NGROK_105", "ERR_NGROK_106", "ERR_NGROK_107", "ERR_NGROK_300", "ERR_NGROK_4018"),
                    "auth_failed"),
    **dict.fromkeys(("ERR_NGROK_120", "ERR_NGROK_121"), "update_required"),
}
_CODE = re.compile(r"ERR_NGROK_\d+")
_ESCAPES = re.compile(r"\\[rnt]|[\r\n\t]")


def tunnel_error(kind: str, message: str, *, agent: str | None = None) -> TunnelError:
    """The ``TunnelError`` of ``kind``, with its hint (``agent``: the agent's path, for hints naming it)."""
    return TunnelError(message, kind=kind, hint=HINTS[kind].format(agent=agent or "ngrok"))


def kind_of(text: str) -> str | None:
    """The kind an ngrok error code in ``text`` says, if any."""
    for code in _CODE.findall(text):
        if code in CODE_KINDS:
            return CODE_KINDS[code]
    return None


def clean(text: str, secret: str | None = None) -> str:
    """One line of the agent's (or pyngrok's) words: escapes and line breaks become spaces, Python's
    ``[Errno N]`` goes, the secret ``***`` (ngrok echoes a rejected authtoken), and at most
    ``NGROK_MESSAGE_MAX`` characters, its ERR_NGROK code kept."""
    text = " ".join(without_errno(_ESCAPES.sub(" ", text)).split())
    if secret:
        text = text.replace(secret, "***")
    if len(text) <= NGROK_MESSAGE_MAX:
        return text
    cut = text[:NGROK_MESSAGE_MAX].rstrip() + "…"
    lost = [code for code in dict.fromkeys(_CODE.findall(text)) if code not in cut]
    return " ".join([cut, *lost])


def classified(message: str, words: str, secret: str | None, *, default: str, agent: str | None = None) -> TunnelError:
    """``message: <the agent's words>``, of the kind the words' ERR_NGROK code says, else ``default``."""
    said = clean(words, secret)
    return tunnel_error(kind_of(said) or default, f"{message}: {said}" if said else message, agent=agent)
