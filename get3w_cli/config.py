"""Settings: the config file (TOML, mode 0600), and flag > environment > file > default.

Pure with respect to the process: callers pass the environment mapping in; only the CLI
reads ``os.environ``.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from get3w_cli import constants as C
from get3w_cli.errors import ConfigError, UsageError, plain_reason
from get3w_cli.names import FACTS, Provider, Via, provider_named

VIA_CHOICES = tuple(via.value for via in Via)
SECRET_KEYS = frozenset(
    {"get3w.api_key", "get3w.webhook_secret", "abstrakt.api_key", "abstrakt.webhook_secret", "ngrok.authtoken"}
)
CONFIG_KEYS = (
    "provider",
    "get3w.api_key",
    "get3w.base_url",
    "get3w.webhook_secret",
    "abstrakt.api_key",
    "abstrakt.base_url",
    "abstrakt.webhook_secret",
    "ngrok.authtoken",
    "ngrok.install",
    "defaults.via",
    "defaults.timeout",
    "defaults.output",
    "defaults.preview",
)
# Environment variables for each setting (CONTRACT.md sections 1 and 7).
ENV_NAMES = {
    "provider": "G3W_PROVIDER",
    **{f"{p}.api_key": f.key_env for p, f in FACTS.items()},
    **{f"{p}.base_url": f.base_url_env for p, f in FACTS.items()},
    **{f"{p}.webhook_secret": f.secret_env for p, f in FACTS.items()},
    "ngrok.authtoken": "NGROK_AUTHTOKEN",
    "ngrok.install": "G3W_NGROK_INSTALL",
}
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")

_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s?)?$")


def parse_duration(text: str | float | int) -> float:
    """Parse ``90``, ``90s``, ``5m``, ``1h30m``, ``0.5`` into seconds.

    Raises:
        UsageError: the text is not a duration.
    """
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        seconds = float(text)
    else:
        match = _DURATION.match(str(text).strip().lower())
        if not match or not str(text).strip() or not any(match.groups()):
            raise UsageError(f"invalid duration {text!r}", hint="use e.g. 90, 90s, 5m or 1h30m")
        hours, minutes, secs = (float(g) if g else 0.0 for g in match.groups())
        seconds = hours * 3600 + minutes * 60 + secs
    if seconds < 0:
        raise UsageError(f"invalid duration {text!r}: negative")
    return seconds


def parse_bool(value: object, key: str) -> bool:
    """A boolean setting: true/false (or yes/no, on/off, 1/0), as TOML or as text.

    Raises:
        UsageError: anything else.
    """
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower()
    if word in _TRUE or word in _FALSE:
        return word in _TRUE
    raise UsageError(f"invalid {key} {value!r}", hint="use true or false")


def check_base_url(url: str) -> str:
    """Return the base URL without a trailing slash.

    Raises:
        UsageError: not an http(s) URL, or it has a path (the tool adds /api/v3, /v1).
    """
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(f"invalid base URL {url!r}", hint="e.g. https://api.get3w.com")
    if parts.path not in ("", "/") or parts.query:
        raise UsageError(f"base URL {url!r} has a path", hint="give only scheme://host[:port]; g3w adds /api/v3 or /v1")
    return f"{parts.scheme}://{parts.netloc}"


def default_config_path(env: Mapping[str, str]) -> Path:
    """``$G3W_CONFIG``, else ``<user config dir>/g3w/config.toml``."""
    if env.get("G3W_CONFIG"):
        return Path(env["G3W_CONFIG"]).expanduser()
    home = Path(env.get("HOME") or Path.home())
    if sys.platform == "win32":
        base = Path(env.get("APPDATA") or home / "AppData" / "Roaming")
    elif sys.platform == "darwin":
        base = home / "Library" / "Application Support"
    else:
        base = Path(env.get("XDG_CONFIG_HOME") or home / ".config")
    return base / "g3w" / "config.toml"


def default_state_dir(env: Mapping[str, str]) -> Path:
    """``$G3W_HOME``, else the user state dir (where the journal lives)."""
    if env.get("G3W_HOME"):
        return Path(env["G3W_HOME"]).expanduser()
    home = Path(env.get("HOME") or Path.home())
    if sys.platform == "win32":
        base = Path(env.get("LOCALAPPDATA") or home / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = home / "Library" / "Application Support"
    else:
        base = Path(env.get("XDG_STATE_HOME") or home / ".local" / "state")
    return base / "g3w"


def read_config(path: Path) -> dict[str, Any]:
    """Read the config file as flat ``{"get3w.api_key": ...}``; a missing file is empty.

    Raises:
        ConfigError: the file exists but is not valid TOML.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {plain_reason(exc)}",
                          hint="fix or remove the file") from exc
    # Imported here: most commands run with no config file, and the parser costs start-up time.
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on 3.10 only
        import tomli as tomllib
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"cannot read config file {path}: {plain_reason(exc)}",
                          hint="fix or remove the file") from exc
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update({f"{key}.{sub}": v for sub, v in value.items()})
        else:
            flat[key] = value
    return flat


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    escaped = str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def write_config(path: Path, values: Mapping[str, Any]) -> None:
    """Write flat settings as TOML, atomically, readable by the owner only (0600)."""
    import tempfile

    top = [f"{k} = {_toml_value(v)}" for k, v in sorted(values.items()) if "." not in k]
    tables: dict[str, list[str]] = {}
    for key, value in sorted(values.items()):
        if "." in key:
            table, sub = key.split(".", 1)
            tables.setdefault(table, []).append(f"{sub} = {_toml_value(value)}")
    chunks = ["\n".join(top)] if top else []
    chunks += [f"[{name}]\n" + "\n".join(lines) for name, lines in tables.items()]
    text = "\n\n".join(chunks) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".config-", dir=path.parent)
    try:
        os.fchmod(fd, 0o600) if hasattr(os, "fchmod") else None
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    os.chmod(path, 0o600)


