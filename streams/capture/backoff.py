"""Reconnect delays: exponential back-off with jitter, capped.

Jitter keeps a hundred cameras that dropped together (a switch rebooted) from all knocking
again in the same instant; the cap keeps a camera that comes back from waiting long for us.
"""

from __future__ import annotations

import random
from collections.abc import Callable

JITTER = 0.2  # each delay is its planned value +- 20 %


class Backoff:
    """Attempt numbers and delays for one stream's reconnects.

    Args:
        initial_s: the first delay. max_s: no delay (before jitter) is longer.
        uniform: ``random.uniform`` (injectable for tests).
    """

    def __init__(
        self,
        initial_s: float,
        max_s: float,
        uniform: Callable[[float, float], float] = random.uniform,
    ) -> None:
        self._initial_s = initial_s
        self._max_s = max_s
        self._uniform = uniform
        self.reset()

    def reset(self) -> None:
        """The stream worked again: the next failure is attempt 1, after the initial delay."""
        self._planned_s = self._initial_s
        self.attempt = 0

    def next(self) -> tuple[int, float]:
        """(attempt number from 1, seconds to wait before it); each delay doubles the last."""
        self.attempt += 1
        delay_s = self._planned_s * self._uniform(1.0 - JITTER, 1.0 + JITTER)
        self._planned_s = min(self._planned_s * 2, self._max_s)
        return self.attempt, delay_s
