"""g3w doctor (issue #13): where each setting came from, and --online: one cheap authenticated
request per key, against the sandbox."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from conftest import ThreadedSandbox, sandbox_env
from inproc import invoke

from get3w_cli.config import load_settings, write_config

GOOD_KEY = "sk_good_0123456789"


def _checks(result: Any) -> dict[str, dict[str, Any]]:
    return {row["check"]: row for row in json.loads(result.stdout)}


def test_settings_say_where_each_value_came_from() -> None:
    """flag > env > file > default, and ``sources`` names which one won; callers' view unchanged."""
    settings = load_settings({"get3w.api_key": "sk_flag"}, {"GET3W_BASE_URL": "http://env.example:1",
                                                            "ABSTRAKT_API_KEY": "sk_env"},
                             {"abstrakt.base_url": "http://file.example:2", "get3w.api_key": "sk_file"})
    assert settings.get3w.api_key == "sk_flag" and settings.get3w.base_url == "http://env.example:1"
    assert settings.sources["get3w.api_key"] == "flag"
    assert settings.sources["get3w.base_url"] == "env GET3W_BASE_URL"
    assert settings.sources["abstrakt.api_key"] == "env ABSTRAKT_API_KEY"
    assert settings.sources["abstrakt.base_url"] == "file"
    assert settings.sources["ngrok.authtoken"] == "default"
    assert settings.sources["defaults.via"] == "default"
    same = load_settings({}, {"GET3W_API_KEY": "sk_flag", "GET3W_BASE_URL": "http://env.example:1",
                              "ABSTRAKT_API_KEY": "sk_env", "ABSTRAKT_BASE_URL": "http://file.example:2"}, {})
    assert same == settings  # provenance is not part of a Settings' value


def test_doctor_shows_flag_env_file_default(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    write_config(config, {"abstrakt.api_key": GOOD_KEY, "ngrok.authtoken": "tok_0123456789"})
    result = invoke("doctor", "--json", env={"G3W_CONFIG": str(config), "GET3W_API_KEY": GOOD_KEY})
    assert result.code == 0, result.stderr
    checks = _checks(result)
    assert checks["get3w key"]["source"] == "env GET3W_API_KEY"
    assert checks["abstrakt key"]["source"] == "file"
    assert checks["get3w base URL"]["source"] == "default"
    assert checks["ngrok authtoken"]["source"] == "file"
    assert checks["config file"]["source"] == "env G3W_CONFIG"
    table = invoke("doctor", env={"G3W_CONFIG": str(config), "GET3W_API_KEY": GOOD_KEY}).stdout.splitlines()
    assert table[0].split("\t") == ["check", "ok", "detail", "from"]
    assert "get3w key\tyes\t****6789\tenv GET3W_API_KEY" in table


def test_doctor_without_online_sends_nothing(sandbox: ThreadedSandbox) -> None:
    result = invoke("doctor", "--json", env=sandbox_env(sandbox, key=GOOD_KEY))
    assert result.code == 0
    assert not any(c.endswith("online") for c in _checks(result))
    assert sandbox.sandbox.requests == []


def test_doctor_online_tries_each_key_once(sandbox: ThreadedSandbox) -> None:
    """One GET per provider with a key: Get3W's balance, Abstrakt's model list (limit 1), with the key."""
    result = invoke("doctor", "--online", "--json", env=sandbox_env(sandbox, key=GOOD_KEY))
    assert result.code == 0, result.stderr
    checks = _checks(result)
    assert checks["get3w key online"]["ok"] and "balance 42.5" in checks["get3w key online"]["detail"]
    assert checks["abstrakt key online"]["ok"]
    sent = [(r.method, r.path, r.query) for r in sandbox.sandbox.requests]
    assert sorted(sent) == [("GET", "/api/v3/balance", {}), ("GET", "/v1/models", {"limit": "1"})]
    assert all(r.headers["authorization"] == f"Bearer {GOOD_KEY}" for r in sandbox.sandbox.requests)
    assert GOOD_KEY not in result.stdout + result.stderr


def test_doctor_online_skips_providers_without_a_key(sandbox: ThreadedSandbox) -> None:
    env = {"GET3W_BASE_URL": sandbox.base_url, "ABSTRAKT_BASE_URL": sandbox.base_url, "ABSTRAKT_API_KEY": GOOD_KEY}
    checks = _checks(invoke("doctor", "--online", "--json", env=env))
    assert "get3w key online" not in checks and checks["abstrakt key online"]["ok"]
    assert [r.path for r in sandbox.sandbox.requests] == ["/v1/models"]


def test_doctor_online_reports_a_refused_key_with_its_providers_hint(sandbox: ThreadedSandbox) -> None:
    """sk_invalid: both rows fail, each naming its own key variable; exit 3 (configuration)."""
    result = invoke("doctor", "--online", "--json", env=sandbox_env(sandbox, key="sk_invalid"))
    assert result.code == 3
    checks = _checks(result)
    assert not checks["get3w key online"]["ok"] and "GET3W_API_KEY" in checks["get3w key online"]["detail"]
    assert not checks["abstrakt key online"]["ok"]
    assert "ABSTRAKT_API_KEY" in checks["abstrakt key online"]["detail"]
    assert "GET3W_API_KEY" not in checks["abstrakt key online"]["detail"]
