"""Configuration: the config file (0600, secrets masked), and flag > environment > file > default."""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import ThreadedSandbox, sandbox_env
from inproc import invoke

from get3w_cli import constants as C
from get3w_cli.config import (
    check_config_value,
    default_config_path,
    load_settings,
    mask,
    parse_duration,
    read_config,
    write_config,
)
from get3w_cli.errors import ConfigError, UsageError
from get3w_cli.names import FACTS, Provider

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

SECRET = "sk_live_0123456789abcdef"
DEAD_URL = "http://127.0.0.1:9"  # discard port: nothing listens there


# --- load_settings: explicit dicts -------------------------------------------------------------


@pytest.mark.parametrize(
    ("flag", "env", "file", "expected"),
    [
        (None, None, None, FACTS[Provider.GET3W].base_url),
        (None, None, "http://file:1", "http://file:1"),
        (None, "http://env:2", "http://file:1", "http://env:2"),
        ("http://flag:3", "http://env:2", "http://file:1", "http://flag:3"),
        ("http://flag:3", None, None, "http://flag:3"),
        (None, "", "http://file:1", "http://file:1"),  # an empty variable is not set
    ],
)
def test_base_url_precedence(flag: str | None, env: str | None, file: str | None, expected: str) -> None:
    """get3w.base_url: flag > GET3W_BASE_URL > config file > default."""
    envs = {} if env is None else {"GET3W_BASE_URL": env}
    files = {} if file is None else {"get3w.base_url": file}
    settings = load_settings({"get3w.base_url": flag}, envs, files)
    assert settings.get3w.base_url == expected
    assert settings.abstrakt.base_url == FACTS[Provider.ABSTRAKT].base_url


@pytest.mark.parametrize(
    ("flag", "env", "file", "expected"),
    [(None, None, None, None), (None, None, "k_file", "k_file"), (None, "k_env", "k_file", "k_env"),
     ("k_flag", "k_env", "k_file", "k_flag")],
)
def test_api_key_precedence(flag: str | None, env: str | None, file: str | None, expected: str | None) -> None:
    """abstrakt.api_key: --api-key > ABSTRAKT_API_KEY > config file > none."""
    envs = {} if env is None else {"ABSTRAKT_API_KEY": env, "GET3W_API_KEY": "other"}
    files = {} if file is None else {"abstrakt.api_key": file}
    settings = load_settings({"abstrakt.api_key": flag}, envs, files)
    assert settings.abstrakt.api_key == expected


def test_provider_via_timeout_and_secrets_precedence() -> None:
    """provider (G3W_PROVIDER), via, timeout, webhook secrets and the ngrok token follow the same order."""
    files = {"provider": "get3w", "defaults.via": "poll", "defaults.timeout": "5m", "ngrok.authtoken": "file_tok",
             "get3w.webhook_secret": "file_sec", "defaults.output": "out"}
    env = {"G3W_PROVIDER": "abstrakt", "NGROK_AUTHTOKEN": "env_tok", "GET3W_WEBHOOK_SECRET": "env_sec"}
    settings = load_settings({}, env, files)
    assert settings.provider == "abstrakt"
    assert settings.via == "poll" and settings.timeout == 300.0 and settings.output == "out"
    assert settings.ngrok_authtoken == "env_tok" and settings.get3w.webhook_secret == "env_sec"
    flagged = load_settings({"provider": "get3w", "defaults.via": "sync", "defaults.timeout": "90s"}, env, files)
    assert (flagged.provider, flagged.via, flagged.timeout) == ("get3w", "sync", 90.0)
    default = load_settings({}, {}, {})
    expected = (None, "auto", C.DEFAULT_WAIT_TIMEOUT, None)
    assert (default.provider, default.via, default.timeout, default.output) == expected


@pytest.mark.parametrize(
    ("flags", "env", "files"),
    [({}, {"GET3W_BASE_URL": "api.get3w.com"}, {}), ({}, {}, {"abstrakt.base_url": "http://x/v1"}),
     ({"defaults.via": "carrier-pigeon"}, {}, {}), ({}, {}, {"defaults.timeout": "soon"})],
)
def test_invalid_settings_from_any_source_are_usage_errors(flags: dict[str, Any], env: dict[str, str],
                                                           files: dict[str, Any]) -> None:
    """A base URL with no scheme or with a path, an unknown via, a bad duration: exit 2."""
    with pytest.raises(UsageError):
        load_settings(flags, env, files)


