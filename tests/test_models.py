"""Models: both documented list shapes as typed records, `models show MODEL` (the inputs from the
provider's schema), `run`'s refusal of a request that lacks a required input, and the model list
cached under G3W_HOME (refreshed once a day, read by the completions).

Against the sandbox, whose Get3W v3 list comes in WaveSpeed's shape (with input schemas) or in
the catalogue's (``SandboxOptions.models_shape``), and whose Abstrakt models have details.
"""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import ThreadedSandbox, g3w_on_terminal, sandbox_env
from inproc import invoke

from get3w_cli.models import ModelInfo, ModelInput, inputs_from_schema, missing_inputs, unknown_inputs
from get3w_cli.models_cache import ModelsCache, cached_run_names


@pytest.fixture
def plain_list() -> Iterator[ThreadedSandbox]:
    """A sandbox whose Get3W model list is in the catalogue's shape (id, price; no schema)."""
    with ThreadedSandbox(duration=0.05, webhook_time_scale=0.01, models_shape="get3w") as sb:
        yield sb


def rows(text: str) -> list[list[str]]:
    return [line.split("\t") for line in text.splitlines()]


def api_calls(sb: ThreadedSandbox) -> list[tuple[str, str]]:
    return [(r.method, r.path) for r in sb.sandbox.requests if not r.path.startswith("/cdn/")]


# --- model lists ---------------------------------------------------------------------------------


def test_both_get3w_list_shapes_give_the_same_models(sandbox: ThreadedSandbox, plain_list: ThreadedSandbox) -> None:
    """WaveSpeed's {model_id, base_price, api_schema} and the catalogue's {id, price}: one model each way,
    the name to run, its type and its price in USD a run; only the first carries inputs."""
    wavespeed = {m["run"]: m for m in invoke("models", "--json", env=sandbox_env(sandbox)).json()}
    plain = {m["run"]: m for m in invoke("models", "--json", env=sandbox_env(plain_list)).json()}
    assert set(wavespeed) == set(plain) == {"get3w/flux-dev", "get3w/flux-schnell", "get3w/wan-2.1-i2v-720p",
                                           "wavespeed-ai/z-image/turbo"}
    for name in wavespeed:
        same = ("id", "type", "price", "price_unit", "description")
        assert {k: wavespeed[name][k] for k in same} == {k: plain[name][k] for k in same}
        assert plain[name]["inputs"] is None
        assert "model_id" in wavespeed[name]["raw"] and "id" in plain[name]["raw"]
    assert (wavespeed["get3w/flux-dev"]["price"], wavespeed["get3w/flux-dev"]["price_unit"]) == (0.025, "USD/run")
    prompt = next(i for i in wavespeed["get3w/flux-dev"]["inputs"] if i["name"] == "prompt")
    assert prompt == {"name": "prompt", "type": "string", "required": True, "enum": None,
                      "description": "Text description of what to generate"}


def test_type_filters_and_a_search_without_match_says_so(sandbox: ThreadedSandbox) -> None:
    """--type keeps that type; no match: said on stderr, exit 0, an empty table or []."""
    env = sandbox_env(sandbox)
    videos = invoke("models", "--type", "image-to-video", env=env)
    assert videos.code == 0
    assert [row[0] for row in rows(videos.stdout)] == ["model", "get3w/wan-2.1-i2v-720p"]
    nothing = invoke("models", "zzz", env=env)
    assert (nothing.code, rows(nothing.stdout)) == (0, [["model", "type", "price", "description"]])
    assert "no get3w model matches 'zzz'" in nothing.stderr
    as_json = invoke("models", "zzz", "--json", env=env)
    assert (as_json.code, as_json.json()) == (0, [])
    typed = invoke("models", "--provider", "abstrakt", "--type", "image-to-video", env=env)
    assert typed.code == 0 and "no abstrakt model matches type image-to-video" in typed.stderr
    prices = {row[0]: row[2] for row in rows(invoke("models", "--provider", "abstrakt", env=env).stdout)[1:]}
    assert prices["abstrakt:fal-ai/flux/dev"] == "3 credits/run" and prices["abstrakt:flux-schnell"] == "1 credit/run"


@pytest.mark.parametrize("columns", ["40", "70"])
def test_the_table_never_cuts_a_model_name_on_a_narrow_terminal(sandbox: ThreadedSandbox, columns: str) -> None:
    """On a narrow terminal the names stay whole: the description goes first (70 columns: a table
    without it); narrower, one line a model (40 columns)."""
    result = g3w_on_terminal("models", "--provider", "abstrakt", env={**sandbox_env(sandbox), "COLUMNS": columns},
                             stdout_on_terminal=True)
    assert result.code == 0, result.stderr
    shown = result.stdout
    for name in ("abstrakt:nano-banana-pro-edit", "abstrakt:fal-ai/flux/schnell", "abstrakt:flux-schnell"):
        assert name in shown, shown
    assert "4 credits/run" in shown
    assert "Edit an image" not in shown  # the description column was dropped, not the names cut


# --- models show ------------------------------------------------------------------------------------


