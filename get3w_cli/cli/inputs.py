"""Model inputs from ``--input FILE``, ``--prompt`` / ``--prompt-file`` and ``-i KEY=VALUE``, and the
``-o DIR`` folder: all checked before any request (a bad one is exit 2 and nothing is paid for)."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from get3w_cli.errors import UsageError, plain_reason

_JSON_KINDS = (int, float, bool, list, dict, type(None))


@dataclass
class Inputs:
    values: dict[str, Any] = field(default_factory=dict)
    uploads: dict[str, Path] = field(default_factory=dict)  # key -> local file to upload first


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def loads_json(text: str) -> Any:
    """Strict JSON: Python's parser also takes NaN and Infinity, which no request body may carry.

    Raises:
        ValueError: not valid JSON.
    """
    return json.loads(text, parse_constant=_reject_constant)


def parse_value(raw: str) -> Any:
    """JSON when it parses as a number, boolean, null, array or object; else the string itself."""
    try:
        value = loads_json(raw)
    except ValueError:
        return raw
    return value if isinstance(value, _JSON_KINDS) else raw


def _read_input_file(source: str) -> dict[str, Any]:
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read --input {source}: {plain_reason(exc)}") from exc
    try:
        data = loads_json(text)
    except ValueError as exc:
        raise UsageError(f"--input {source} is not valid JSON: {exc}", hint="give a JSON object of inputs") from exc
    if not isinstance(data, dict):
        raise UsageError(f"--input {source} must hold a JSON object, not {type(data).__name__}")
    return data


def readable_file(raw: str, what: str) -> Path:
    """The local file ``raw`` names, checked before anything is sent; ``what`` names the option.

    Raises:
        UsageError: no readable regular file there.
    """
    path = Path(raw).expanduser()
    if not path.is_file() or not os.access(path, os.R_OK):
        raise UsageError(f"{what}: no readable file at {path}")
    return path


def read_prompt(prompt: str | None, prompt_file: str | None, input_file: str | None = None) -> str | None:
    """The prompt: ``--prompt TEXT``, ``-p -`` (stdin) or ``--prompt-file FILE`` (``-``: stdin).

    Read text loses its trailing newlines (as ``$(cat FILE)`` would): ``echo "a cat" | g3w run -p -``
    sends "a cat".

    Raises:
        UsageError: both options, stdin asked for twice, an unreadable file, an empty prompt.
    """
    if prompt is not None and prompt_file is not None:
        raise UsageError("give --prompt or --prompt-file, not both")
    source = prompt_file if prompt_file is not None else "-" if prompt == "-" else None
    if source is None:
        return prompt
    where = "stdin" if source == "-" else source
    if source == "-" and input_file == "-":
        raise UsageError("the prompt and --input cannot both be read from stdin",
                         hint="put the prompt in the JSON of --input, or use --prompt-file FILE")
    try:
        text = sys.stdin.read() if source == "-" else Path(source).expanduser().read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise UsageError(f"cannot read the prompt from {where}: {reason}") from exc
    text = text.rstrip("\r\n")
    if not text.strip():
        raise UsageError(f"the prompt read from {where} is empty")
    return text


def output_dir(raw: str) -> str:
    """``-o DIR``, created if missing and proved writable (a file is made and removed there).

    Raises:
        UsageError: a file is there, or the folder cannot be created or written.
    """
    path = Path(raw).expanduser()
    if path.exists() and not path.is_dir():
        raise UsageError(f"-o {raw}: not a folder (a file is there)", hint="give a folder for the outputs")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise UsageError(f"-o {raw}: cannot write there ({exc.strerror or exc})",
                         hint="give a folder you can write to") from exc
    return raw


def parse_inputs(prompt: str | None, pairs: Sequence[str], input_file: str | None,
                 prompt_file: str | None = None) -> Inputs:
    """Merge the input sources: file first, then the prompt, then each -i in order.

    Raises:
        UsageError: malformed -i, unreadable or invalid --input, unreadable @file or prompt.
    """
    prompt = read_prompt(prompt, prompt_file, input_file)
    result = Inputs(values=_read_input_file(input_file) if input_file else {})
    if prompt is not None:
        result.values["prompt"] = prompt
    for pair in pairs:
        force = ":=" in pair and pair.index(":=") < pair.index("=")
        key, _, raw = pair.partition(":=" if force else "=")
        key = key.strip()
        if not key or (not force and "=" not in pair):
            raise UsageError(f"bad -i {pair!r}", hint="use -i KEY=VALUE, -i KEY:=JSON or -i KEY=@FILE")
        result.uploads.pop(key, None)
        if force:
            try:
                result.values[key] = loads_json(raw)
            except ValueError as exc:
                raise UsageError(f"-i {key}:= is not valid JSON: {exc}") from exc
        elif raw.startswith("@"):
            result.uploads[key] = readable_file(raw[1:], f"-i {key}={raw}")
            result.values.pop(key, None)
        else:
            result.values[key] = parse_value(raw)
    return result
