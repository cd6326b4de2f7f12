"""What FFmpeg said about a stream: kept per stream for its ``failed``/``reconnecting`` reason,
never printed raw on the terminal.

FFmpeg's own lines ("Connection refused", "moov atom not found", "error while decoding MB")
often say more than the error a reader raises, but printed raw they name no stream and, with
a hundred cameras, interleave into noise. So:

* PyAV (network streams, and NVDEC's packets): PyAV turns FFmpeg's log into Python records
  on the ``libav`` logger, on the thread that called FFmpeg. A capture thread reads one
  stream, so :func:`route_pyav` sends the lines of the calling thread into that stream's
  :class:`DecoderLog`; lines from any other thread go to this module's debug log.
* OpenCV (files): its bundled FFmpeg prints straight to stderr and offers no hook, only a
  process-wide level (read from ``OPENCV_FFMPEG_LOGLEVEL`` when its FFmpeg first opens a
  file), so :func:`quiet_opencv` silences it, and OpenCV's own warnings, unless the user set
  those variables to see them.

Every line is redacted (:func:`streams.redact.redact_url`): FFmpeg repeats URLs.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable

from streams.redact import redact_url

logger = logging.getLogger(__name__)

KEEP_LINES = 4  # a reason names the last few lines, not a log
RECENT_S = 30.0  # lines older than this say nothing about a failure now


class DecoderLog:
    """The last few redacted lines a stream's decoder logged, with when they came; each new
    line also goes to the debug log under the stream's ``name``."""

    def __init__(
        self,
        name: str = "a stream",
        keep: int = KEEP_LINES,
        recent_s: float = RECENT_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self._lines: deque[tuple[float, str]] = deque(maxlen=keep)
        self._recent_s = recent_s
        self._clock = clock

    def add(self, line: str) -> None:
        line = redact_url(" ".join(line.split()))
        if not line:
            return
        if self._lines and self._lines[-1][1] == line:  # a burst of the same line: keep one
            self._lines.pop()
        else:
            logger.debug("%s: FFmpeg: %s", self.name, line)
        self._lines.append((self._clock(), line))

    def clear(self) -> None:
        self._lines.clear()

    def recent(self) -> list[str]:
        """The kept lines logged within the last ``recent_s`` seconds, oldest first."""
        since_s = self._clock() - self._recent_s
        return [line for at_s, line in list(self._lines) if at_s >= since_s]

    def explain(self, reason: str) -> str:
        """``reason``, followed by what the decoder said just before (if anything)."""
        lines = self.recent()
        return f"{reason}; FFmpeg said: {' | '.join(lines)}" if lines else reason


# --- PyAV ---------------------------------------------------------------------------------

_thread = threading.local()
_install_lock = threading.Lock()
_installed = False


class _Router(logging.Handler):
    """Hands each ``libav`` record to the log of the stream whose thread logged it."""

    def emit(self, record: logging.LogRecord) -> None:
        source = record.name.removeprefix("libav").lstrip(".") or "ffmpeg"
        line = f"[{source}] {record.getMessage()}"
        log = getattr(_thread, "log", None)
        if log is not None:
            log.add(line)
        else:
            logger.debug("FFmpeg: %s", redact_url(line.strip()))


def _install() -> None:
    """Once per process: FFmpeg warnings and errors become ``libav`` records, handled here only.

    PyAV discards FFmpeg's log by default; a level turns it on (process-wide). Repeats are
    not folded across threads, since the fold would credit one stream's line to another.
    """
    global _installed
    with _install_lock:
        if _installed:
            return
        import av.logging

        libav = logging.getLogger("libav")
        libav.setLevel(logging.WARNING)
        libav.propagate = False  # never to the terminal's handlers
        libav.addHandler(_Router())
        av.logging.set_skip_repeated(False)
        av.logging.set_level(av.logging.WARNING)
        _installed = True


def route_pyav(log: DecoderLog | None) -> None:
    """From now on, what FFmpeg (through PyAV) logs on this thread goes into ``log``
    (None: to the debug log). Call it on the thread that opens and reads the stream."""
    if not _installed:
        _install()
    _thread.log = log


# --- OpenCV -------------------------------------------------------------------------------

_opencv_quiet = False
_opencv_quiet_lock = threading.Lock()


def quiet_opencv() -> None:
    """Silence OpenCV's FFmpeg and OpenCV's warnings, unless the user asked to see them.

    Process-wide (OpenCV has no per-capture log), before its FFmpeg opens its first file.
    Streams open at once, each in its own thread: every caller waits until it is done (a
    flag set first let a second stream open a file while the first still imported cv2).
    """
    global _opencv_quiet
    with _opencv_quiet_lock:
        if _opencv_quiet:
            return
        os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET
        if "OPENCV_LOG_LEVEL" not in os.environ:
            import cv2

            utils_logging = getattr(getattr(cv2, "utils", None), "logging", None)
            if utils_logging is not None:
                utils_logging.setLogLevel(utils_logging.LOG_LEVEL_ERROR)
        _opencv_quiet = True