def test_models_show_lists_a_get3w_models_inputs(sandbox: ThreadedSandbox) -> None:
    """Get3W v3: the inputs from the model list's schema: name, type, required, default, allowed values."""
    env = sandbox_env(sandbox)
    result = invoke("models", "show", "flux-dev", env=env)
    assert result.code == 0, result.stderr
    table = {row[0]: row for row in rows(result.stdout)}
    assert table["input"] == ["input", "type", "required", "default", "values", "description"]
    assert table["prompt"][:3] == ["prompt", "string", "yes"]
    assert table["width"][1:4] == ["integer", "", "1024"]
    assert table["sandbox_webhook"][4] == "drop, early, late_processing"
    assert "get3w/flux-dev (text-to-image, $0.025/run)" in result.stderr


def test_models_show_asks_abstrakt_for_the_model(sandbox: ThreadedSandbox) -> None:
    """Abstrakt: GET /v1/models/{id} (slashes raw) and its input_schema; --json gives the model."""
    result = invoke("models", "show", "abstrakt:fal-ai/flux/dev", "--json", env=sandbox_env(sandbox))
    assert result.code == 0, result.stderr
    model = result.json()
    assert (model["run"], model["price"], model["price_unit"]) == ("abstrakt:fal-ai/flux/dev", 3, "credits/run")
    inputs = {i["name"]: i for i in model["inputs"]}
    assert inputs["image_size"]["enum"] == ["square", "square_hd", "portrait_4_3", "landscape_16_9"]
    assert (inputs["image_size"]["default"], inputs["num_images"]["type"]) == ("square_hd", "integer")
    assert inputs["prompt"]["required"] is True and inputs["num_images"]["required"] is False
    assert api_calls(sandbox) == [("GET", "/v1/models/fal-ai/flux/dev")]


def test_models_show_says_when_there_is_no_schema(plain_list: ThreadedSandbox) -> None:
    """A list without schemas: the model is shown, and that its inputs are not published."""
    result = invoke("models", "show", "flux-dev", env=sandbox_env(plain_list))
    assert result.code == 0 and result.stdout == ""
    assert "get3w publishes no input schema for get3w/flux-dev" in result.stderr
    assert invoke("models", "show", "flux-dev", "--json", env=sandbox_env(plain_list)).json()["inputs"] is None


def test_models_show_of_an_unknown_model(sandbox: ThreadedSandbox) -> None:
    """Not in the list: exit 5 with where to look; a v1 model: exit 2 (v1 lists no models)."""
    env = sandbox_env(sandbox)
    missing = invoke("models", "show", "nope", env=env)
    assert missing.code == 5 and "get3w lists no model get3w/nope" in missing.stderr
    assert "g3w models --provider get3w" in missing.stderr
    assert invoke("models", "show", "abstrakt:nope", env=env).code == 5
    assert invoke("models", "show", "google/nano-banana-pro/edit", env=env).code == 2
    assert invoke("models", "show", env=env).code == 2


# --- run checks the inputs ------------------------------------------------------------------------------


@pytest.mark.parametrize("command", [("run",), ("run", "--no-wait"), ("submit",)], ids=" ".join)
@pytest.mark.parametrize("model", ["flux-dev", "abstrakt:fal-ai/flux/schnell"])
def test_run_refuses_a_missing_required_input_and_sends_nothing(tmp_path: Path, sandbox: ThreadedSandbox,
                                                                 model: str, command: tuple[str, ...]) -> None:
    """No prompt: exit 2 naming it, before any upload or submit (only the schema was read); the
    same for run --no-wait and submit."""
    image = tmp_path / "in.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n")
    verb, *extra = command
    result = invoke(verb, model, *extra, "-i", "seed=3", "-i", f"image_url=@{image}", env=sandbox_env(sandbox))
    assert result.code == 2
    assert "requires the input prompt; nothing was sent" in result.stderr and "--prompt" in result.stderr
    assert sandbox.sandbox.submissions() == []
    assert all(method == "GET" and "/models" in path for method, path in api_calls(sandbox))


def test_run_warns_about_an_input_the_schema_does_not_list(sandbox: ThreadedSandbox) -> None:
    """An unknown name is sent anyway, with a warning naming it."""
    result = invoke("run", "flux-dev", "-p", "x", "-i", "colour=blue", "--json", env=sandbox_env(sandbox))
    assert result.code == 0, result.stderr
    assert "Warning: get3w/flux-dev lists no input named colour" in result.stderr
    [submitted] = sandbox.sandbox.submissions()
    assert json.loads(submitted.body)["colour"] == "blue"


def test_run_goes_on_when_the_schema_cannot_be_read(sandbox: ThreadedSandbox) -> None:
    """The model list failing (503 after the retries) is a note; the task still runs."""
    sandbox.sandbox.inject(status=503, count=100, method="GET", path_prefix="/api/v3/models", retry_after=0)
    result = invoke("run", "flux-dev", "-i", "seed=1", "--json", "-i", "sandbox_duration=0.05",
                    env=sandbox_env(sandbox))
    assert "could not read the inputs of get3w/flux-dev" in result.stderr
    assert len(sandbox.sandbox.submissions()) == 1  # not checked: sent (the sandbox answers 400 for no prompt)
    assert result.code == 5