@pytest.mark.parametrize(("text", "seconds"), [("90", 90), ("90s", 90), ("5m", 300), ("1h30m", 5400), ("0.5", 0.5),
                                               ("1m30s", 90), (2, 2.0)])
def test_durations(text: str | int, seconds: float) -> None:
    """Durations: 90, 90s, 5m, 1h30m."""
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "5x", "m", "-5", "1.2.3s"])
def test_bad_durations(text: str) -> None:
    """Anything else is a usage error."""
    with pytest.raises(UsageError):
        parse_duration(text)


def test_config_path_honours_g3w_config(tmp_path: Path) -> None:
    """$G3W_CONFIG wins; else <XDG config dir>/g3w/config.toml."""
    assert default_config_path({"G3W_CONFIG": str(tmp_path / "c.toml")}) == tmp_path / "c.toml"
    assert default_config_path({"XDG_CONFIG_HOME": str(tmp_path), "HOME": "/nowhere"}) == tmp_path / "g3w/config.toml"


def test_write_config_is_private_toml_and_round_trips(tmp_path: Path) -> None:
    """The file is TOML with tables, written with mode 0600, and reads back flat."""
    path = tmp_path / "sub" / "config.toml"
    values = {"provider": "abstrakt", "get3w.api_key": 'sk_"quoted"\\', "defaults.timeout": "5m"}
    write_config(path, values)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert tomllib.loads(path.read_text())["get3w"]["api_key"] == 'sk_"quoted"\\'
    assert read_config(path) == values
    assert [p.name for p in path.parent.iterdir()] == ["config.toml"]  # no temporary file left


def test_broken_config_file_is_a_config_error(tmp_path: Path) -> None:
    """A config file that is not TOML is reported (exit 3), a missing one is empty."""
    path = tmp_path / "config.toml"
    assert read_config(path) == {}
    path.write_text("provider = \n")
    with pytest.raises(ConfigError):
        read_config(path)


def test_check_config_value_and_mask() -> None:
    """config set validates keys and values; secrets show only their last four characters."""
    assert check_config_value("get3w.base_url", "http://h:1/") == "http://h:1"
    for key, value in [("nope", "x"), ("provider", "openai"), ("defaults.via", "fax"), ("defaults.timeout", "x"),
                       ("abstrakt.base_url", "ftp://h")]:
        with pytest.raises(UsageError):
            check_config_value(key, value)
    assert mask(SECRET) == "****cdef" and mask("short") == "****" and mask(None) == ""


# --- the config command ------------------------------------------------------------------------


def test_config_commands_round_trip(tmp_path: Path) -> None:
    """config path/set/get/list/unset: mode 0600, secrets masked in get and list, unset removes."""
    path = Path(invoke("config", "path").stdout.strip())
    assert path == tmp_path / "home" / ".config" / "g3w" / "config.toml"
    assert invoke("config", "set", "get3w.api_key", SECRET).code == 0
    assert invoke("config", "set", "provider", "abstrakt").code == 0
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert tomllib.loads(path.read_text()) == {"provider": "abstrakt", "get3w": {"api_key": SECRET}}

    got = invoke("config", "get", "get3w.api_key")
    assert (got.code, got.stdout) == (0, "****cdef\n")
    assert invoke("config", "get", "provider").stdout == "abstrakt\n"
    listed, as_json = invoke("config", "list"), invoke("config", "list", "--json")
    assert listed.stdout.splitlines() == ["get3w.api_key = ****cdef", "provider = abstrakt"]
    assert json.loads(as_json.stdout) == {"get3w.api_key": "****cdef", "provider": "abstrakt"}
    for result in (got, listed, as_json):
        assert SECRET not in result.stdout + result.stderr

    assert invoke("config", "unset", "provider").code == 0
    missing = invoke("config", "get", "provider")
    assert (missing.code, missing.stdout) == (1, "")
    assert read_config(path) == {"get3w.api_key": SECRET}


@pytest.mark.parametrize(
    "args",
    [("set", "nope", "x"), ("set", "defaults.via", "fax"), ("set", "get3w.base_url", "http://h/path"),
     ("get", "nope")],
)
def test_invalid_config_key_or_value_exits_2(tmp_path: Path, args: tuple[str, ...]) -> None:
    """An unknown key or an invalid value: exit 2, one error line, the file untouched."""
    result = invoke("config", *args)
    assert result.code == 2
    assert result.stderr.startswith("Error: ") and "Traceback" not in result.stderr
    assert result.stdout == ""
    assert not (tmp_path / "home" / ".config" / "g3w" / "config.toml").exists()


