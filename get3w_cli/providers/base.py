"""The providers' interface: the one task protocol every adapter speaks, and the optional
capabilities some adapters add (checked with ``isinstance``, never reached through casts).

    Adapter          submit, get, cancel (``can_cancel``, ``has_sync`` tell what the API offers)
    ModelLister      list_models            Get3W v3, Abstrakt
    ModelDescriber   describe_model         Abstrakt (one model's details, with its input schema)
    StreamSubmitter  submit_stream          Get3W v3 (``"stream": true``: Server-Sent Events)
    Account          balance, upload        Get3W v3

Every method raises only ``G3wError`` subclasses.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from get3w_cli.models import ModelInfo
    from get3w_cli.providers.stream_update import StreamUpdate
    from get3w_cli.records import Task


@runtime_checkable
class Adapter(Protocol):
    """One provider API's tasks."""

    @property
    def provider(self) -> str: ...

    @property
    def api(self) -> str: ...

    @property
    def can_cancel(self) -> bool: ...

    @property
    def has_sync(self) -> bool: ...

    async def submit(
        self,
        model: str,
        input: Mapping[str, Any],
        *,
        webhook_url: str | None = None,
        sync: bool = False,
    ) -> Task: ...

    async def get(self, task_id: str) -> Task: ...

    async def cancel(self, task_id: str) -> Task: ...


@dataclass(frozen=True)
class AccountRows:
    """An account listing (models, balance): column names, string cells, and the provider's data."""

    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    raw: object


@runtime_checkable
class ModelLister(Protocol):
    """An API that lists its models (``search``: id, name or description contain it)."""

    async def list_models(self, search: str | None = None) -> list[ModelInfo]: ...


@runtime_checkable
class ModelDescriber(Protocol):
    """An API that describes one model, its input schema included, in one request."""

    async def describe_model(self, model: str) -> ModelInfo: ...


class SubmitStream(Protocol):
    """A streamed submit's answer: its updates, or ``answer`` when the provider did not stream."""

    @property
    def answer(self) -> Task | None: ...

    def __aiter__(self) -> AsyncIterator[StreamUpdate]: ...


@runtime_checkable
class StreamSubmitter(Protocol):
    """An API whose submit can answer with a stream of progress events.

    Opening raises like ``Adapter.submit``; iterating raises NetworkError when the stream breaks.
    """

    def submit_stream(self, model: str, input: Mapping[str, Any]) -> AbstractAsyncContextManager[SubmitStream]: ...


@runtime_checkable
class KeyCheck(Protocol):
    """An API whose key can be tried with one cheap authenticated request (``g3w doctor --online``)."""

    async def check_key(self) -> str:
        """What the request showed (one short line); raises ApiError or NetworkError like any request."""
        ...


@runtime_checkable
class Account(Protocol):
    """An API with account endpoints: the balance, and file uploads for inputs."""

    async def balance(self) -> AccountRows: ...

    async def upload(self, path: Path) -> str: ...
