"""--debug output is safe to paste: no API key, webhook secret, ngrok authtoken or callback token.

The registry itself (get3w_cli/redaction.py) is tested in-process with fresh random values (it is
process-wide); the CLI is run in-process (``inproc.invoke``: a fresh registry and logging set-up
each time, as in a new process) and its stderr read.
"""

from __future__ import annotations

import io
import json
import logging
import secrets
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote, quote_plus

import fake_ngrok  # tests/fake_ngrok.py
import pytest
from conftest import ThreadedSandbox, sandbox_env
from inproc import invoke

from get3w_cli import redaction
from get3w_cli.cli.boundary import configure_logging, redacting_formatter

V1_MODEL = "google/nano-banana-pro/text-to-image"


def fresh(prefix: str = "sk_") -> str:
    """A secret no other test has registered."""
    return prefix + secrets.token_hex(12)


# --- the registry ------------------------------------------------------------------------------


def test_redact_masks_a_registered_value_and_its_url_encoded_forms() -> None:
    """Each registered value is masked as written, URL-encoded (path, query, form) and JSON-escaped."""
    value = fresh("k/ey+wi th&odd=\"chars\"")
    redaction.register(value)
    forms = [value, quote(value, safe=""), quote(value), quote_plus(value), json.dumps(value)[1:-1]]
    assert len(set(forms)) == 5
    for form in forms:
        text = f"before {form} after"
        assert redaction.redact(text) == f"before {redaction.MASK} after"
        assert form in redaction.known()


def test_redact_leaves_other_text_alone() -> None:
    redaction.register(fresh())
    text = "POST http://127.0.0.1:8080/v1/x?webhook=http%3A%2F%2Fhost%2Fpath 200 OK"
    assert redaction.redact(text) == text


@pytest.mark.parametrize("value", [None, "", "t", "12345"])
def test_empty_and_very_short_values_are_not_registered(value: str | None) -> None:
    """A value under MIN_SECRET_LENGTH would mask ordinary words (and betray itself by the gaps)."""
    before = redaction.known()
    redaction.register(value)
    assert redaction.known() == before
    assert redaction.redact("t 12345 t") == "t 12345 t"


def test_a_secret_containing_another_is_masked_whole() -> None:
    """Longest first: no tail of the longer secret survives the shorter one's mask."""
    inner = fresh()
    outer = f"{inner}-{secrets.token_hex(6)}"
    redaction.register(inner)
    redaction.register(outer)
    assert redaction.redact(f"[{outer}] [{inner}]") == f"[{redaction.MASK}] [{redaction.MASK}]"
    assert redaction.known().index(outer) < redaction.known().index(inner)


def test_log_lines_are_redacted_message_arguments_and_traceback() -> None:
    """The CLI's log formatter masks secrets in the message, its arguments and a logged exception."""
    secret = fresh()
    redaction.register(secret)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(redacting_formatter("%(name)s: %(message)s"))
    logger = logging.Logger("test.redaction", logging.DEBUG)  # noqa: LOG001 - not getLogger(): no global state
    logger.addHandler(handler)
    logger.debug("HTTP Request: POST http://h/v1/m?webhook=%s", quote(f"http://127.0.0.1:1/{secret}", safe=""))
    logger.info(f"inline {secret}")
    try:
        raise RuntimeError(f"agent said: {secret}")
    except RuntimeError:
        logger.exception("failed")
    out = stream.getvalue()
    assert secret not in out
    assert f"webhook=http%3A%2F%2F127.0.0.1%3A1%2F{redaction.MASK}" in out
    assert f"inline {redaction.MASK}" in out
    assert f"RuntimeError: agent said: {redaction.MASK}" in out


def test_logging_set_up_by_one_command_is_not_inherited_by_the_next() -> None:
    """Two commands in one process (the suite runs many): --debug after a plain command still lets
    pyngrok's logs through, and a plain one after --debug silences them again."""
    root, pyngrok = logging.getLogger(), logging.getLogger("pyngrok")
    saved = root.handlers[:], root.level, pyngrok.level
    try:
        configure_logging(False)
        assert not pyngrok.isEnabledFor(logging.ERROR)
        configure_logging(True)
        assert pyngrok.isEnabledFor(logging.DEBUG)
        configure_logging(False)
        assert not pyngrok.isEnabledFor(logging.ERROR) and not root.isEnabledFor(logging.INFO)
        assert len(root.handlers) == 1
    finally:
        root.handlers[:], root.level = saved[0], saved[1]
        pyngrok.setLevel(saved[2])