def test_g3w_config_variable_is_honoured(tmp_path: Path) -> None:
    """$G3W_CONFIG moves the file for every config subcommand."""
    target = tmp_path / "elsewhere" / "g3w.toml"
    env = {"G3W_CONFIG": str(target)}
    assert invoke("config", "path", env=env).stdout.strip() == str(target)
    assert invoke("config", "set", "defaults.via", "poll", env=env).code == 0
    assert read_config(target) == {"defaults.via": "poll"}
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert not (tmp_path / "home" / ".config" / "g3w" / "config.toml").exists()


def test_environment_beats_config_file_in_the_cli(tmp_path: Path) -> None:
    """doctor shows the effective settings: env over file, file over default."""
    config = tmp_path / "c.toml"
    write_config(config, {"get3w.base_url": "http://file.example:1", "abstrakt.api_key": SECRET})
    env = {"G3W_CONFIG": str(config), "GET3W_BASE_URL": "http://env.example:2"}
    checks = {row["check"]: row for row in json.loads(invoke("doctor", "--json", env=env).stdout)}
    assert checks["get3w base URL"]["detail"] == "http://env.example:2"
    assert checks["abstrakt base URL"]["detail"] == FACTS[Provider.ABSTRAKT].base_url
    assert checks["abstrakt key"]["ok"] and checks["abstrakt key"]["detail"] == "****cdef"
    assert not checks["get3w key"]["ok"]


def test_flag_beats_environment_beats_file_for_keys_and_urls(tmp_path: Path, sandbox: ThreadedSandbox) -> None:
    """--base-url/--api-key over GET3W_BASE_URL/GET3W_API_KEY over the config file, in a real request."""
    config = tmp_path / "c.toml"
    write_config(config, {"get3w.api_key": "sk_invalid", "get3w.base_url": DEAD_URL})
    env = {"G3W_CONFIG": str(config), "GET3W_API_KEY": "sk_env_good", "GET3W_BASE_URL": sandbox.base_url}
    assert invoke("balance", "--json", env=env).code == 0  # env beats the file's bad key and URL
    assert invoke("balance", "--json", "--api-key", "sk_invalid", env=env).code == 3  # flag beats env
    env["GET3W_BASE_URL"] = DEAD_URL
    assert invoke("balance", "--json", "--base-url", sandbox.base_url, env=env).code == 0  # flag beats env
    keys = [r.headers.get("Authorization") for r in sandbox.sandbox.requests]
    assert keys == ["Bearer sk_env_good", "Bearer sk_invalid", "Bearer sk_env_good"]


def test_default_provider_from_g3w_provider_and_config(tmp_path: Path, sandbox: ThreadedSandbox) -> None:
    """G3W_PROVIDER (over the config file's provider) picks the provider of a bare model name."""
    config = tmp_path / "c.toml"
    write_config(config, {"provider": "abstrakt"})
    env = {**sandbox_env(sandbox), "G3W_CONFIG": str(config)}
    assert invoke("submit", "flux-schnell", "-p", "x", "-q", env=env).stdout.startswith("job_")
    overridden = invoke("submit", "flux-schnell", "-p", "x", "-q", env={**env, "G3W_PROVIDER": "get3w"})
    assert overridden.stdout.startswith("pred_")
    paths = [r.path for r in sandbox.sandbox.submissions()]
    assert paths == ["/v1/models/flux-schnell/run", "/api/v3/get3w/flux-schnell"]


def test_default_via_from_config_file(tmp_path: Path, sandbox: ThreadedSandbox) -> None:
    """defaults.via in the file replaces auto; --via on the command line replaces the file."""
    config = tmp_path / "c.toml"
    write_config(config, {"defaults.via": "poll"})
    env = {**sandbox_env(sandbox), "G3W_CONFIG": str(config)}
    args = ("run", "flux-dev", "-p", "x", "--json", "--poll-max", "0.2")
    assert invoke(*args, env=env).json()["via"] == "poll"
    assert invoke(*args, "--via", "webhook", env=env).json()["via"] == "webhook"
