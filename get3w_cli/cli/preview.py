"""``--preview``: a finished task's image outputs drawn in the terminal (CONTRACT 12).

Where stderr is a terminal, each image output is drawn there, fitted to the window: with the
kitty graphics protocol, iTerm2's inline images or sixel where the terminal has them, coloured
half-blocks elsewhere; nothing at all when stderr is not a terminal (or with --quiet). A video
shows its first frame when a decoder is already installed (PyAV or OpenCV), else a line says it
is a video. Outputs not downloaded with -o are fetched into a temporary folder first.

The protocol: ``TERM`` / ``TERM_PROGRAM`` name kitty (and ghostty) or iTerm2 (and WezTerm),
outside tmux; otherwise the terminal is asked (primary device attributes, ``ESC [ c``), and an
answer listing 4 means sixel; no such answer means half-blocks. textual-image (with Pillow)
draws sixel and half-blocks; kitty's and iTerm2's escapes are written here, on stderr (the
library writes its kitty images to stdout, which carries g3w's data). It is an optional
extra (``pip install 'g3w[preview]'``): without it, one hint line.
"""

from __future__ import annotations

import base64
import io
import os
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from get3w_cli import constants as C
from get3w_cli.errors import G3wError

if TYPE_CHECKING:
    from PIL.Image import Image

    from get3w_cli.cli.render import Ui
    from get3w_cli.http import HttpSession

KITTY, ITERM, SIXEL, BLOCKS = "kitty", "iterm2", "sixel", "half-blocks"
INSTALL_HINT = "--preview needs textual-image and Pillow: pip install 'g3w[preview]'"
VIDEO_SUFFIXES = frozenset({".mp4", ".webm", ".mov", ".mkv", ".avi", ".m4v"})
_ESC = "\x1b"


def choose_protocol(env: Mapping[str, str], ask: Callable[[str, str], str | None]) -> str:
    """The graphics protocol of the terminal on stderr: its name in the environment, else its
    answer to ``ESC [ c`` (``ask(query, end)``); half-blocks when nothing says better."""
    term, program = env.get("TERM", ""), env.get("TERM_PROGRAM", "")
    if not env.get("TMUX"):  # tmux passes neither protocol through unless configured to
        if term in ("xterm-kitty", "xterm-ghostty") or env.get("KITTY_WINDOW_ID") or program == "ghostty":
            return KITTY
        if program in ("iTerm.app", "WezTerm") or env.get("LC_TERMINAL") == "iTerm2":
            return ITERM
    answer = ask(f"{_ESC}[c", "c")
    if answer and answer.startswith(f"{_ESC}[?") and "4" in answer[3:-1].split(";"):
        return SIXEL
    return BLOCKS


def ask_terminal(query: str, end: str, *, timeout: float = C.PREVIEW_TERMINAL_ANSWER_TIMEOUT) -> str | None:
    """Send ``query`` to the terminal on stderr and read its answer on stdin (the same terminal),
    up to ``end``; None when stdin is another file or no answer comes in time."""
    if sys.platform == "win32":
        return None
    import select
    import termios
    import tty

    try:
        in_fd, err_fd = sys.stdin.fileno(), sys.stderr.fileno()
        if not (os.isatty(in_fd) and os.isatty(err_fd)) or os.fstat(in_fd).st_rdev != os.fstat(err_fd).st_rdev:
            return None
        saved = termios.tcgetattr(in_fd)
    except (AttributeError, ValueError, OSError, termios.error):
        return None
    try:
        tty.setcbreak(in_fd, termios.TCSANOW)  # the answer is read as it comes, and not echoed
        os.write(err_fd, query.encode())
        answer, deadline = b"", time.monotonic() + timeout
        while not answer.endswith(end.encode()):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([in_fd], [], [], left)[0]:
                return None
            chunk = os.read(in_fd, 256)
            if not chunk:
                return None
            answer += chunk
        return answer.decode(errors="replace")
    except OSError:
        return None
    finally:
        termios.tcsetattr(in_fd, termios.TCSANOW, saved)


