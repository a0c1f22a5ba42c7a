"""The provider model lists g3w has fetched, kept under G3W_HOME (one file a provider and base URL).

``g3w models`` writes the whole list it fetched; shell completion (``g3w __complete models``)
and "did you mean" read the names, never the network; input schemas may be read from the raw
entries. A list counts as fresh for ``MODELS_CACHE_MAX_AGE`` (a day): a reader that wants a newer
one fetches it and saves it again. Files are JSON, written atomically, mode 0600:

    {"provider": "get3w", "base_url": "https://api.get3w.com", "fetched_at": 1767000000.0,
     "names": ["flux-dev", ...], "models": [{...the provider's entry...}, ...]}

``names`` are what a user types to run each model (``abstrakt:<id>`` for Abstrakt).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from get3w_cli.constants import MODELS_CACHE_FILE_MODE, MODELS_CACHE_MAX_AGE

PREFIX, SUFFIX = "models-", ".json"


@dataclass(frozen=True)
class CachedModels:
    provider: str
    base_url: str
    fetched_at: float
    names: tuple[str, ...]
    models: list[Any] = field(default_factory=list, repr=False)

    def fresh(self, now: float | None = None) -> bool:
        """Fetched less than MODELS_CACHE_MAX_AGE ago."""
        return (time.time() if now is None else now) - self.fetched_at < MODELS_CACHE_MAX_AGE


def cache_path(state_dir: Path, provider: str, base_url: str) -> Path:
    digest = hashlib.sha256(base_url.encode("utf-8")).hexdigest()[:12]
    return state_dir / f"{PREFIX}{provider}-{digest}{SUFFIX}"


def save(state_dir: Path, provider: str, base_url: str, names: Sequence[str], models: Sequence[Any], *,
         now: float | None = None) -> Path | None:
    """Write the list (atomically, 0600); None when it cannot be written (a cache is optional)."""
    path = cache_path(state_dir, provider, base_url)
    data = {"provider": provider, "base_url": base_url, "fetched_at": time.time() if now is None else now,
            "names": list(names), "models": list(models)}
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".models-", dir=state_dir)
        try:
            os.fchmod(fd, MODELS_CACHE_FILE_MODE)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(data, handle, ensure_ascii=False, default=str)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError:
        return None
    return path


def _read(path: Path) -> CachedModels | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        names = tuple(str(n) for n in data["names"])
        return CachedModels(str(data["provider"]), str(data["base_url"]), float(data["fetched_at"]), names,
                            list(data.get("models") or []))
    except (OSError, ValueError, KeyError, TypeError):
        return None  # missing, half-written by an older g3w, or edited by hand: as if absent


def load(state_dir: Path, provider: str, base_url: str) -> CachedModels | None:
    """The cached list of one provider at one base URL, whatever its age (see ``fresh``)."""
    return _read(cache_path(state_dir, provider, base_url))


def every_list(state_dir: Path) -> Iterator[CachedModels]:
    """Every cached list under ``state_dir`` (newest fetch first)."""
    try:
        paths = [p for p in state_dir.iterdir() if p.name.startswith(PREFIX) and p.name.endswith(SUFFIX)]
    except OSError:
        return
    found = [c for c in map(_read, paths) if c is not None]
    yield from sorted(found, key=lambda c: c.fetched_at, reverse=True)


def known_names(state_dir: Path, provider: str | None = None) -> list[str]:
    """Every model name in the cached lists (of ``provider`` only, when given), without repeats."""
    names: dict[str, None] = {}
    for cached in every_list(state_dir):
        if provider is None or cached.provider == provider:
            names.update(dict.fromkeys(cached.names))
    return list(names)
