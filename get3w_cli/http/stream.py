"""A POST answered with Server-Sent Events (Get3W v3 ``"stream": true``), read with httpx-sse.

Opening is one attempt under ``HttpSession._retry`` (a POST, so only an answer that proves nothing
was created is tried again): a 2xx ``text/event-stream`` answer becomes an ``EventStream`` whose
events are read as they come; any other 2xx answer is read whole into ``EventStream.reply`` (the
provider did not stream); an error answer is a ``Failure``, as for any API request. Opening,
error bodies included, ends within the request deadline; reading ends when the server sends
nothing for ``idle`` seconds. Transport trouble while reading is a NetworkError: the caller
knows whether a task already exists.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

from get3w_cli.constants import HTTP_CONNECT_TIMEOUT
from get3w_cli.errors import NetworkError
from get3w_cli.http.failures import Failure, deadline_failure, describe, host, network_failure
from get3w_cli.timeouts import within

if TYPE_CHECKING:
    from get3w_cli.http import ErrorParser, Reply

EVENT_STREAM = "text/event-stream"


@dataclass(frozen=True)
class ServerEvent:
    """One event: its ``event`` name (``message`` by default), ``data`` text and ``id`` field."""

    event: str
    data: str
    id: str


class EventStream:
    """An opened event-stream answer (or, in ``reply``, an answer that was not one)."""

    def __init__(self, response: httpx.Response | None, url: str, *, idle: float, reply: Reply | None = None) -> None:
        self._response, self.url, self.idle, self.reply = response, url, idle, reply

    async def events(self) -> AsyncIterator[ServerEvent]:
        """The events as they arrive; ends when the server closes the stream.

        Raises:
            NetworkError: the stream broke, or went silent for ``idle`` seconds.
        """
        if self._response is None:
            return
        from httpx_sse import EventSource  # only --via stream reads events

        try:
            async for sse in EventSource(self._response).aiter_sse():
                yield ServerEvent(sse.event, sse.data, sse.id)
        except httpx.TimeoutException as exc:
            raise NetworkError(f"the event stream from {host(self.url)} sent nothing for {self.idle:g}s") from exc
        except httpx.HTTPError as exc:
            raise NetworkError(f"the event stream from {host(self.url)} broke: {describe(exc)}") from exc

    async def aclose(self) -> None:
        if self._response is not None:
            await self._response.aclose()


async def open_stream(client: httpx.AsyncClient, url: str, *, headers: dict[str, str], json: Any, errors: ErrorParser,
                      deadline: float, idle: float) -> EventStream | Failure:
    """One attempt at POSTing ``json`` to ``url`` and reading the answer's head (see the module doc)."""
    from get3w_cli.http import Reply
    from get3w_cli.http.failures import answer_failure, json_or_none

    request = client.build_request("POST", url, json=json, headers={**headers, "Accept": EVENT_STREAM},
                                   timeout=httpx.Timeout(idle, connect=HTTP_CONNECT_TIMEOUT))

    async def head() -> tuple[httpx.Response, bytes | None]:
        response = await client.send(request, stream=True)
        try:
            kind = response.headers.get("content-type", "").partition(";")[0].strip().lower()
            if 200 <= response.status_code < 300 and kind == EVENT_STREAM:
                return response, None
            return response, await response.aread()  # not a stream: read whole (and closed)
        except BaseException:
            await response.aclose()
            raise

    try:
        response, content = await within(head(), deadline)
    except asyncio.TimeoutError as exc:
        return deadline_failure("POST", url, deadline, exc)
    except httpx.HTTPError as exc:
        return network_failure("POST", url, exc)
    if content is None:
        return EventStream(response, url, idle=idle)
    if 200 <= response.status_code < 300:
        seen = {k.lower(): v for k, v in response.headers.items()}
        return EventStream(None, url, idle=idle, reply=Reply(response.status_code, json_or_none(content), seen))
    return answer_failure(response, url, errors)
