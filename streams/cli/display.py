"""The terminal view of a run: a live table on a TTY, plain periodic lines otherwise."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import TextIO

HEADER = (
    f"{'stream':<16} {'state':<12} {'fps':>7} {'p50 ms':>8} {'p99 ms':>8} {'drops':>7} {'done':>8}"
)


def format_table(snapshot: dict) -> list[str]:
    """Rows of the live table for a Pipeline.snapshot()."""
    rows = [HEADER]
    for s in snapshot["streams"]:
        rows.append(
            f"{s['stream'][:16]:<16} {s['state']:<12} {s['fps']:>7.1f} "
            f"{_ms(s['p50_ms']):>8} {_ms(s['p99_ms']):>8} {s['dropped']:>7} "
            f"{s['processed']:>8}"
        )
    p = snapshot["pipeline"]
    rows.append(
        f"pipeline: {snapshot['uptime_s']:.0f} s up, {p['batches']} batches, "
        f"mean batch {p['mean_batch']}, inference p50 {_ms(p['inference_p50_ms'])} ms, "
        f"published {p['published']}, publish drops {p['publish_dropped']}"
    )
    return rows


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


class LiveView:
    """Redraws the table in place every ``interval_s`` on a TTY; prints it every
    ``plain_interval_s`` otherwise (logs, CI)."""

    def __init__(
        self,
        snapshot: Callable[[], dict],
        out: TextIO = sys.stderr,
        interval_s: float = 1.0,
        plain_interval_s: float = 5.0,
    ) -> None:
        self._snapshot = snapshot
        self._out = out
        self._tty = out.isatty()
        self._interval_s = interval_s if self._tty else plain_interval_s
        self._stop = threading.Event()
        self._lines_drawn = 0
        self._thread = threading.Thread(target=self._run, name="live-view", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            self.draw()

    def draw(self) -> None:
        rows = format_table(self._snapshot())
        if self._tty:
            clear = f"\x1b[{self._lines_drawn}F\x1b[J" if self._lines_drawn else ""
            self._out.write(clear + "\n".join(rows) + "\n")
            self._lines_drawn = len(rows)
        else:
            self._out.write("\n".join(rows) + "\n")
        self._out.flush()

    def stop(self) -> None:
        """Stop redrawing; safe when ``start`` never ran (the run failed while starting)."""
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join(2.0)