def available() -> bool:
    """Whether the preview extra is installed (and imports)."""
    try:
        import PIL.Image  # noqa: F401 - imported to know that it can be
        import textual_image  # noqa: F401 - as above
    except ImportError:
        return False
    return True


async def show_outputs(ui: Ui, record: Mapping[str, Any], session: HttpSession | None) -> None:
    """Draw the outputs of a finished task (its files, else its URLs) on stderr, if a terminal."""
    if ui.quiet or ui.plain_err:
        return
    if not available():
        ui.hint(INSTALL_HINT)
        return
    ui.stop_progress()
    files = [Path(f) for f in record.get("files") or []]
    sources: list[str | Path] = list(files) if files else list(record.get("outputs") or [])
    protocol: str | None = None
    with tempfile.TemporaryDirectory(prefix="g3w-preview-") as scratch:
        for index, source in enumerate(sources):
            name = source.name if isinstance(source, Path) else Path(urlsplit(source).path).name or source
            try:
                path = source if isinstance(source, Path) else await _fetch(session, source, Path(scratch), index)
                picture = _picture(path, name)
            except _NoPreview as why:
                ui.note(str(why))
                continue
            protocol = protocol or choose_protocol(os.environ, ask_terminal)
            if protocol == BLOCKS and ui.err.no_color:
                ui.note("no preview: NO_COLOR is set, and this terminal shows images only as coloured cells")
                return
            ui.note(f"{name}:")
            draw(ui, picture, protocol)


class _NoPreview(Exception):
    """What stops one output's preview, said in a note (the others are still drawn)."""


async def _fetch(session: HttpSession | None, url: str, scratch: Path, index: int) -> Path:
    """The output at ``url`` in ``scratch`` (at most PREVIEW_MAX_BYTES); videos are not fetched
    when nothing here could decode them."""
    suffix = Path(urlsplit(url).path).suffix.lower()
    if suffix in VIDEO_SUFFIXES and not _video_decoder():
        raise _NoPreview(_video_note(Path(urlsplit(url).path).name))
    if session is None:
        raise _NoPreview(f"cannot preview {url}: not downloaded")
    dest = scratch / f"{index}{suffix}"

    def bounded(done: int, total: int | None) -> None:
        if max(done, total or 0) > C.PREVIEW_MAX_BYTES:
            raise _NoPreview(f"not previewing {Path(urlsplit(url).path).name}: larger than "
                             f"{C.PREVIEW_MAX_BYTES // (1024 * 1024)} MiB (download it with -o)")

    try:
        await session.download(url, dest, on_progress=bounded)
    except G3wError as exc:
        raise _NoPreview(f"cannot preview {url}: {exc.message}") from exc
    return dest


def _video_decoder() -> str | None:
    return next((name for name in ("av", "cv2") if find_spec(name) is not None), None)


def _video_note(name: str) -> str:
    return f"{name} is a video: no preview (install PyAV to see its first frame)"


def _picture(path: Path, name: str) -> Image:
    """The image to draw for one output: the file itself, or a video's first frame."""
    from PIL import Image as PILImage
    from PIL import UnidentifiedImageError

    if path.suffix.lower() in VIDEO_SUFFIXES:
        frame = _first_frame(path)
        if frame is None:
            raise _NoPreview(_video_note(name))
        return frame
    try:
        with PILImage.open(path) as opened:
            opened.load()
            picture: Image = opened.convert("RGB")
            return picture
    except (UnidentifiedImageError, PILImage.DecompressionBombError, OSError, ValueError) as exc:
        raise _NoPreview(f"cannot preview {name}: not an image") from exc


