"""The ``fps`` cap (by presentation time) and the real-time pacing of files.

One clock per capture session, whatever decodes the pictures. Time is injected (``clock``,
``sleep``) so that tests can drive it instead of measuring wall-clock windows.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

STOP_POLL_S = 0.05  # how soon a paced wait notices ``stop``


class FrameClock:
    """Which pictures the ``fps`` cap keeps, and when a paced file's picture is due.

    Args:
        fps: keep at most this many pictures per second of presentation time (None: all).
        paced: wait until each picture's time comes (files replayed like a camera).
        stop: ends a wait early.
        clock: monotonic seconds. sleep: waits that long (the clock must see it pass).
    """

    def __init__(
        self,
        fps: float | None,
        paced: bool,
        stop: threading.Event,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._interval_s = 1.0 / fps if fps else 0.0
        self._next_keep_s = float("-inf")
        self._paced = paced
        self._stop = stop
        self._clock = clock
        self._sleep = sleep
        self._first_pts_s: float | None = None
        self._first_due_s = 0.0

    def set_fps(self, fps: float | None) -> None:
        """A new cap from the next picture on (a reload changed ``fps`` in place); called
        from another thread: one attribute, replaced whole."""
        self._interval_s = 1.0 / fps if fps else 0.0

    def keep(self, pts_s: float) -> bool:
        """False for a picture over the fps cap (skip it)."""
        if not self._interval_s:
            return True
        if pts_s < self._next_keep_s - 1e-6:
            return False
        self._next_keep_s += self._interval_s
        if self._next_keep_s <= pts_s:  # first picture, or after a gap
            self._next_keep_s = pts_s + self._interval_s
        return True

    def wait_until_due(self, pts_s: float) -> bool:
        """Paced files: sleep until this picture's time comes; False if stopped meanwhile.

        The schedule starts when the first picture is ready, not when the reader was created:
        opening a hundred decoders at once can take seconds, and a schedule that started
        before that would replay the backlog as fast as it decodes. It is absolute, so a late
        picture is not waited for and the ones after it catch up without drift.
        """
        if not self._paced:
            return True
        if self._first_pts_s is None:
            self._first_pts_s = pts_s
            self._first_due_s = self._clock()
        due_s = self._first_due_s + (pts_s - self._first_pts_s)
        # Plain sleeps, not stop.wait(): a hundred cameras waiting on one Event all queue on
        # its lock 30 times a second.
        while (delay_s := due_s - self._clock()) > 0:
            if self._stop.is_set():
                return False
            self._sleep(min(delay_s, STOP_POLL_S))
        return not self._stop.is_set()
