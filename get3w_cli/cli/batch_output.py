"""``g3w batch``'s output: the records (``--out`` FILE or stdout) and the progress on stderr."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import IO, TYPE_CHECKING, Any

from get3w_cli import constants as C
from get3w_cli.cli.render import Ui, describe_duration, write_stdout

if TYPE_CHECKING:
    from get3w_cli.batch.report import Stats


def stopper(ui: Ui) -> Callable[[str], None]:
    """Stop the batch the way Ctrl-C does (the resume command is printed on the way out)."""
    import asyncio

    main = asyncio.current_task()

    def stop(message: str) -> None:
        ui.warn(message)
        if main is not None:
            main.cancel()

    return stop


@contextmanager
def record_sink(out: str | None, on_broken: Callable[[str], None]) -> Iterator[Callable[[dict[str, Any]], None]]:
    """Where records go: --out FILE (rewritten by every run) or stdout; one flushed line each.

    When the reader of stdout goes away (``| head``) or the file cannot be written, the sink
    stops writing and calls ``on_broken`` (which stops the batch the way Ctrl-C does): what is
    journalled is safe, and ``--resume`` re-emits it. It never raises into the engine.
    """
    from get3w_cli.errors import UsageError

    try:
        handle: IO[str] = open(out, "w", encoding="utf-8") if out and out != "-" else sys.stdout  # noqa: SIM115
    except OSError as exc:
        raise UsageError(f"cannot write {out}: {exc.strerror or exc}") from exc
    broken = False

    def write(record: dict[str, Any]) -> None:
        nonlocal broken
        if broken:
            return
        line = json.dumps(record, ensure_ascii=False, default=str) + "\n"
        try:
            if handle is sys.stdout:
                write_stdout(line)
            else:
                handle.write(line)
                handle.flush()
        except OSError as exc:  # StdoutClosed included
            broken = True
            on_broken(f"cannot write records to {'stdout' if handle is sys.stdout else out} "
                      f"({exc.strerror or exc}); stopping the batch")

    try:
        yield write
    finally:
        if handle is not sys.stdout:
            handle.close()


def progress_text(stats: Stats) -> str:
    eta = stats.eta()
    return (f"{stats.done} done · {stats.failed} failed · {stats.in_flight} in flight · {stats.queued} queued · "
            f"{stats.rate():.1f}/s · ETA {describe_duration(eta) if eta is not None else '-'}")


@asynccontextmanager
async def progress(ui: Ui, stats: Stats) -> AsyncIterator[None]:
    """A live bar on a terminal, a plain line every BATCH_PROGRESS_INTERVAL otherwise, nothing if quiet."""
    import asyncio  # here, not at the top: `g3w --help` must not pay for asyncio

    if ui.quiet:
        yield
        return
    if not ui.animated:
        ticker = asyncio.ensure_future(_plain_progress(ui, stats))
        try:
            yield
        finally:
            ticker.cancel()
        return
    from rich.progress import BarColumn, Progress, TextColumn

    bar = Progress(TextColumn("batch"), BarColumn(bar_width=C.BATCH_PROGRESS_BAR_WIDTH),
                   TextColumn("{task.completed}/{task.total} · {task.description}"), console=ui.err, transient=True)
    task = bar.add_task(progress_text(stats), total=stats.total)

    async def refresh() -> None:
        while True:
            bar.update(task, completed=stats.finished, description=progress_text(stats))
            await asyncio.sleep(C.BATCH_PROGRESS_REFRESH)

    with bar:
        ticker = asyncio.ensure_future(refresh())
        try:
            yield
        finally:
            ticker.cancel()


async def _plain_progress(ui: Ui, stats: Stats) -> None:
    import asyncio

    while True:
        await asyncio.sleep(C.BATCH_PROGRESS_INTERVAL)
        ui.note(f"batch: {stats.finished}/{stats.total} · {progress_text(stats)}")