def check_config_value(key: str, value: str) -> Any:
    """Validate ``config set KEY VALUE`` and return the value to store.

    Raises:
        UsageError: unknown key or invalid value.
    """
    if key not in CONFIG_KEYS:
        raise UsageError(f"unknown config key {key!r}", hint="keys: " + ", ".join(CONFIG_KEYS))
    if key == "provider" and provider_named(value) is None:
        raise UsageError(f"unknown provider {value!r}", hint="use get3w or abstrakt")
    if key.endswith(".base_url"):
        return check_base_url(value)
    if key == "defaults.via" and value not in VIA_CHOICES:
        raise UsageError(f"invalid via {value!r}", hint="use one of " + ", ".join(VIA_CHOICES))
    if key == "defaults.timeout":
        parse_duration(value)
    if key == "ngrok.install":
        return parse_bool(value, key)
    if key == "defaults.preview":
        return parse_bool(value, key)
    return value


def mask(secret: str | None) -> str:
    """Show that a secret is set without showing it."""
    if not secret:
        return ""
    return "****" + secret[-4:] if len(secret) >= 12 else "****"


@dataclass(frozen=True)
class ProviderSettings:
    base_url: str
    api_key: str | None = field(default=None, repr=False)
    webhook_secret: str | None = field(default=None, repr=False)


# Where a setting came from (``Settings.sources``): a flag, an environment variable (named after
# "env "), the config file, or g3w's default.
FROM_FLAG, FROM_ENV, FROM_FILE, FROM_DEFAULT = "flag", "env", "file", "default"


@dataclass(frozen=True)
class Settings:
    provider: str | None
    get3w: ProviderSettings
    abstrakt: ProviderSettings
    ngrok_authtoken: str | None = field(default=None, repr=False)
    ngrok_install: bool = True  # pyngrok may install the agent when it is missing
    via: str = "auto"
    timeout: float = C.DEFAULT_WAIT_TIMEOUT
    output: str | None = None
    preview: bool = False
    # config key -> "flag", "env GET3W_API_KEY", "file" or "default" (doctor shows it)
    sources: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    def for_provider(self, provider: str) -> ProviderSettings:
        return self.abstrakt if provider == Provider.ABSTRAKT else self.get3w


def load_settings(flags: Mapping[str, Any], env: Mapping[str, str], file_values: Mapping[str, Any]) -> Settings:
    """Resolve every setting as flag > environment > config file > default.

    ``flags`` uses the config key names (``"get3w.api_key"``, ``"defaults.via"``); ``None``
    means "not given". ``sources`` says where each setting came from.

    Raises:
        UsageError: an invalid base URL, via, duration or switch from any source.
    """
    sources: dict[str, str] = {}

    def pick(key: str) -> Any:
        env_name = ENV_NAMES.get(key)
        value = file_values.get(key)
        if flags.get(key) is not None:
            sources[key], value = FROM_FLAG, flags[key]
        elif env_name and env.get(env_name):
            sources[key], value = f"{FROM_ENV} {env_name}", env[env_name]
        elif value is not None and value != "":
            sources[key] = FROM_FILE
        else:
            sources[key], value = FROM_DEFAULT, None
        return value

    def provider_settings(name: Provider) -> ProviderSettings:
        return ProviderSettings(
            base_url=check_base_url(pick(f"{name}.base_url") or FACTS[name].base_url),
            api_key=pick(f"{name}.api_key"),
            webhook_secret=pick(f"{name}.webhook_secret"),
        )

    via = pick("defaults.via") or "auto"
    if via not in VIA_CHOICES:
        raise UsageError(f"invalid via {via!r}", hint="use one of " + ", ".join(VIA_CHOICES))
    timeout = pick("defaults.timeout")
    install = pick("ngrok.install")
    return Settings(
        provider=pick("provider"),
        get3w=provider_settings(Provider.GET3W),
        abstrakt=provider_settings(Provider.ABSTRAKT),
        ngrok_authtoken=pick("ngrok.authtoken"),
        ngrok_install=parse_bool(install, "G3W_NGROK_INSTALL / ngrok.install") if install is not None else True,
        via=via,
        timeout=C.DEFAULT_WAIT_TIMEOUT if timeout is None else parse_duration(timeout),
        output=pick("defaults.output"),
        preview=parse_bool(pick("defaults.preview") or False, "defaults.preview"),
        sources=sources,
    )
