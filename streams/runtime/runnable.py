"""What the command line drives: a Pipeline (one process) or a Supervisor (worker processes).

Both satisfy ``Runnable``, so the CLI and the benchmarks have one start / wait / stop path and
one wait loop (``wait_until_done``), whatever runs the streams.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from streams.config import Config
    from streams.runtime.reload import ReloadPlan


class Runnable(Protocol):
    fatal: str | None  # why the run gave up, if it did
    config: Config  # the config in force (a reload replaces it)

    def start(self, cancel: threading.Event | None = None) -> None:
        """Start every stream; ``cancel`` aborts a slow start (a worker's engine build)."""

    def all_streams_finished(self) -> bool: ...

    def stalled_s(self) -> float:
        """Seconds the run has not moved (the systemd watchdog stops pinging when large)."""

    def wait(self, duration_s: float | None = None, stop: threading.Event | None = None) -> str: ...

    def stop(self) -> None:
        """Drain what is in flight and publish ``ended`` for every stream."""

    def snapshot(self) -> dict: ...

    def reload(self, config: Config) -> ReloadPlan:
        """Apply a new config's streams (the others keep running); raises ReloadRefused."""


POLL_S = 0.05


def wait_until_done(
    run: Runnable, duration_s: float | None = None, stop: threading.Event | None = None
) -> str:
    """Block until ``stop`` is set, the run gives up, every stream finished or ``duration_s``
    passed; returns which, for the log."""
    deadline = None if duration_s is None else time.monotonic() + duration_s
    idle = threading.Event()
    while True:
        if stop is not None and stop.is_set():
            return "signal"
        if run.fatal is not None:  # before "finished": giving up also ends the streams
            return f"failed: {run.fatal}"
        if run.all_streams_finished():
            return "all streams finished"
        if deadline is not None and time.monotonic() >= deadline:
            return "duration reached"
        (stop or idle).wait(POLL_S)
