"""How a task record is stored: without its ``input`` (the input lives once, in ``task_inputs``),
and without the copy of the input a provider may echo in ``raw``; both are put back on reading.

An 8 MB input used to be stored five times over (the task's input, its record, the record's
``raw``, and the batch line's copies of both).

Searching prompts (``history --prompt``) goes through ``prompt_of``, registered on the
connection as an SQL function: it reads the stored input's ``prompt`` and folds its case the
way Python does (SQLite's own ``lower`` folds ASCII only), without needing SQLite's JSON1.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


def pack_record(record: Mapping[str, Any] | None) -> tuple[str | None, int]:
    """(JSON without ``input``, 1 when ``raw`` echoed the input and was stored without it too)."""
    if record is None:
        return None, 0
    stored = dict(record)
    given = stored.pop("input", None)
    raw = stored.get("raw")
    if isinstance(raw, dict) and "input" in raw and raw["input"] == given:
        stored["raw"] = {key: value for key, value in raw.items() if key != "input"}
        return json.dumps(stored), 1
    return json.dumps(stored), 0


def unpack_record(text: str | None, raw_echo: int, input: dict[str, Any]) -> dict[str, Any] | None:
    """The stored record with its input put back where the task record has it (after ``via``)."""
    if not text:
        return None
    stored = json.loads(text)
    if raw_echo and isinstance(stored.get("raw"), dict):
        stored["raw"]["input"] = input
    if "via" not in stored:
        return {**stored, "input": input}
    record: dict[str, Any] = {}
    for key, value in stored.items():
        record[key] = value
        if key == "via":
            record["input"] = input
    return record


PROMPT_FUNCTION = "g3w_prompt"  # prompt_of, as the journal's SQL calls it


def fold(text: str) -> str:
    """Text compared without regard to case (``ß`` matches ``SS``, ``É`` matches ``é``)."""
    return text.casefold()


def prompt_of(input_json: str | None) -> str | None:
    """The case-folded ``prompt`` of a stored input, or None when it has none (never raises:
    sqlite turns an exception in a function into an error for the whole query)."""
    if not input_json:
        return None
    try:
        values = json.loads(input_json)
    except ValueError:
        return None
    prompt = values.get("prompt") if isinstance(values, dict) else None
    return fold(prompt) if isinstance(prompt, str) else None
