"""Model inputs: -i KEY=VALUE JSON rules, KEY:=JSON, KEY=@file, --input FILE / -, and their order."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from get3w_cli.cli.inputs import parse_inputs, parse_value
from get3w_cli.errors import UsageError


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("42", 42),
        ("-1.5", -1.5),
        ("1e3", 1000.0),
        ("true", True),
        ("false", False),
        ("null", None),
        ("[1, 2]", [1, 2]),
        ('{"a": {"b": 1}}', {"a": {"b": 1}}),
        ("hello", "hello"),
        ("a cat, in the rain", "a cat, in the rain"),
        ('"quoted"', '"quoted"'),  # a JSON string is not one of the JSON kinds: kept as typed
        ("", ""),
        ("True", "True"),  # JSON booleans are lower-case
        ("007", "007"),  # not a JSON number
        ("1.0.0", "1.0.0"),
        ("NaN", "NaN"),  # Python's parser takes these; JSON does not
        ("Infinity", "Infinity"),
        ("-Infinity", "-Infinity"),
        ("[1, ", "[1, "),
        ("http://x/?a=b", "http://x/?a=b"),
    ],
)
def test_parse_value_reads_json_kinds_else_a_string(raw: str, expected: Any) -> None:
    """-i VALUE: JSON when it is a number, boolean, null, array or object; else the string itself."""
    value = parse_value(raw)
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize(
    ("pairs", "expected"),
    [
        (["seed=42"], {"seed": 42}),
        (["size=1024*1024"], {"size": "1024*1024"}),
        (["a=b=c"], {"a": "b=c"}),  # only the first = splits
        (["x=a:=b"], {"x": "a:=b"}),  # := after the first = is part of the value
        (["n:=5"], {"n": 5}),
        (['s:="5"'], {"s": "5"}),  # := forces JSON, strings included
        (["l:=[1,{\"a\":null}]"], {"l": [1, {"a": None}]}),
        (["k:=true"], {"k": True}),
        ([" key =v"], {"key": "v"}),
        (["empty="], {"empty": ""}),
        (["a=1", "a=2"], {"a": 2}),  # later -i wins
    ],
)
def test_parse_inputs_pairs(pairs: list[str], expected: dict[str, Any]) -> None:
    """-i KEY=VALUE and KEY:=JSON become the inputs, in order."""
    assert parse_inputs(None, pairs, None).values == expected


@pytest.mark.parametrize("pair", ["noequals", "=value", " =value", ":=1", "x:={bad", "x:=", "x:=NaN", "x:=[1,"])
def test_malformed_pairs_are_usage_errors(pair: str) -> None:
    """A -i without KEY=, with an empty key, or with invalid JSON after := is a usage error."""
    with pytest.raises(UsageError) as info:
        parse_inputs(None, [pair], None)
    assert info.value.exit_code == 2
    assert "\n" not in info.value.message


def test_at_file_is_an_upload(tmp_path: Path) -> None:
    """-i KEY=@path names a local file to upload; its key is not sent as a literal."""
    image = tmp_path / "cat.png"
    image.write_bytes(b"\x89PNG")
    result = parse_inputs("a cat", [f"image=@{image}"], None)
    assert result.uploads == {"image": image}
    assert result.values == {"prompt": "a cat"}


@pytest.mark.parametrize("target", ["missing.png", "", "."])
def test_unreadable_at_file_is_a_usage_error(tmp_path: Path, target: str) -> None:
    """-i KEY=@missing (or a folder) fails before anything is sent, naming the option."""
    raw = str(tmp_path / target) if target else ""
    with pytest.raises(UsageError) as info:
        parse_inputs(None, [f"image=@{raw}"], None)
    assert "-i image=@" in info.value.message


def test_later_value_replaces_an_upload(tmp_path: Path) -> None:
    """-i KEY=@file then -i KEY=url: the later one wins and nothing is uploaded."""
    image = tmp_path / "a.png"
    image.write_bytes(b"x")
    result = parse_inputs(None, [f"image=@{image}", "image=https://x/a.png"], None)
    assert result.uploads == {}
    assert result.values == {"image": "https://x/a.png"}


def test_input_file_then_prompt_then_pairs(tmp_path: Path) -> None:
    """--input FILE is the base; --prompt overrides its prompt; -i overrides both."""
    source = tmp_path / "in.json"
    source.write_text(json.dumps({"prompt": "file", "seed": 1, "steps": 4, "nested": {"a": 1}}))
    result = parse_inputs("flag", ["seed=2", "extra=true"], str(source))
    assert result.values == {"prompt": "flag", "seed": 2, "steps": 4, "nested": {"a": 1}, "extra": True}
    assert parse_inputs("flag", ["prompt=pair"], str(source)).values["prompt"] == "pair"


def test_input_from_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    """--input - reads the JSON object from stdin."""
    monkeypatch.setattr("sys.stdin", io.StringIO('{"prompt": "from stdin", "n": 2}'))
    assert parse_inputs(None, ["n=3"], "-").values == {"prompt": "from stdin", "n": 3}


@pytest.mark.parametrize(
    ("content", "message"),
    [("{bad", "not valid JSON"), ("[1, 2]", "JSON object"), ('"text"', "JSON object"),
     ('{"x": NaN}', "not valid JSON"), ("", "not valid JSON")],
)
def test_bad_input_file_is_a_usage_error(tmp_path: Path, content: str, message: str) -> None:
    """--input must hold one valid JSON object."""
    source = tmp_path / "in.json"
    source.write_text(content)
    with pytest.raises(UsageError) as info:
        parse_inputs(None, [], str(source))
    assert message in info.value.message


def test_missing_input_file_is_a_usage_error(tmp_path: Path) -> None:
    """--input of a file that does not exist is a usage error naming it."""
    with pytest.raises(UsageError) as info:
        parse_inputs(None, [], str(tmp_path / "nope.json"))
    assert "nope.json" in info.value.message


def test_no_inputs_is_empty() -> None:
    """Nothing given: no inputs, no uploads."""
    result = parse_inputs(None, [], None)
    assert result.values == {} and result.uploads == {}