# --- the CLI ------------------------------------------------------------------------------------


def test_debug_run_with_a_webhook_shows_neither_the_callback_token_nor_the_key() -> None:
    """`g3w run <v1 model> --debug` logs httpx's request line (the callback URL in its query):
    the token in it is masked, and the API key and webhook secret appear nowhere."""
    key, webhook_secret = fresh("sk_live_"), fresh("whsec_")
    with ThreadedSandbox(duration=0.05, webhook_time_scale=0.01, webhook_secret=webhook_secret) as sb:
        env = {**sandbox_env(sb, key=key), "GET3W_WEBHOOK_SECRET": webhook_secret}
        result = invoke("run", V1_MODEL, "-p", "x", "--via", "webhook", "--debug", "--json", env=env)
        (submit,) = sb.sandbox.submissions()
    assert result.code == 0, result.stderr
    assert result.json()["via"] == "webhook"
    assert submit.headers["authorization"] == f"Bearer {key}"  # the key was in play
    callback = submit.query["webhook"]
    token = callback.rsplit("/", 1)[-1]
    assert len(token) >= 22
    stderr = result.stderr
    assert "HTTP Request: POST" in stderr and "webhook=" in stderr  # the line that used to leak it
    assert quote(callback.rsplit("/", 1)[0], safe="") + "%2F" + redaction.MASK in stderr
    for secret in (token, key, webhook_secret):
        assert secret not in stderr
    assert token not in result.stdout  # the record's raw payload does not carry it either


def test_debug_traceback_of_a_tunnel_failure_shows_no_authtoken(tmp_path: Path) -> None:
    """pyngrok's chained error quotes the agent, which echoes a rejected authtoken: under --debug
    the traceback, pyngrok's own log lines and the error line mask it. A command without --debug
    ran first in this process: the --debug one still shows pyngrok's logs (nothing inherited)."""
    authtoken = fresh("2ngrok_")
    env = {"NGROK_PATH": fake_ngrok.install(str(tmp_path / "bin"), "auth_failed"), "NGROK_AUTHTOKEN": authtoken}
    with ThreadedSandbox(duration=0.05) as sb:
        quiet = invoke("run", "flux-dev", "-p", "x", "--via", "webhook", env={**sandbox_env(sb), **env})
        assert quiet.code == 7 and "pyngrok.process: " not in quiet.stderr  # pyngrok's own talk: --debug only
        result = invoke("run", "flux-dev", "-p", "x", "--via", "webhook", "--debug", env={**sandbox_env(sb), **env})
        assert sb.sandbox.submissions() == []
    assert result.code == 7
    assert "Traceback" in result.stderr and "PyngrokNgrokError" in result.stderr  # the chained error is shown
    assert "pyngrok.process: Starting ngrok" in result.stderr and "ERR_NGROK_105" in result.stderr
    assert f"Your authtoken: {redaction.MASK}" in result.stderr
    assert authtoken not in result.stderr


class _EchoingProvider(BaseHTTPRequestHandler):
    """A provider that quotes the key it refuses, as some real APIs do."""

    def do_POST(self) -> None:
        key = self.headers.get("Authorization", "").removeprefix("Bearer ")
        body = json.dumps({"code": 401, "message": f"Incorrect API key provided: {key}", "data": None}).encode()
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def echoing_provider() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EchoingProvider)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(10)


def test_an_error_message_quoting_the_key_is_masked(echoing_provider: str) -> None:
    """The boundary masks secrets in the error line and the --debug traceback, whatever their source."""
    key = fresh("sk_live_")
    result = invoke("run", "flux-dev", "-p", "x", "--via", "poll", "--debug",
                 env={"GET3W_BASE_URL": echoing_provider, "GET3W_API_KEY": key})
    assert result.code == 3, result.stderr
    assert f"Incorrect API key provided: {redaction.MASK}" in result.stderr
    assert "Traceback" in result.stderr
    assert key not in result.stderr
