"""Model lists cached under G3W_HOME: one JSON file per provider and base URL, mode 0600.

Written by ``g3w models`` and by ``run``'s input check (which fetches a list older than
MODELS_CACHE_MAX_AGE again); read by that check and by the shell completions, which must never
touch the network (``cached_run_names`` reads whatever is there, however old). The cache is a
convenience: a file that cannot be read or written is treated as absent, never as an error.

    models/<provider>-<sha256(base URL)[:16]>.json
        {"provider": ..., "base_url": ..., "fetched_at": <unix seconds>, "models": [ModelInfo.as_json]}
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from get3w_cli.constants import MODELS_CACHE_DIR_MODE, MODELS_CACHE_FILE_MODE, MODELS_CACHE_MAX_AGE
from get3w_cli.models import ModelInfo, model_from_json

CACHE_DIR = "models"  # under the state dir (G3W_HOME)
_KEY_CHARS = 16


class ModelsCache:
    """The cached model lists under ``state_dir``; ``clock`` gives unix seconds (tests inject one)."""

    def __init__(self, state_dir: Path, *, clock: Callable[[], float] = time.time,
                 max_age: float = MODELS_CACHE_MAX_AGE) -> None:
        self.folder = state_dir / CACHE_DIR
        self.clock, self.max_age = clock, max_age

    def path(self, provider: str, base_url: str) -> Path:
        digest = hashlib.sha256(base_url.rstrip("/").encode()).hexdigest()[:_KEY_CHARS]
        return self.folder / f"{provider}-{digest}.json"

    def load(self, provider: str, base_url: str, *, fresh_only: bool = True,
             only: str | None = None) -> list[ModelInfo] | None:
        """The cached list, or None when there is none, it is unreadable, or (``fresh_only``) too old.
        ``only``: just the model of that id (or none) is parsed, for a run's input check: a real
        provider lists hundreds of models, each with its schema."""
        data = _read(self.path(provider, base_url))
        if data is None or data.get("base_url") != base_url.rstrip("/"):
            return None
        fetched = data.get("fetched_at")
        if fresh_only and (not isinstance(fetched, (int, float)) or not 0 <= self.clock() - fetched < self.max_age):
            return None
        try:
            listed = data.get("models") or []
            if only is not None:
                listed = [each for each in listed if isinstance(each, dict) and each.get("id") == only]
            return [model_from_json(each) for each in listed]
        except (KeyError, TypeError, AttributeError):
            return None

    def save(self, provider: str, base_url: str, models: Iterable[ModelInfo]) -> bool:
        """Replace the cached list (atomically, mode 0600); False when it could not be written."""
        body = {"provider": provider, "base_url": base_url.rstrip("/"), "fetched_at": self.clock(),
                "models": [each.as_json(raw=False) for each in models]}
        target = self.path(provider, base_url)
        temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        try:
            self.folder.mkdir(mode=MODELS_CACHE_DIR_MODE, parents=True, exist_ok=True)
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, MODELS_CACHE_FILE_MODE)
            with os.fdopen(descriptor, "w", encoding="utf-8") as out:
                json.dump(body, out, ensure_ascii=False, separators=(",", ":"))
            os.replace(temporary, target)
        except OSError:
            with contextlib.suppress(OSError):
                temporary.unlink()
            return False
        return True


def cached_run_names(state_dir: Path, provider: str | None = None) -> list[str]:
    """Every model name (as typed after `g3w run`) in any cached list (of ``provider`` only, when
    given), however old; sorted, unique. Local files only: what the shell completions offer and
    what "did you mean" compares a model name with."""
    names: set[str] = set()
    try:
        files = sorted((state_dir / CACHE_DIR).glob("*.json"))
    except OSError:
        return []
    for each in files:
        data = _read(each)
        if provider is not None and (data or {}).get("provider") != provider:
            continue
        for model in (data or {}).get("models") or []:
            if isinstance(model, dict) and isinstance(model.get("run"), str):
                names.add(model["run"])
    return sorted(names)


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