def _first_frame(path: Path) -> Image | None:
    """A video's first frame, with whichever decoder is installed (None: none, or it failed)."""
    decoder = _video_decoder()
    try:
        if decoder == "av":
            import av

            with av.open(str(path)) as container:
                for frame in container.decode(video=0):
                    return frame.to_image()  # type: ignore[no-any-return]  # PyAV is untyped here
        elif decoder == "cv2":
            import cv2
            from PIL import Image as PILImage

            capture = cv2.VideoCapture(str(path))
            ok, frame = capture.read()
            capture.release()
            if ok:
                return PILImage.fromarray(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    except Exception:  # noqa: BLE001 - a decoder's own errors: the preview is best effort, a note says so
        return None
    return None


def fit(image_size: tuple[int, int], window: tuple[int, int], cell: tuple[int, int]) -> tuple[int, int]:
    """Columns and rows that show an image of ``image_size`` pixels whole in a window of
    ``window`` cells (less PREVIEW_ROWS_KEPT rows), cells being ``cell`` pixels, never enlarged
    past PREVIEW_MAX_SCALE times its own size."""
    width, height = max(image_size[0], 1), max(image_size[1], 1)
    columns, rows = max(window[0], 1), max(window[1] - C.PREVIEW_ROWS_KEPT, 1)
    scale = min(columns * cell[0] / width, rows * cell[1] / height, C.PREVIEW_MAX_SCALE)
    return max(round(width * scale / cell[0]), 1), max(round(height * scale / cell[1]), 1)


def _cell_pixels() -> tuple[int, int]:
    """The size of a terminal cell in pixels, as the terminal on stderr reports it (or a guess)."""
    try:
        import fcntl
        import struct
        import termios

        rows, cols, x_pixels, y_pixels = struct.unpack(
            "HHHH", fcntl.ioctl(sys.stderr.fileno(), termios.TIOCGWINSZ, bytes(8)))
        if rows and cols and x_pixels and y_pixels:
            return x_pixels // cols, y_pixels // rows
    except (ImportError, OSError, ValueError, AttributeError):
        pass
    return C.PREVIEW_CELL_PIXELS


def draw(ui: Ui, picture: Image, protocol: str) -> None:
    """Draw ``picture`` on stderr with ``protocol``, fitted to the window."""
    cell = _cell_pixels()
    size = ui.err.size
    columns, rows = fit(picture.size, (size.width, size.height), cell)
    if protocol in (KITTY, ITERM):
        scaled = picture.resize((max(columns * cell[0], 1), max(rows * cell[1], 1)))
        buffer = io.BytesIO()
        scaled.save(buffer, format="PNG")
        payload = base64.standard_b64encode(buffer.getvalue()).decode("ascii")
        ui.raw(_kitty(payload, columns, rows) if protocol == KITTY else _iterm(payload, len(buffer.getvalue()),
                                                                               columns, rows))
        return
    renderable = _renderables()[protocol]
    ui.err.print(renderable(picture, width=columns, height=rows))


def _kitty(payload: str, columns: int, rows: int) -> str:
    """kitty's graphics protocol: transmit and display a PNG over ``columns`` x ``rows`` cells."""
    step = C.PREVIEW_KITTY_CHUNK
    chunks = [payload[i:i + step] for i in range(0, len(payload), step)] or [""]
    parts = []
    for i, chunk in enumerate(chunks):
        more = int(i < len(chunks) - 1)
        keys = f"a=T,f=100,q=2,c={columns},r={rows},m={more}" if i == 0 else f"m={more}"
        parts.append(f"{_ESC}_G{keys};{chunk}{_ESC}\\")
    return "".join(parts) + "\n"


def _iterm(payload: str, size: int, columns: int, rows: int) -> str:
    """iTerm2's inline image (OSC 1337), also understood by WezTerm."""
    return f"{_ESC}]1337;File=inline=1;size={size};width={columns};height={rows};preserveAspectRatio=1:{payload}\a\n"


def _renderables() -> dict[str, Any]:
    """textual-image's sixel and half-block renderables, imported without its import-time probe:
    that probe asks the terminal on stdout (g3w's data) and reads stdin; g3w has asked already."""
    saved = sys.__stdout__
    setattr(sys, "__stdout__", None)  # noqa: B010 - sys.__stdout__ is typed read-only
    try:
        from textual_image.renderable.halfcell import Image as Halfcell
        from textual_image.renderable.sixel import Image as Sixel
    finally:
        setattr(sys, "__stdout__", saved)  # noqa: B010 - as above
    return {SIXEL: Sixel, BLOCKS: Halfcell}