def test_run_reads_the_model_list_once_a_day(sandbox: ThreadedSandbox, isolated_env: Path) -> None:
    """The list is cached under G3W_HOME (0600): a second run reads no list; a day-old cache is read again."""
    env = sandbox_env(sandbox)
    for _ in range(2):
        assert invoke("run", "flux-dev", "-p", "x", "-i", "sandbox_duration=0.05", env=env).code == 0
    lists = [call for call in api_calls(sandbox) if call == ("GET", "/api/v3/models")]
    assert len(lists) == 1
    [cache] = (isolated_env / "g3w-home" / "models").iterdir()
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    stored = json.loads(cache.read_text())
    stored["fetched_at"] -= 25 * 3600
    cache.write_text(json.dumps(stored))
    assert invoke("run", "flux-dev", "-p", "x", "-i", "sandbox_duration=0.05", env=env).code == 0
    assert len([call for call in api_calls(sandbox) if call == ("GET", "/api/v3/models")]) == 2


def test_models_fills_the_cache_the_completions_read(sandbox: ThreadedSandbox, isolated_env: Path) -> None:
    """`g3w models` caches the whole list per provider; the completions' names come from there only."""
    home = isolated_env / "g3w-home"
    assert cached_run_names(home) == []
    env = sandbox_env(sandbox)
    assert invoke("models", env=env).code == 0
    assert invoke("models", "--provider", "abstrakt", env=env).code == 0
    assert invoke("models", "dev", env=env).code == 0  # a search does not replace the whole list
    names = cached_run_names(home)
    assert {"get3w/flux-dev", "get3w/wan-2.1-i2v-720p", "abstrakt:fal-ai/flux/dev"} <= set(names)
    assert names == sorted(names)


# --- the pieces ----------------------------------------------------------------------------------------


def test_a_cache_is_fresh_for_a_day_and_per_base_url(tmp_path: Path) -> None:
    """load() gives the list while younger than a day, for the same provider and base URL only."""
    now = [1_000_000.0]
    cache = ModelsCache(tmp_path, clock=lambda: now[0])
    model = ModelInfo(provider="get3w", id="get3w/a", run="get3w/a", inputs=(ModelInput("prompt", "string", True),))
    assert cache.save("get3w", "https://api.get3w.com", [model])
    assert cache.load("get3w", "https://api.get3w.com") == [model]
    assert cache.load("get3w", "https://other.example") is None
    assert cache.load("abstrakt", "https://api.get3w.com") is None
    now[0] += 24 * 3600
    assert cache.load("get3w", "https://api.get3w.com") is None
    assert cache.load("get3w", "https://api.get3w.com", fresh_only=False) == [model]
    cache.path("get3w", "https://api.get3w.com").write_text("{not json")
    assert cache.load("get3w", "https://api.get3w.com", fresh_only=False) is None


def test_a_runs_input_check_parses_only_its_own_model_from_the_cache(tmp_path: Path) -> None:
    """load(only=ID) gives that model alone (none when it is not listed); an entry of another model
    that would not parse is never looked at."""
    cache = ModelsCache(tmp_path)
    wanted = ModelInfo(provider="get3w", id="get3w/a", run="get3w/a", inputs=(ModelInput("prompt", "string", True),))
    other = ModelInfo(provider="get3w", id="get3w/b", run="get3w/b")
    assert cache.save("get3w", "https://api.get3w.com", [other, wanted])
    path = cache.path("get3w", "https://api.get3w.com")
    saved = json.loads(path.read_text())
    saved["models"][0] = {"id": "get3w/b", "broken": True}  # not a ModelInfo: parsing it would fail
    path.write_text(json.dumps(saved))
    assert cache.load("get3w", "https://api.get3w.com", only="get3w/a") == [wanted]
    assert cache.load("get3w", "https://api.get3w.com", only="get3w/zzz") == []
    assert cache.load("get3w", "https://api.get3w.com") is None  # the whole list does not parse


def test_schema_inputs_and_the_check() -> None:
    """properties in order; required without a default is missing when absent; unknown names listed."""
    schema: dict[str, Any] = {"type": "object", "required": ["prompt", "size"], "properties": {
        "prompt": {"type": "string"}, "size": {"type": "string", "default": "1024*1024", "enum": ["1024*1024"]},
        "seed": {"type": ["integer", "null"]}, "images": {"type": "array", "items": {"type": "string"}}}}
    inputs = inputs_from_schema(schema)
    assert inputs is not None
    assert [(i.name, i.type, i.required) for i in inputs] == [
        ("prompt", "string", True), ("size", "string", True), ("seed", "integer|null", False),
        ("images", "array of string", False)]
    assert missing_inputs(inputs, ["seed"]) == ["prompt"]  # size has a default: the provider fills it
    assert unknown_inputs(inputs, ["prompt", "colour"]) == ["colour"]
    assert inputs_from_schema({"type": "object"}) is None and inputs_from_schema(None) is None
