"""Run the real CLI in a pseudo-terminal of a given size and read what a user would see, through
a terminal emulator (pyte): the screen at the end, with the lines scrolled off above it."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable
from dataclasses import dataclass

import pyte

from tests.helpers import REPO


class WrapWatchingScreen(pyte.HistoryScreen):
    """A screen with scrollback that notes each row the terminal itself wrapped (a program
    wrote past the last column): a line the program did not lay out for this width."""

    def __init__(self, columns: int, rows: int) -> None:
        super().__init__(columns, rows, history=100_000)
        self.wrapped: list[str] = []

    def draw(self, data: str) -> None:
        for char in data:  # a wrap can come anywhere in ``data``
            if self.cursor.x == self.columns and pyte.modes.DECAWM in self.mode:
                row = self.buffer[self.cursor.y]
                self.wrapped.append("".join(row[x].data for x in range(self.columns)))
            super().draw(char)


@dataclass
class TerminalRun:
    returncode: int
    raw: bytes  # every byte the process wrote to the terminal
    lines: list[str]  # the scrollback, then the screen, as the emulator shows them
    wrapped: list[str]  # rows the terminal wrapped (see WrapWatchingScreen)

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def run_in_terminal(
    *args: str,
    columns: int = 80,
    rows: int = 24,
    timeout_s: float = 120.0,
    stop_when: Callable[[bytes], bool] | None = None,
) -> TerminalRun:
    """``python -m streams *args`` with stdin, stdout and stderr on a ``columns`` x ``rows``
    pseudo-terminal. With ``stop_when``, the process gets one SIGINT (a user's Ctrl-C: a
    drain) as soon as what it wrote so far satisfies it: a run lasts as long as the test
    needs, not a fixed ``--duration`` (which still bounds it)."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "NO_COLOR")}
    env["TERM"] = "xterm-256color"
    process = subprocess.Popen(
        [sys.executable, "-m", "streams", *args],
        cwd=REPO,
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env=env,
        start_new_session=True,  # the terminal becomes the process's controlling terminal
    )
    os.close(follower)
    raw = bytearray()
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.5)
            if not ready:
                continue
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: every holder of the follower side has closed it
                break
            if not chunk:
                break
            raw += chunk
            if stop_when is not None and stop_when(bytes(raw)):
                process.send_signal(signal.SIGINT)
                stop_when = None
        else:
            process.kill()
        returncode = process.wait(timeout=10)
    finally:
        os.close(leader)
    screen = WrapWatchingScreen(columns, rows)
    pyte.ByteStream(screen).feed(bytes(raw))
    scrolled = ["".join(line[x].data for x in range(columns)) for line in screen.history.top]
    lines = [line.rstrip() for line in scrolled + screen.display]
    return TerminalRun(returncode, bytes(raw), lines, screen.wrapped)
